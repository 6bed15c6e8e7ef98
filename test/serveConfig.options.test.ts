/**
 * `serve --config` (cli/serveConfig.ts): every option of serve, written in the file, reaches the
 * server as the same flag on the command line does, and each is one a line can say as the command
 * line does (a flag alone, or one value: no optional or variadic value, which a line would read
 * otherwise). In process: serveRun.js is replaced by a stand-in that records what it is given.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { registerServeCommand } from '../cli/commands/serve.js';
import { ownFor } from './helpers/ownedByTest.js';

const served = vi.hoisted(() => ({ options: [] as Record<string, unknown>[] }));
vi.mock('../cli/commands/serveRun.js', () => ({
  serve: async (options: Record<string, unknown>) => {
    served.options.push({ ...options });
  },
}));

function serveCommand(): Command {
  const program = new Command('muxftp').exitOverride();
  registerServeCommand(program);
  return program.commands.find((command) => command.name() === 'serve')!;
}

/** The options serve hands the server for `muxftp serve ARGS`, --config's own left out. */
async function optionsServed(args: string[]): Promise<Record<string, unknown>> {
  served.options.length = 0;
  await serveCommand().parent!.parseAsync(['serve', ...args], { from: 'user' });
  expect(served.options).toHaveLength(1);
  const { config: _config, ...options } = served.options[0]!;
  return options;
}

// A value for each option that takes one, none its default; a flag is null. Two sets: --memory
// cannot go with --root, nor --anonymous-write with --anonymous.
const WITH_ROOT: Record<string, string | null> = {
  host: '0.0.0.0',
  port: '7000',
  root: '/srv/my files ',
  umask: '027',
  'partial-retention': '30m',
  'idle-timeout': '61',
  'max-connections': '7',
  'max-open-files': '9',
  'stream-window': '64KiB',
  'upload-initial-window': '32KiB',
  fsync: 'never',
  metrics: '[::1]:9100',
  users: 'users.json',
  anonymous: null,
  'anonymous-home': 'pub/sub',
  'tls-cert': 'cert.pem',
  'tls-key': 'key.pem',
  'tls-only': null,
  'max-connections-per-ip': '3',
  'max-streams-per-connection': '4',
  'max-rate': '10MiB',
  'max-user-rate': '1MiB',
  'handshake-timeout': '5',
  'max-buffered': '8MiB',
  'log-format': 'json',
};
const IN_MEMORY: Record<string, string | null> = {
  memory: null,
  users: 'users.json',
  'anonymous-write': null,
};

describe('serve --config: each option as on the command line', () => {
  it('is a flag or takes one value, and the sets below name every one', () => {
    const options = serveCommand().options.filter((option) => option.long !== '--config');
    for (const option of options) {
      expect(option.variadic, option.flags).toBe(false);
      expect(option.optional, option.flags).toBe(false);
    }
    const named = new Set([...Object.keys(WITH_ROOT), ...Object.keys(IN_MEMORY)]);
    expect(options.map((option) => option.long!.slice(2)).sort()).toEqual([...named].sort());
  });

  it.for([
    ['with a root', WITH_ROOT],
    ['in memory', IN_MEMORY],
  ] as const)('%s: the file gives what the command line gives', async ([, set], test) => {
    const own = ownFor(test);
    const dir = await own.tempDir();
    const argv = Object.entries(set).flatMap(([key, value]) =>
      value === null ? [`--${key}`] : [`--${key}`, value],
    );
    const lines = Object.entries(set).map(([key, value]) =>
      value === null ? key : `${key} ${/^ | $/.test(value) ? `"${value}"` : value}`,
    );
    const config = join(dir, 'serve.conf');
    await writeFile(config, `${lines.join('\n')}\n`);
    const fromCommandLine = await optionsServed(argv);
    expect(await optionsServed(['--config', config])).toEqual(fromCommandLine);
    // None of them serve's default: each value above did reach the server.
    const defaults = await optionsServed([]);
    for (const key of Object.keys(set)) {
      const name = key.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
      expect(fromCommandLine[name], key).not.toEqual(defaults[name]);
    }
  });
});
