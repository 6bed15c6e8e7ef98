/**
 * The integrity algorithms of protocol version 2 and their negotiation (issue #11).
 * A file's digest is D = H(d_0 ‖ … ‖ d_n−1) over d_i = H(block_i), blocks of INTEGRITY_BLOCK_BYTES;
 * with `sha256` this is exactly Dropbox's `content_hash`.
 */
import { ProtocolError } from '../errors.js';

/** In the default order of preference: XXH3-128 first (rsync's default since 3.2), then SHA-256. */
export const INTEGRITY_ALGORITHMS = ['xxh128', 'sha256'] as const;

/** An integrity algorithm's name as HELLO, WELCOME and the `digest` operation spell it. */
export type IntegrityAlgorithm = (typeof INTEGRITY_ALGORITHMS)[number];

/** What a client offers first, and so what a server picks when the client does not say. */
export const DEFAULT_INTEGRITY_ALGORITHM: IntegrityAlgorithm = 'xxh128';

/** Bytes of one block digest d_i and of the file digest D. */
export const DIGEST_BYTES: Readonly<Record<IntegrityAlgorithm, number>> = { xxh128: 16, sha256: 32 };

/** Fixed block size: 4 MiB, Dropbox's, so `sha256` digests equal its content_hash. Announced in WELCOME. */
export const INTEGRITY_BLOCK_BYTES = 4 * 1024 * 1024;

/** The algorithm's byte in END. */
export const ALGORITHM_WIRE_ID: Readonly<Record<IntegrityAlgorithm, number>> = { xxh128: 1, sha256: 2 };

export function algorithmForWireId(id: number): IntegrityAlgorithm | undefined {
  return INTEGRITY_ALGORITHMS.find((algorithm) => ALGORITHM_WIRE_ID[algorithm] === id);
}

export function isIntegrityAlgorithm(value: unknown): value is IntegrityAlgorithm {
  return typeof value === 'string' && (INTEGRITY_ALGORITHMS as readonly string[]).includes(value);
}

/**
 * The server's choice: the first algorithm in the client's order of preference that the server
 * supports (as rsync 3.2 negotiates its checksum). None in common is fatal to the connection.
 */
export function chooseIntegrityAlgorithm(
  offered: readonly string[],
  supported: readonly IntegrityAlgorithm[] = INTEGRITY_ALGORITHMS,
): IntegrityAlgorithm {
  const chosen = offered.find((name): name is IntegrityAlgorithm =>
    (supported as readonly string[]).includes(name),
  );
  if (chosen === undefined) {
    throw new ProtocolError(
      'VERSION_MISMATCH',
      `no common integrity algorithm: client offers [${offered.join(', ').slice(0, 200)}], server supports [${supported.join(', ')}]`,
    );
  }
  return chosen;
}
