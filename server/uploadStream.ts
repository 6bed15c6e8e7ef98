/**
 * A `put`: DATA frames go to a temporary file through Storage's UploadHandle; at END the size and
 * content digest (the connection's algorithm, over 4 MiB blocks) are checked and only then is the
 * file committed under its name. Each DATA payload is hashed as it arrives, before it is written.
 * Credit is granted back (half a window at a time) as bytes are accepted into the stream's write
 * queue — at most half a window not yet on disk — and otherwise as they reach the disk, so the
 * client need not wait for the disk round trip, and a stream holds at most one and a half windows
 * in memory; the connection also stops reading its socket while the disk is behind. The window
 * grows while the client is starved for credit and the disk keeps up (InboundWindow), within the
 * connection's budget.
 */
import { DEFAULTS } from '../shared/defaults.js';
import { MuxftpError, ProtocolError } from '../shared/errors.js';
import { ContentDigester } from '../shared/integrity/contentDigest.js';
import { printableName } from '../shared/printable.js';
import { encodeReply, encodeWindow } from '../shared/protocol/encoder.js';
import type { EndPayload } from '../shared/protocol/messages.js';
import { InboundWindow } from '../shared/transport/flow.js';
import { ReceivedBytes, receivedBlocks } from '../shared/transport/receivedBytes.js';
import { StreamPhase } from '../shared/transport/streamPhase.js';
import { hashKept } from '../storage/partialUpload.js';
import { normalizeClientPath, parentPath } from '../storage/paths.js';
import type { CommitOptions, CommittedEntry, EntryInfo, PartialKey, UploadHandle } from '../storage/types.js';
import type { QuotaTracker } from './auth/quota.js';
import { checkDirectoryPaths } from './directoryPaths.js';
import { toWireEntry } from './requestStream.js';
import type { ResumableHolder } from './resumableUploads.js';
import { type RequestName, rejectingCall, ServerStream, type StreamHost } from './stream.js';

export class UploadStream extends ServerStream implements ResumableHolder {
  readonly op = 'put';
  private readonly path: string;
  private readonly declaredSize: number | undefined;
  /** What the file keeps of its source at commit: its modification time, its permission bits. */
  private readonly kept: Pick<CommitOptions, 'mtimeMs' | 'mode'>;
  private handle: UploadHandle | undefined;
  /** The abort cleanup() started, settled once the temporary file is gone (or kept). */
  private aborted: Promise<unknown> | undefined;
  /** From start(): settles once the upload is set up, refused, or (over meanwhile) aborted. */
  private settingUp: Promise<unknown> | undefined;
  /**
   * storage.createUpload() was called and its handle is not the stream's yet (nor refused): the
   * set-up may hold a file (settingUp).
   */
  private makingFile = false;
  /** settingUp has settled (before, a lookup of its set-up may still run: storageWorkLeft). */
  private setUpSettled = false;
  /** What of the file's set-up or abort cleanup() left under way (fileWorkLeft). */
  private fileWork: Promise<unknown> | undefined;
  /** The commit, from END on: settles once storage is done with the file (stored or dropped). */
  private commit: Promise<unknown> | undefined;
  private readonly digester: ContentDigester;
  /** Credit granted back as bytes reach the disk. */
  private readonly window: InboundWindow;
  /** Credit the client had from the handshake, before any WINDOW. */
  private readonly initialCredit: number;
  private received = 0;
  /** Bytes written to the upload handle. */
  private onDisk = 0;
  /** Bytes counted as consumed by the window: accepted into the write queue, or on disk. */
  private accepted = 0;
  /**
   * Received, not yet handed to storage (copied out of a shared read buffer when borrowed). The
   * memory it holds is what counts against the upload backlog's marks, not the bytes: blocks
   * part-filled with a few bytes each are memory all the same.
   */
  private readonly unwritten = new ReceivedBytes(receivedBlocks, (deltaBytes) =>
    this.host.addUploadBacklog(deltaBytes),
  );
  private writing = false;
  /** What END said; set when the phase becomes Ended. */
  private end: EndPayload | undefined;
  /** Credit the window gave back that a bandwidth limit holds until its time comes. */
  private ungranted = 0;
  /**
   * Under a bandwidth limit: initial-window credit no DATA has used yet, and bytes received on it
   * that the limit has not let through yet. Those bytes came before any grant, so the limit is paid
   * for them before the upload is accepted and before it commits: a burst of small puts on their
   * initial windows completes no faster than the rate. Paying for the whole window instead, up
   * front, charged a 1-byte put 256 KiB of the rate and still let it complete at once.
   */
  private initialUnused = 0;
  private owed = 0;
  /** The set-up is done and the upload waits for the limit to be paid before it takes the bytes. */
  private acceptOnPayment = false;
  /** The first window went out before the set-up (start): no quota, limit or mark to wait for. */
  private grantedEarly = false;
  /** Bytes of the account's quota this upload holds. */
  private quotaReserved = 0;
  /**
   * Bytes of the file this upload replaces that the quota counts as freed by its commit, so they
   * are not reserved again (a user near the limit can replace their own file); 0 for none.
   */
  private credit = 0;
  /** The target's path under the home, while this upload holds the quota's credit for it. */
  private creditPath: string | undefined;
  /** Kept data this upload took over (issue #8). */
  private takenOver = 0;
  /** The handle is committing: the quota's reservation stays until the commit settles. */
  private committing = false;
  /** Of the connection's reservation allowance, what this upload holds until it ends. */
  private claimedBytes = 0;
  /** A resumable upload's key (issue #8): its data is kept if the upload is interrupted. */
  private readonly partial: PartialKey | undefined;
  /** Bytes of kept data this upload continues from (the client's DATA starts there). */
  private readonly offset: number;
  /**
   * The content digest OPEN declared (hex), checked at the commit whether or not the upload is
   * resumable: under `--partial-retention 0` (nothing kept) the promise is the same.
   */
  private readonly declaredDigest: string | undefined;
  /** Ends this upload's place among the server's resumable uploads (it writes kept data). */
  private endHolding: (() => void) | undefined;
  /** Set when the bytes proved wrong: such data is never kept for a resume. */
  private discardPartial = false;
  /** A resumed upload hashing the kept bytes it took over: nothing is written or committed yet. */
  private hashingKept = false;
  /** Hashing them waits for a read buffer other readers hold (storage/hashReadBuffers.ts). */
  private waitingForReadBuffer = false;
  /**
   * Aborted when the stream is over, so that hashing kept bytes stops. Made only for a resumed
   * upload: a controller and its abort cost ~9 µs, which every small upload paid.
   */
  private over: AbortController | undefined;

  constructor(
    host: StreamHost,
    id: number,
    path: string,
    declaredSize: number | undefined,
    /**
     * Credit the client already holds from the handshake's initial window (0 for a resumed put or
     * one that declined it): it may be sending this much with the OPEN.
     */
    initialCredit: number,
    resume?: ({ digest: string } | { source: string }) & { offset: number },
    /** The modification time (ms since the epoch) and permission bits the file gets at commit. */
    kept: Pick<CommitOptions, 'mtimeMs' | 'mode'> = {},
  ) {
    super(host, id);
    this.path = path;
    this.kept = kept;
    this.declaredSize = declaredSize;
    this.offset = resume?.offset ?? 0;
    this.declaredDigest =
      resume !== undefined && 'digest' in resume ? resume.digest.toLowerCase() : undefined;
    this.partial =
      resume !== undefined && declaredSize !== undefined && host.options.partialRetentionMs > 0
        ? {
            size: declaredSize,
            algorithm: host.integrity,
            ...('digest' in resume ? { digest: resume.digest } : { source: resume.source }),
          }
        : undefined;
    // Under a bandwidth limit, credit the client holds unused is a burst past the limit: keep it small.
    const throttle = host.uploadThrottle;
    const initial = host.options.streamWindowBytes;
    this.window =
      throttle === undefined
        ? new InboundWindow(id, initial, {
            maxSize: Math.max(initial, host.options.streamWindowMaxBytes),
            budget: host.windowBudget,
            roundTrips: host.roundTrips,
          })
        : new InboundWindow(id, Math.min(initial, 2 * throttle.maxChunkBytes));
    this.initialCredit = initialCredit;
    this.window.grantInitial(this.initialCredit);
    this.digester = new ContentDigester(host.integrity);
  }

  protected describe(): RequestName {
    return { text: `put ${printableName(this.path)}`, fields: { op: 'put', path: this.path } };
  }

  protected override transferProgress() {
    const done = this.offset + this.received;
    return { kind: 'upload' as const, path: this.path, done, total: this.declaredSize };
  }

  start(): void {
    // Credit the client holds from the handshake counts against a bandwidth limit as it is used.
    if (this.host.uploadThrottle !== undefined) this.initialUnused = this.initialCredit;
    // The first window (the rest of it, after the initial credit) goes out at once, while the
    // upload is set up (temporary file, hints): the client's first bytes travel meanwhile and
    // wait in `unwritten` (measured: a sequential 64 KiB upload's latency −13%). Not under a quota or a bandwidth limit, whose checks the credit
    // follows, nor for a resumed upload, whose kept prefix is checked first, nor while the server's
    // upload backlog is past its mark: bytes sent on that credit with the OPEN would be read in
    // the same slice, before the connection stops reading for the mark.
    this.grantedEarly =
      this.host.quota === undefined &&
      this.host.uploadThrottle === undefined &&
      this.offset === 0 &&
      !this.host.uploadBacklogHeld;
    if (this.grantedEarly) {
      this.ungranted += this.window.open();
      this.grantCredit();
    }
    // A declared size is a claim: it is passed on as a hint only within the connection's allowance.
    const hinted = this.declaredSize !== undefined && this.host.claimReservation(this.declaredSize);
    this.claimedBytes = hinted ? this.declaredSize! : 0;
    // A path ending in '/' names a directory, which no put makes (directoryPaths.ts): refused
    // before the quota's check, which drops what is kept of the file (`put f/` lost f's blocks).
    this.settingUp = Promise.resolve(checkDirectoryPaths(this.host.storage, { op: 'put', path: this.path }))
      .then(() => this.reserveQuota())
      .then(() => {
        if (this.offset > 0 && this.partial === undefined)
          throw new MuxftpError('NOT_FOUND', `no partial upload is kept here to continue: ${this.path}`);
      })
      // A stalled upload of the same data (the connection this client's retry replaces) gives way;
      // not to a put already over, which would take nothing over.
      .then(() =>
        this.partial === undefined || this.isFinished
          ? undefined
          : this.host.takeOverStalledUpload(this.path, this.partial),
      )
      .then(() => {
        // Over meanwhile (cancelled while its quota was checked), its open-file slot is free
        // again: it opens no file, or a client opening and cancelling puts had any number open.
        if (this.isFinished) return undefined;
        this.makingFile = true;
        return this.host.storage.createUpload(this.path, {
          onPartialRemoved: this.partialRemoved,
          bitsCarried: this.kept.mode !== undefined,
          ...(hinted ? { expectedSize: this.declaredSize } : {}),
          ...(this.partial !== undefined ? { partial: this.partial, resumeFrom: this.offset } : {}),
        });
      })
      .then(
        (handle) => {
          if (handle === undefined) return;
          // Not taken (over meanwhile, or its quota refused): settles once the abort has closed it.
          if (!this.adopt(handle)) return this.aborted;
          this.handle = handle; // from here cleanup() aborts it
          this.makingFile = false;
          if (this.partial !== undefined)
            this.endHolding = this.host.holdResumable(this.path, this.partial, this);
          if (this.offset === 0) this.acceptWhenPaid();
          else
            this.hashTakenOver(handle).then(
              () => this.accept(),
              (err: unknown) => this.fail(err),
            );
        },
        (err: unknown) => {
          this.makingFile = false; // no file made: nothing left of the set-up (fileWorkLeft)
          this.fail(err);
        },
      );
    const settled = () => {
      this.setUpSettled = true;
    };
    this.settingUp.then(settled, settled);
  }

  private acceptWhenPaid(): void {
    if (this.payOwed()) {
      this.accept();
      return;
    }
    // Until onThrottleTurn accepts, the bytes go to storage rather than wait in memory, where they
    // would count against the server's upload backlog for as long as a low rate takes, holding
    // other clients' uploads; the quota counts them first, as accept() would.
    if (!this.reserveReceived()) return;
    this.acceptOnPayment = true;
    this.writeNext();
  }

  /** Set up (a resumed upload's kept bytes hashed): the client may send. */
  private accept(): void {
    if (this.isFinished) return;
    // Bytes that came on the initial window before the quota's check count now.
    if (!this.reserveReceived()) return;
    this.hashingKept = false;
    this.advance(StreamPhase.Open);
    if (!this.grantedEarly) {
      this.ungranted += this.window.open();
      this.grantCredit();
    }
    this.writeNext();
    this.acceptIntoQueue(); // what came on the initial window meanwhile
    this.commitWhenWritten();
  }

  override onData(payload: Buffer, credit: number, borrowed: boolean): void {
    // Empty frames move nothing: a stream kept alive by them alone still times out.
    if (payload.length > 0) this.progressed();
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `DATA after END on stream ${this.id}`);
    this.window.take(credit);
    this.received += payload.length;
    if (this.initialUnused > 0) {
      const onInitialWindow = Math.min(credit, this.initialUnused);
      this.initialUnused -= onInitialWindow;
      this.owed += onInitialWindow;
      if (this.phase !== StreamPhase.Opening) this.payOwed(); // accepted: in line to pay now
    }
    if (this.declaredSize !== undefined && this.offset + this.received > this.declaredSize) {
      this.discardPartial = true;
      const what = `larger than its declared size of ${this.declaredSize}`;
      this.logRejected(what);
      this.fail(new MuxftpError('INTEGRITY_ERROR', `upload is ${what}`));
      return;
    }
    if (payload.length === 0) return;
    // Before the set-up (bytes on the initial window) the reservation is not made yet: accept() counts them.
    if ((this.phase !== StreamPhase.Opening || this.acceptOnPayment) && !this.reserveReceived()) return;
    this.digester.update(payload);
    this.unwritten.append(payload, borrowed);
    this.writeNext();
    this.acceptIntoQueue();
  }

  /**
   * Grows the quota's reservation to the bytes received (less the credit of the file they
   * replace); false when that failed the stream.
   */
  private reserveReceived(): boolean {
    const quota = this.host.quota;
    const needed = this.received - this.credit;
    if (quota === undefined || needed <= this.quotaReserved) return true;
    try {
      quota.grow(needed - this.quotaReserved);
    } catch (err) {
      this.fail(err);
      return false;
    }
    this.quotaReserved = needed;
    return true;
  }

  /** Counts received bytes as consumed while the write queue holds at most half a window. */
  private acceptIntoQueue(): void {
    if (this.isFinished || this.phase === StreamPhase.Ended) return;
    // Bytes that came on the initial window before the set-up earn no credit until it is done
    // (accept): under a quota, a bandwidth limit or the backlog's mark, credit follows the checks,
    // and an initial window of half the stream window or more would otherwise bring a WINDOW first.
    if (this.phase === StreamPhase.Opening && !this.grantedEarly) return;
    const room = Math.floor(this.window.size / 2) - (this.accepted - this.onDisk);
    const bytes = Math.min(this.received - this.accepted, room);
    if (bytes > 0) this.consume(bytes);
  }

  private consume(bytes: number): void {
    this.accepted += bytes;
    this.ungranted += this.window.consumed(bytes);
    this.grantCredit();
  }

  /**
   * After END too, until its commit has the file: every byte came, but a lost connection or a
   * timeout then drops it all the same, and no line named the file.
   */
  protected override get cutShort(): boolean {
    return super.cutShort || (this.phase === StreamPhase.Ended && !this.committing);
  }

  /** Half-closed before END: the rest can never come, so it ends as on a lost connection. */
  override onPeerEnded(): void {
    if (this.phase !== StreamPhase.Ended) this.endForPeerEnd();
  }

  override onEnd(end: EndPayload): void {
    this.progressed();
    if (this.phase === StreamPhase.Ended)
      throw new ProtocolError('STREAM_CLOSED', `second END on stream ${this.id}`);
    // END takes no credit, so it may come before the upload is accepted (an empty file).
    this.end = end;
    this.advance(StreamPhase.Ended);
    this.commitWhenWritten();
  }

  /**
   * A resumed upload: the kept bytes before the offset, hashed through the upload's own file once
   * it has taken them over (no other upload can from then on), start the digest, so END's D covers
   * the whole file and the bytes checked are the bytes it continues. Hashed before the takeover,
   * through another handle, another upload of the same key could rewrite them in between.
   */
  private async hashTakenOver(handle: UploadHandle): Promise<void> {
    if (handle.readKept === undefined)
      throw new MuxftpError('NOT_FOUND', `this server cannot continue an upload: ${this.path}`);
    this.hashingKept = true;
    const kept = { size: handle.takenOverBytes ?? 0, read: handle.readKept.bind(handle) };
    this.over = new AbortController();
    await hashKept(kept, this.path, this.offset, this.digester, false, {
      signal: this.over.signal,
      onRead: () => this.progressed(),
      onWaitingForMemory: (waiting) => {
        this.waitingForReadBuffer = waiting;
        if (!waiting) this.progressed();
      },
      owner: this.host,
    });
  }

  /**
   * Checked against the declared size before anything is stored (the rest as bytes arrive): what
   * the home will hold after the commit, usage less the file replaced plus the declared size.
   */
  private async reserveQuota(): Promise<void> {
    const quota = this.host.quota;
    if (quota === undefined) return;
    // One kept upload per file: storage drops those of other keys as the upload starts, but a
    // quota would count them against it first (storage tells it as each goes). Not for a resume:
    // storage drops them once it holds what it continues (refused for want of it, nothing goes),
    // and a resume reserves in adopt(), after that.
    if (this.offset === 0)
      await this.host.storage
        .dropKeptPartials?.(this.path, { keeping: this.partial, onPartialRemoved: this.partialRemoved })
        .catch(() => {});
    // A resumable upload reserves in adopt(), once its kept data is known: count usage first,
    // so that no walk comes between the two.
    await Promise.all([this.creditReplaced(quota), quota.usedBytes()]);
    if (this.partial !== undefined) return;
    const bytes = Math.max(0, (this.declaredSize ?? 0) - this.credit);
    await quota.reserve(bytes);
    if (this.isFinished) quota.release(bytes);
    else this.quotaReserved = bytes;
  }

  /**
   * The file at the target as it is now: its bytes leave usage when the commit replaces it, so
   * the upload need not reserve them. Not a directory's (the commit fails) nor anything else's.
   * A link inside the home counts as the file it names, as listings and the quota's walk count
   * it; what the target is at the commit, seen the same way, decides (settleCredit), so a file
   * removed or shrunk meanwhile cannot let usage past the limit.
   */
  private async creditReplaced(quota: QuotaTracker): Promise<void> {
    const target = await this.host.storage.stat(this.path).catch(() => undefined);
    if (target?.type !== 'file' || this.isFinished) return;
    // Storage took this path, so it normalizes.
    const path = normalizeClientPath(this.path);
    this.credit = quota.claimCredit(path, target.size);
    if (this.credit > 0) this.creditPath = path;
  }

  /**
   * At the commit, under the target's lock: the credit stands only for the file replaced now. One
   * removed, renamed, shrunk or swapped for something else since the upload started frees less,
   * and the reservation grows by the difference; QUOTA_EXCEEDED refuses the commit when it does
   * not fit.
   */
  private settleCredit(replaced: EntryInfo | undefined): void {
    const quota = this.host.quota;
    if (quota === undefined || this.credit === 0) return;
    const freed = replaced?.type === 'file' ? replaced.size : 0;
    if (freed >= this.credit) return;
    const needed = Math.max(0, this.offset + this.received - freed);
    if (needed <= this.quotaReserved) return;
    quota.grow(needed - this.quotaReserved);
    this.quotaReserved = needed;
  }

  /**
   * Sends the credit the window gave back; under a bandwidth limit no faster than the limit, so
   * credit is what paces the client (the window counts held-back credit as granted already, a
   * slack of at most one small window).
   */
  private grantCredit(): void {
    const throttle = this.host.uploadThrottle;
    if (throttle === undefined) {
      // After END no DATA comes: a WINDOW then (a set-up that finished after it) is noise.
      this.grant(this.grantable());
      this.ungranted = 0;
      return;
    }
    while (this.owed + this.grantable() > 0 && throttle.mayGo(this.onThrottleTurn)) {
      if (this.owed > 0) {
        // Bytes that came on the initial window are here already: paid for in one turn, the
        // debt delaying the next turns, so puts of small files complete one after another at the
        // rate, not all of them at the end after a piece each per round.
        throttle.take(this.owed);
        this.owed = 0;
        continue;
      }
      const amount = Math.min(this.grantable(), throttle.maxChunkBytes);
      throttle.take(amount);
      this.ungranted -= amount;
      this.grant(amount);
    }
  }

  override get heldByServer(): boolean {
    // Told STREAM_TIMEOUT during a long commit, a client took the put for failed while the file
    // was stored all the same.
    return (
      this.committing ||
      this.waitingForReadBuffer ||
      this.host.uploadThrottle?.holds(this.onThrottleTurn) === true
    );
  }

  /** Credit to grant now: none after END, when no more DATA comes. */
  private grantable(): number {
    return this.phase === StreamPhase.Ended ? 0 : this.ungranted;
  }

  /** Pays what bytes on the initial window owe the limit (grantCredit); true once nothing is owed. */
  private payOwed(): boolean {
    if (this.owed > 0) this.grantCredit();
    return this.owed === 0;
  }

  private readonly onThrottleTurn = (): void => {
    if (this.isFinished || !this.payOwed()) return;
    if (this.acceptOnPayment) {
      this.acceptOnPayment = false;
      this.accept();
      return;
    }
    this.grantCredit();
    this.commitWhenWritten();
  };

  private grant(increment: number): void {
    if (increment > 0) this.host.send(encodeWindow(this.id, increment));
  }

  /** One write at a time, each taking every chunk that arrived meanwhile (one writev). */
  private writeNext(): void {
    const handle = this.handle;
    if (this.writing || this.unwritten.byteLength === 0 || handle === undefined || this.hashingKept) return;
    const taken = this.unwritten.take();
    const bytes = taken.bytes;
    this.writing = true;
    rejectingCall(() => handle.write(taken.chunks)).then(
      () => {
        taken.release();
        this.writing = false;
        if (this.isFinished) return;
        this.onDisk += bytes;
        // After END no more DATA comes: granting more would be noise. Before accept() (the limit
        // not paid yet) the window is not open: accept() counts these bytes.
        if (this.phase === StreamPhase.Open) {
          // Bytes now on disk that were not accepted earlier count now; then the queue has room.
          if (this.onDisk > this.accepted) this.consume(this.onDisk - this.accepted);
          this.acceptIntoQueue();
        }
        this.writeNext();
        this.commitWhenWritten();
      },
      (err: unknown) => {
        taken.release();
        this.writing = false;
        this.fail(err);
      },
    );
  }

  private commitWhenWritten(): void {
    const end = this.end;
    const handle = this.handle;
    // No handle: not accepted yet, or already handed to the commit.
    if (end === undefined || handle === undefined || this.writing || this.unwritten.byteLength > 0) return;
    if (this.hashingKept) return;
    if (this.isFinished) return;
    if (this.owed > 0) return; // onThrottleTurn comes back once the limit is paid
    const digest = this.digester.result();
    const total = this.offset + this.received;
    const sizeMismatch =
      end.size !== total
        ? `END says ${end.size} bytes, ${total} received`
        : this.declaredSize !== undefined && end.size !== this.declaredSize
          ? `${end.size} bytes sent, ${this.declaredSize} declared`
          : undefined;
    const digestMismatch =
      end.algorithm !== digest.algorithm
        ? `END names ${end.algorithm}, the connection uses ${digest.algorithm}`
        : !end.digest.equals(digest.digest)
          ? `${digest.algorithm} digest mismatch`
          : this.declaredDigest !== undefined && this.declaredDigest !== digest.digest.toString('hex')
            ? "the digest declared in OPEN is not the content's"
            : undefined;
    if (sizeMismatch !== undefined || digestMismatch !== undefined) {
      const what = sizeMismatch !== undefined ? `size mismatch: ${sizeMismatch}` : digestMismatch!;
      this.logRejected(what);
      this.discardPartial = true;
      this.fail(new MuxftpError('INTEGRITY_ERROR', `upload of ${this.path} failed verification: ${what}`));
      return;
    }
    // From here the handle is the commit's: a disconnect now must not abort a verified upload.
    this.handle = undefined;
    this.committing = true;
    let placed = false;
    // Usage grows by the file in the same turn as the reservation goes, even if the stream was
    // cancelled meanwhile: the file is committed either way. At the rename, not once the commit
    // settles (after its directory's flush): a delete of the file meanwhile was told of first,
    // and its bytes, not counted yet, were lost below zero while the put's were counted.
    const place = (entry: CommittedEntry): void => {
      placed = true;
      this.host.recordChange({ op: 'put', path: this.path, committed: entry });
      this.releaseQuota();
    };
    const options: CommitOptions = {
      ...this.kept,
      beforeReplace: (replaced) => this.settleCredit(replaced),
      onPlaced: place,
    };
    this.commit = rejectingCall(() => handle.commit(digest, options)).then(
      (entry) => {
        if (!placed) place(entry);
        this.commitSettled();
        // One kept upload per file, and none once it is stored whole: what an attempt before
        // this one kept meanwhile (its connection torn down as this one started) goes too.
        const storage = this.host.storage;
        if (storage.dropKeptPartials !== undefined)
          void rejectingCall(() =>
            storage.dropKeptPartials!(this.path, { onPartialRemoved: this.partialRemoved }),
          ).catch(() => {});
        // Stored even when its connection went during the commit: logged and counted all the same
        // (the connection's line said only that it was lost, and no line named the file).
        this.recordTransfer('received', this.path, this.received, this.offset);
        if (this.isFinished) return;
        this.host.send(
          encodeReply(this.id, {
            entry: toWireEntry(entry),
            algorithm: digest.algorithm,
            digest: digest.digest.toString('hex'),
          }),
        );
        this.close(false);
      },
      (err: unknown) => {
        this.commitSettled();
        this.logStoringFailed(err);
        // Its connection gone during the commit: no one to tell, but the log says why all the
        // same, as the ERROR would (a disk's failure is the operator's; no line said it).
        if (this.isFinished) this.errorFrame(err);
        else this.fail(err);
      },
    );
  }

  /** Its bytes proved wrong (`what`), so it is failed INTEGRITY_ERROR and nothing is kept: one `rejected` line. */
  private logRejected(what: string): void {
    this.host.log({
      event: 'rejected',
      level: 'warn',
      text: `${this.host.label} rejected ${printableName(this.path)}: ${what}`,
      fields: { stream: this.id, path: this.path, code: 'INTEGRITY_ERROR', reason: what },
    });
  }

  /**
   * The upload is set up. Data kept for it that it took over (issue #8) leaves the quota's usage,
   * and a resumable upload reserves its declared size less the file it replaces (its credit), in
   * this same turn (storage lists
   * that data no more from now on): its kept bytes count once, inside the reservation. False
   * when the stream is over or the quota refuses; the upload is then aborted, its data kept.
   */
  private adopt(handle: UploadHandle): boolean {
    const takenOver = handle.takenOverBytes ?? 0;
    this.takenOver = takenOver;
    if (takenOver > 0) this.recordKept(-takenOver);
    const quota = this.host.quota;
    let refusal: unknown;
    if (!this.isFinished && quota !== undefined && this.partial !== undefined) {
      try {
        const bytes = Math.max(0, this.partial.size - this.credit);
        quota.reserveNow(bytes);
        this.quotaReserved = bytes;
      } catch (err) {
        refusal = err;
      }
    }
    if (!this.isFinished && refusal === undefined) return true;
    // The kept bytes stay counted (held) until the abort has kept them again.
    quota?.hold(takenOver);
    if (this.isFinished) {
      this.abortUpload(handle, takenOver);
    } else {
      this.quotaReserved = takenOver;
      this.handle = handle; // cleanup() aborts it
      this.fail(refusal);
    }
    return false;
  }

  /**
   * Aborts the upload (its whole blocks kept unless the bytes proved wrong); the quota bytes it
   * held go in the turn what it kept enters usage, so that its bytes are never counted nowhere.
   */
  private abortUpload(handle: UploadHandle, heldQuota: number): void {
    const keepPartial = !this.discardPartial && this.keptFits(heldQuota);
    this.aborted = rejectingCall(() => handle.abort({ keepPartial })).then(
      (kept) => {
        if (kept > 0) this.recordKept(kept);
        this.host.quota?.release(heldQuota);
      },
      // A storage whose abort failed: nothing is known to be kept; the stream is over either way.
      (err: unknown) => {
        this.host.log({
          event: 'abort_failed',
          level: 'error',
          text: `${this.host.label} stream ${this.id}: abort of ${printableName(this.path)} failed: ${String(err)}`,
          fields: { stream: this.id, path: this.path, reason: String(err) },
        });
        this.host.quota?.release(heldQuota);
      },
    );
  }

  /**
   * Whether what an abort would keep fits the quota. An upload that counted on replacing a file
   * (credit) wrote past its reservation, into bytes the commit was to free: kept, they would
   * stay beside that file and put the home over its limit, so they go unless they fit. Kept data
   * taken over and not written to stays as it was: it was counted before.
   */
  private keptFits(heldQuota: number): boolean {
    const quota = this.host.quota;
    if (quota === undefined || this.credit === 0 || this.onDisk === 0) return true;
    return quota.hasRoom(Math.max(this.takenOver, this.offset + this.onDisk) - heldQuota);
  }

  /**
   * A failed upload answers once its temporary file is gone (or after failedUploadAnswerWaitMs):
   * a client told NO_SPACE goes on with its next file at once, and must find that space free.
   * A connection that ends with its last stream (the client half-closed, the server drains) takes
   * no next file: nothing to wait for, it is told at once. (Either way the answer is owed to the
   * connection, which does not end before it is sent: oweAnswer.)
   */
  override fail(err: unknown): void {
    if (this.isFinished) return;
    if (this.handle === undefined || this.host.endsWithLastStream) {
      super.fail(err);
      return;
    }
    // Owed to the connection, which does not end with its last stream before it is sent; the
    // bound set first, so that whatever the abort does, the answer is paid.
    const owed = this.host.oweAnswer(this.errorFrame(err));
    const answer = (): void => {
      clearTimeout(timer);
      owed();
    };
    const timer = setTimeout(answer, DEFAULTS.failedUploadAnswerWaitMs);
    this.close(true); // cleanup() starts the abort
    (this.aborted ?? Promise.resolve()).then(answer, answer);
  }

  /** Kept partial data of another upload of the file, dropped by storage: its bytes leave usage. */
  private readonly partialRemoved = (dir: string, bytes: number): void =>
    this.host.recordChange({ op: 'partial', dir, bytes: -bytes });

  /** Kept partial data beside the target changed by `bytes` (+ kept, − taken over). */
  private recordKept(bytes: number): void {
    // Storage took this path, so it normalizes.
    this.host.recordChange({ op: 'partial', dir: parentPath(normalizeClientPath(this.path)), bytes });
  }

  private commitSettled(): void {
    this.committing = false;
    if (this.isFinished) this.releaseQuota();
  }

  private releaseQuota(): void {
    this.host.quota?.release(this.quotaReserved);
    this.quotaReserved = 0;
  }

  isStalledFor(ms: number): boolean {
    // Over, what it wrote still being kept (cleanup): a taker waits for that, as for a stalled one.
    if (this.isFinished) return true;
    // Past END it is finishing, not stalled; its file is what it commits. Nor is one whose
    // connection the server stopped reading (a slow disk, a rate limit): its client may be sending.
    if (this.phase === StreamPhase.Ended || this.heldByServer || this.hashingKept || this.host.readingHeld)
      return false;
    // Nor one whose client has no credit left to send on: it waits for the server's WINDOW.
    if (this.window.available - this.ungranted <= 0) return false;
    return performance.now() - this.lastProgressAt >= ms;
  }

  giveWay(): Promise<void> {
    // Over already (cut, its blocks still being kept): nothing to fail, only that to wait for.
    if (!this.isFinished) {
      const seconds = Math.round((performance.now() - this.lastProgressAt) / 1000);
      this.host.log({
        event: 'upload_taken_over',
        text: `${this.host.label} stream ${this.id}: ${printableName(this.path)} moved no data for ${seconds} s: a newer upload of it continues what it wrote`,
        fields: { stream: this.id, path: this.path, ms: seconds * 1000 },
      });
      this.fail(
        new MuxftpError(
          'STREAM_TIMEOUT',
          `stream moved no data for ${seconds} s: a newer upload of ${this.path} continues what it wrote`,
        ),
      );
    }
    return (this.aborted ?? Promise.resolve()).then(() => {});
  }

  /** Its set-up under way (a temporary file being made), or its abort: the file is the stream's until then. */
  override fileWorkLeft(): Promise<unknown> | undefined {
    return this.fileWork;
  }

  /**
   * Its file's work, or its set-up still under way before it asked for a file (a path's check,
   * the quota's): no file is held, but the stream counts until the lookup settles. Not counted,
   * OPEN put `d/` + CANCEL had any number of lookups under way on a slow disk.
   */
  override storageWorkLeft(): Promise<unknown> | undefined {
    return this.fileWork ?? (this.setUpSettled ? undefined : this.settingUp);
  }

  protected cleanup(): void {
    const endHolding = this.endHolding;
    this.endHolding = undefined;
    this.over?.abort();
    if (this.creditPath !== undefined) this.host.quota?.releaseCredit(this.creditPath);
    this.creditPath = undefined;
    this.host.uploadThrottle?.cancel(this.onThrottleTurn);
    // Bytes that came on the initial window of a put refused or cancelled before its turn used the
    // link all the same: the limit counts them (puts refused one after another went unthrottled).
    if (this.owed > 0) this.host.takeUnpacedUpload(this.owed);
    this.owed = 0;
    this.window.release();
    this.host.releaseReservation(this.claimedBytes);
    this.claimedBytes = 0;
    this.digester.release();
    // A write still in flight keeps its blocks (and their count in the backlog) until it is over.
    this.unwritten.dispose();
    // Whatever happened, an uncommitted upload leaves nothing under the target name. A
    // resumable one's quota goes once the abort has counted what it kept; a committing one's
    // when its commit settles; any other's now.
    const handle = this.handle;
    this.handle = undefined;
    if (handle !== undefined && this.partial !== undefined) {
      this.abortUpload(handle, this.quotaReserved);
      this.quotaReserved = 0;
    } else {
      if (!this.committing) this.releaseQuota();
      if (handle !== undefined) this.abortUpload(handle, 0);
    }
    // Over before its file was asked for (while its quota was checked), it makes none: no wait.
    // Over while it commits (its connection gone past END), the file is the commit's until it
    // settles: given back at once, clients sending puts whole and resetting had any number open.
    this.fileWork =
      handle !== undefined
        ? this.aborted
        : this.committing
          ? this.commit
          : this.makingFile
            ? this.settingUp
            : undefined;
    // Its place among resumable uploads goes once what it wrote is kept: a retry asking meanwhile
    // (a slow disk's abort) found nothing kept yet, and sent the whole file again.
    if (endHolding !== undefined) void (this.aborted ?? Promise.resolve()).then(endHolding);
  }
}
