/** `--server` (and $MUXFTP_SERVER) as curl and ssh users write addresses, IPv6 included; and the library's parseServerAddress, which reads them alike. */
import { InvalidArgumentError } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServerOption } from '../cli/optionParsers.js';
import { parseServerAddress } from '../client/index.js';
import { DEFAULTS } from '../shared/defaults.js';
import { runCli } from './helpers/cliProcess.js';
import { TempDirs } from './helpers/tempDirs.js';

const tempDirs = new TempDirs('muxftp-server-option-');
afterEach(() => tempDirs.removeAll());

describe('parseServerOption', () => {
  it('reads host:port, host, :port and [v6]:port', () => {
    expect(parseServerOption('example.org:9000')).toEqual({ host: 'example.org', port: 9000 });
    expect(parseServerOption('example.org')).toEqual({ host: 'example.org', port: DEFAULTS.port });
    expect(parseServerOption(':9000')).toEqual({ host: DEFAULTS.host, port: 9000 });
    expect(parseServerOption('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseServerOption('[::1]')).toEqual({ host: '::1', port: DEFAULTS.port });
  });

  it('takes a bare IPv6 address that cannot be read as address and port, at the default port', () => {
    for (const host of ['::1', '::', 'fe80::1', '2001:db8::1', '::ffff:127.0.0.1', 'fe80::1%eth0', '1::']) {
      expect(parseServerOption(host)).toEqual({ host, port: DEFAULTS.port });
    }
  });

  it('refuses a bare IPv6 address with a port, and one that reads both ways, naming the bracketed forms', () => {
    expect(() => parseServerOption('::1:46615')).toThrow(
      new InvalidArgumentError('an IPv6 address with a port goes in brackets: [::1]:46615.'),
    );
    expect(() => parseServerOption('2001:db8::1:80')).toThrow(
      /\[2001:db8::1:80\]:7421 or \[2001:db8::1\]:80/,
    );
    expect(() => parseServerOption('a:b:c')).toThrow(/expected host:port, or \[IPv6 address\]:port/);
  });
});

describe('parseServerAddress (the library function, as `muxftp` exports it)', () => {
  it('agrees with --server: a bare IPv6 address means the default port', () => {
    for (const host of ['::1', '::', 'fe80::1', '2001:db8::1', '::ffff:127.0.0.1', 'fe80::1%eth0', '1::']) {
      expect(parseServerAddress(host)).toEqual({ host, port: DEFAULTS.port });
      expect(parseServerAddress(host)).toEqual(parseServerOption(host));
    }
    expect(parseServerAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseServerAddress('example.org:9000')).toEqual({ host: 'example.org', port: 9000 });
    expect(parseServerAddress(undefined)).toEqual({ host: DEFAULTS.host, port: DEFAULTS.port });
  });

  it('refuses an unbracketed IPv6 address with a port, naming the bracketed form, with a TypeError', () => {
    expect(() => parseServerAddress('::1:46615')).toThrow(
      new TypeError('an IPv6 address with a port goes in brackets: [::1]:46615'),
    );
    expect(() => parseServerAddress('2001:db8::1:80')).toThrow(
      /\[2001:db8::1:80\]:7421 or \[2001:db8::1\]:80/,
    );
    expect(() => parseServerAddress('a:b:c')).toThrow(TypeError);
  });
});

describe('an empty --server or $MUXFTP_SERVER', () => {
  it('is refused, as an empty path is, rather than read as the default address', () => {
    for (const empty of ['', ' '])
      expect(() => parseServerOption(empty)).toThrow(/^an empty address \(an unset variable\?\)/);
  });

  it('is a usage error (2) naming where it came from, with nothing on stdout', async () => {
    const cwd = await tempDirs.make();
    const fromEnv = await runCli(['ls', '--json'], cwd, { env: { MUXFTP_SERVER: '' } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stdout).toBe('');
    expect(fromEnv.stderr).toMatch(
      /^muxftp: option '--server <host:port>' value '' from env 'MUXFTP_SERVER' is invalid\. an empty address \(an unset variable\?\)/,
    );
    const fromArgument = await runCli(['ls', '--server', ''], cwd);
    expect(fromArgument.code).toBe(2);
    expect(fromArgument.stderr).toMatch(/argument '' is invalid\. an empty address/);
  });
});
