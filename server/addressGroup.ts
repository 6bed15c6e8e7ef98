/**
 * The "address group" the per-address limits count by (--max-connections-per-ip, the failed-login
 * refusal): an IPv4 address alone, an IPv6 address by its /64. An IPv6 host is given at least a
 * /64 (RFC 6177) and may pick any address in it, so counting each address alone let one client
 * rotate past both limits; an IPv4-mapped address (::ffff:a.b.c.d, what a dual-stack listener on
 * `::` reports for an IPv4 client) is that IPv4 address.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { DEFAULTS } from '../shared/defaults.js';

/**
 * The group `address` counts in: an IPv4 address (mapped ones included) as it is, an IPv6 one as
 * its first `ipv6PrefixBits` bits in full hex with the length (`2001:db8:0:0::/64`), followed by its
 * zone id if it has one. Anything that is not an IP address ('in-process') is its own group.
 *
 * The zone stays in the group. Node gives one only to a link-local peer (fe80::/10), and it is
 * the server's own interface the connection came in on (the socket's sin6_scope_id, named by
 * uv_if_indextoiid), not something the client sends: a client gets a second group only by being
 * on a second link to the server, so it cannot rotate through zones as it can through addresses.
 * Every link's link-local addresses are in fe80::/64, so without the zone the hosts of all links
 * would be one group, and a host on one link could fill the limits of hosts on every other.
 */
export function addressGroup(
  address: string,
  ipv6PrefixBits: number = DEFAULTS.ipv6AddressGroupPrefixBits,
): string {
  if (isIPv4(address)) return address;
  const zoneAt = address.indexOf('%');
  const bare = zoneAt === -1 ? address : address.slice(0, zoneAt);
  const zone = zoneAt === -1 ? '' : address.slice(zoneAt);
  if (!isIPv6(bare)) return address;
  const words = ipv6Words(bare);
  // ::ffff:0:0/96, RFC 4291 §2.5.5.2.
  if (words.slice(0, 5).every((word) => word === 0) && words[5] === 0xffff) {
    return [words[6]! >> 8, words[6]! & 0xff, words[7]! >> 8, words[7]! & 0xff].join('.');
  }
  const prefix = words.map((word, i) => {
    const keep = Math.min(16, Math.max(0, ipv6PrefixBits - 16 * i));
    return word & (0xffff << (16 - keep)) & 0xffff;
  });
  const whole = Math.ceil(ipv6PrefixBits / 16);
  const shown = prefix.slice(0, whole).map((word) => word.toString(16));
  return `${shown.join(':')}${whole < 8 ? '::' : ''}/${ipv6PrefixBits}${zone}`;
}

/** The eight 16-bit words of a valid IPv6 address (no zone), '::' and a dotted IPv4 tail expanded. */
function ipv6Words(address: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const words: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        words.push((a << 8) | b, (c << 8) | d);
      } else {
        words.push(Number.parseInt(piece, 16));
      }
    }
    return words;
  };
  const gap = address.indexOf('::');
  if (gap === -1) return parse(address);
  const head = parse(address.slice(0, gap));
  const tail = parse(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
