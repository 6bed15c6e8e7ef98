/**
 * Keeps directory moves and uploads in flight apart (issue #7): an upload's temporary file sits
 * beside its target, so moving a directory above it would strand the file where neither commit
 * nor abort can find it. A move over a claimed upload is refused; an upload that starts under a
 * move under way waits for it, then resolves its path again.
 *
 * One guard serves a storage and every subtree() view of it, so a move through one home sees
 * the uploads through another home nested in it (and the reverse). Client paths differ between
 * views, so claims and moves are compared by host path; the client path is compared too within
 * one view, for a claim whose host path is not known yet.
 */
import { StorageError } from '../shared/errors.js';
import type { Resolved } from './paths.js';

/** An upload asked for: where, by client path in its view at once, by host path as soon as known. */
export interface UploadClaim {
  /** The view (storage) the client path is relative to. */
  readonly view: object;
  readonly clientPath: string;
  /**
   * Host path of the target's directory: from the view's real root and the client path at claim
   * time (when the root is known), then as resolved (symlinks among the ancestors followed).
   */
  parentHostPath: string | undefined;
}

interface DirectoryMove {
  readonly view: object;
  readonly source: Resolved;
  /** Settles (never rejects) when the rename is over. */
  readonly done: Promise<unknown>;
}

export class MoveGuard {
  readonly #claims = new Set<UploadClaim>();
  readonly #moves = new Set<DirectoryMove>();
  /** True when host path `path` is `base` or lies below it. */
  readonly #isWithin: (base: string, path: string) => boolean;

  constructor(isWithin: (base: string, path: string) => boolean) {
    this.#isWithin = isWithin;
  }

  /** Claims an upload; call in the same turn as it is asked for, before any await. */
  claim(view: object, clientPath: string, parentHostPath: string | undefined): UploadClaim {
    const claim: UploadClaim = { view, clientPath, parentHostPath };
    this.#claims.add(claim);
    return claim;
  }

  release(claim: UploadClaim): void {
    this.#claims.delete(claim);
  }

  /**
   * Runs `rename`, the move of directory `source` (through `view`), unless an upload is claimed
   * under it: then RESOURCE_BUSY. The check and the registration happen in the turn `rename`
   * starts, so an upload claimed at any point is either refused here or waits for the move.
   */
  async move(view: object, source: Resolved, rename: () => Promise<void>): Promise<void> {
    for (const claim of this.#claims) {
      if (this.#isUnder(claim, view, source)) {
        throw new StorageError(
          'RESOURCE_BUSY',
          `uploads are in progress under ${source.clientPath}; move it when they are done`,
          source.clientPath,
        );
      }
    }
    const renamed = rename();
    const move: DirectoryMove = { view, source, done: renamed.catch(() => {}) };
    this.#moves.add(move);
    try {
      await renamed;
    } finally {
      this.#moves.delete(move);
    }
  }

  /** A move under way that covers the claimed upload's directory, if any: wait for it, then look again. */
  moveAffecting(claim: UploadClaim): Promise<unknown> | undefined {
    for (const move of this.#moves) {
      if (this.#isUnder(claim, move.view, move.source)) return move.done;
    }
    return undefined;
  }

  /** True when the claimed upload's file lies under directory `dir` of `view`. */
  #isUnder(claim: UploadClaim, view: object, dir: Resolved): boolean {
    if (claim.view === view && claim.clientPath.startsWith(`${dir.clientPath}/`)) return true;
    return claim.parentHostPath !== undefined && this.#isWithin(dir.hostPath, claim.parentHostPath);
  }
}
