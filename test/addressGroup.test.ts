/** The address groups the per-address limits count by: IPv4 alone (mapped too), IPv6 by its /64. */
import { describe, expect, it } from 'vitest';
import { addressGroup } from '../server/addressGroup.js';

describe('addressGroup', () => {
  it('keeps an IPv4 address as it is, and reads an IPv4-mapped IPv6 address as that IPv4 address', () => {
    expect(addressGroup('203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(addressGroup('::FFFF:7f00:1')).toBe('127.0.0.1');
    expect(addressGroup('0:0:0:0:0:ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('0000:0000:0000:0000:0000:ffff:cb00:7107')).toBe('203.0.113.7');
  });

  it('groups an IPv6 address by its /64, whichever way it is written', () => {
    const group = addressGroup('2001:db8::1');
    expect(group).toBe('2001:db8:0:0::/64');
    for (const same of [
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      '2001:DB8:0:0:FFFF:1:2:3',
      '2001:db8::ffff:1.2.3.4',
      '2001:db8:0:0:1::',
    ]) {
      expect(addressGroup(same), same).toBe(group);
    }
    expect(addressGroup('2001:db8:0:1::1')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('::')).toBe('0:0:0:0::/64');
    // Not mapped (::ffff:0:0/96 is only the sixth word ffff after five zero words).
    expect(addressGroup('::ffff:0:1.2.3.4')).toBe('0:0:0:0::/64');
  });

  it('keeps a zone id: link-local addresses on different links are different hosts', () => {
    // The zone is the server's interface the connection came in on, which the client cannot
    // choose: keeping it lets no client rotate, while dropping it would put every link's
    // fe80::/64 in one group, the hosts of one link counted with those of all the others.
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64%eth0');
    expect(addressGroup('fe80::1%eth1')).not.toBe(addressGroup('fe80::1%eth0'));
    expect(addressGroup('fe80::1%2')).toBe('fe80:0:0:0::/64%2');
    // On one link a client picks its interface id freely, as in any /64: it stays in one group.
    for (const same of ['fe80::abcd:1%eth0', 'fe80::ffff:ffff:ffff:ffff%eth0', 'FE80:0:0:0:1:2:3:4%eth0']) {
      expect(addressGroup(same), same).toBe(addressGroup('fe80::1%eth0'));
    }
  });

  it('takes other prefix lengths', () => {
    expect(addressGroup('2001:db8:0:ab12::1', 56)).toBe('2001:db8:0:ab00::/56');
    expect(addressGroup('2001:db8::1', 128)).toBe('2001:db8:0:0:0:0:0:1/128');
    expect(addressGroup('2001:fdb8:ffff::1', 20)).toBe('2001:f000::/20');
  });

  it('leaves what is not an IP address as it is', () => {
    for (const other of ['in-process', 'unknown', '2001:db8::1::2', '1.2.3', '']) {
      expect(addressGroup(other)).toBe(other);
    }
  });
});
