/**
 * What is at many remote paths of one directory, from one listing of it rather than a stat each,
 * as rsync and lftp mirror do: a stat is a request and a stream at both ends, an entry listed
 * about a tenth of that. put's skip checks ask it of the remote copies, get's planning of the
 * files it names. A directory counts as crowded from DEFAULTS.listDirectoryFromPaths paths;
 * its listing is asked when the first path needs it and kept for the run, with at most
 * DEFAULTS.listEntriesPerPath entries per path: a larger directory the server refuses to list
 * before sorting it (a server from before `maxEntries` lists it, cancelled here as its entries
 * come), and its paths are asked with stat, which costs less than reading it for a few files.
 * Listings and stat show a link inside the root alike, as what it leads to.
 */
import type { Client, WireEntry } from '../client/client.js';
import { isValidClientPath } from '../shared/clientPaths.js';
import { DEFAULTS } from '../shared/defaults.js';
import { remoteParent } from './remotePath.js';

export class CrowdedDirectories {
  /** Directories many of the paths are in, each with how many entries a listing of it may have. */
  readonly #crowded = new Map<string, number>();
  readonly #listings = new Map<string, Promise<Map<string, WireEntry> | undefined>>();

  constructor(remotes: Iterable<string>) {
    const counts = new Map<string, number>();
    for (const remote of remotes) {
      const dir = remoteParent(remote);
      const count = (counts.get(dir) ?? 0) + 1;
      counts.set(dir, count);
      if (count >= DEFAULTS.listDirectoryFromPaths)
        this.#crowded.set(dir, count * DEFAULTS.listEntriesPerPath);
    }
  }

  /**
   * `remote`'s entry as its directory's listing shows it; null when the listing has no such
   * name; undefined when no listing answers for it (its directory is not crowded, or could not
   * be listed: not there, not listable by this user, too large), and a stat must.
   */
  async lookUp(client: Client, remote: string): Promise<WireEntry | null | undefined> {
    const dir = remoteParent(remote);
    // A name the server lists but refuses in a path (a control character put there on the
    // host) is left to stat, which says so.
    if (!this.#crowded.has(dir) || !isValidClientPath(remote)) return undefined;
    const listing = await this.#listing(client, dir);
    if (listing === undefined) return undefined;
    return listing.get(remote.slice(dir === '' ? 0 : dir.length + 1)) ?? null;
  }

  #listing(client: Client, dir: string): Promise<Map<string, WireEntry> | undefined> {
    let listing = this.#listings.get(dir);
    if (listing === undefined) {
      listing = client.list(dir, { maxEntries: this.#crowded.get(dir)! }).then(
        (entries) => new Map(entries.map((entry) => [String(entry.name), entry])),
        () => undefined,
      );
      this.#listings.set(dir, listing);
    }
    return listing;
  }
}
