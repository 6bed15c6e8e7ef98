/**
 * Which symbolic links to directories a tree walk follows: through at most
 * DEFAULTS.maxLinksOnTheWay on any one path down, and DEFAULTS.maxLinksFollowed in all, so a link
 * loop (`a -> .` beside `b -> .`) ends. One per walk: the client's get -r and ls -r, the server's
 * count of a home's bytes for its quota.
 */
import { DEFAULTS } from './defaults.js';

export class LinkBudget {
  #followed = 0;

  /** Whether a link met below `linksOnTheWay` others may be followed; counted when it may. */
  take(linksOnTheWay: number): boolean {
    if (linksOnTheWay >= DEFAULTS.maxLinksOnTheWay || this.#followed >= DEFAULTS.maxLinksFollowed)
      return false;
    this.#followed++;
    return true;
  }
}
