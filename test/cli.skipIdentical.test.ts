/**
 * `put`/`get --skip-identical`, through the real CLI against a real server on disk: a file whose
 * copy at the destination has the same bytes is not sent again; one with the same size but other
 * bytes, or another size, is. The server's transfer counters tell what really crossed the wire.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Accounts } from '../server/auth/accounts.js';
import { hashPassword } from '../server/auth/passwords.js';
import { addUser, emptyUsersFile } from '../server/auth/usersFile.js';
import { contentDigest } from '../shared/integrity/contentDigest.js';
import { FrameType } from '../shared/protocol/constants.js';
import { CLI_BIN, cliShellLine, runCli } from './helpers/cliProcess.js';
import { jsonOf, startFrameProxy } from './helpers/frameProxy.js';
import { TempDirs } from './helpers/tempDirs.js';
import { startServer, type TestServer } from './helpers/testServer.js';

const MiB = 1024 * 1024;
const tempDirs = new TempDirs('muxftp-skip-');
let server: TestServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await tempDirs.removeAll();
});

interface Outcome {
  local: string;
  remote: string;
  ok: boolean;
  bytes: number;
  algorithm?: string;
  digest?: string;
  skipped?: boolean;
  error?: { code: string };
}

/** A tree of four files: one over a block, a small text, an empty one, one in a subdirectory. */
async function makeTree(dir: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'big.bin': randomBytes(5 * MiB + 3),
    'notes.txt': Buffer.from('the same size, other bytes, next time\n'),
    empty: Buffer.alloc(0),
    'sub/deep.bin': randomBytes(100_000),
  };
  await mkdir(join(dir, 'sub'), { recursive: true });
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
  return files;
}

function byName(outcomes: Outcome[]): Map<string, Outcome> {
  return new Map(outcomes.map((o) => [o.remote.split('/').slice(2).join('/'), o]));
}

async function cli(args: string[], cwd: string, port = server!.port): Promise<Outcome[]> {
  const run = await runCli([...args, '--json', '--server', `127.0.0.1:${port}`], cwd, {
    timeoutMs: 30_000,
  });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Outcome[];
}

/**
 * A proxy to the server that notes each stat and list the client asks for under `under` (`op
 * path`), and counts the listings it cancels.
 */
async function askingProxy(port: number, under: string) {
  const asked: string[] = [];
  const listings = new Set<number>();
  let cancelled = 0;
  const proxy = await startFrameProxy(port, {
    fromClient: (frame) => {
      if (frame.type === FrameType.OPEN) {
        const { op, path } = jsonOf(frame) as { op: string; path: string };
        if (op === 'list') listings.add(frame.streamId);
        if ((op === 'stat' || op === 'list') && path.startsWith(under)) asked.push(`${op} ${path}`);
      }
      if (frame.type === FrameType.CANCEL && listings.has(frame.streamId)) cancelled++;
      return frame;
    },
  });
  return { proxy, asked, cancelledListings: () => cancelled };
}

describe('--skip-identical', () => {
  it('put sends only the files whose remote copy differs, and says which were skipped', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const files = await makeTree(join(local, 'tree'));
    const stats = async () => (await server!.connect()).stats();

    const first = await cli(['put', '-r', 'tree', '--to', 'mirror', '-p', '--skip-identical'], local);
    expect(first.filter((o) => o.ok && o.skipped !== true)).toHaveLength(4);

    // Same size, other bytes: sizes alone would wrongly call it identical.
    const notes = Buffer.from(files['notes.txt']!);
    notes[0] = notes[0]! ^ 0xff;
    await writeFile(join(local, 'tree', 'notes.txt'), notes);
    await writeFile(join(local, 'tree', 'sub', 'deep.bin'), Buffer.concat([files['sub/deep.bin']!, notes]));

    const before = await stats();
    const second = byName(
      await cli(['put', '-r', 'tree', '--to', 'mirror', '-p', '--skip-identical'], local),
    );
    const after = await stats();
    expect(after.filesIn - before.filesIn).toBe(2);
    for (const name of ['big.bin', 'empty']) {
      expect(second.get(name)).toMatchObject({ ok: true, skipped: true, algorithm: 'xxh128' });
      expect(second.get(name)!.digest).toBe(contentDigest('xxh128', files[name]!).toString('hex'));
    }
    for (const name of ['notes.txt', 'sub/deep.bin']) {
      expect(second.get(name)).toMatchObject({ ok: true });
      expect(second.get(name)!.skipped).toBeUndefined();
      const remote = await readFile(join(server.root!, 'mirror', 'tree', name));
      expect(remote.equals(await readFile(join(local, 'tree', name)))).toBe(true);
    }

    // Without the flag everything goes again: the counters above do see skipped files.
    const again = await stats();
    await cli(['put', '-r', 'tree', '--to', 'mirror', '-p'], local);
    expect((await stats()).filesIn - again.filesIn).toBe(4);
  }, 60_000);

  it('get downloads only the files whose local copy differs, and with --checksum sha256 compares in sha256', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const files = await makeTree(join(server.root!, 'tree'));
    const stats = async () => (await server!.connect()).stats();

    const first = await cli(['get', '-r', 'tree', '--to', 'out', '-p', '--skip-identical'], local);
    expect(first.filter((o) => o.ok && o.skipped !== true)).toHaveLength(4);

    const notes = Buffer.from(files['notes.txt']!);
    notes[notes.length - 1] = notes[notes.length - 1]! ^ 0xff;
    await writeFile(join(local, 'out', 'tree', 'notes.txt'), notes);
    await writeFile(join(local, 'out', 'tree', 'empty'), 'no longer empty');

    const before = await stats();
    const outcomes = await cli(
      ['get', '-r', 'tree', '--to', 'out', '--skip-identical', '--checksum', 'sha256'],
      local,
    );
    const second = new Map(outcomes.map((o) => [o.remote.replace(/^tree\//, ''), o]));
    expect((await stats()).filesOut - before.filesOut).toBe(2);
    for (const name of ['big.bin', 'sub/deep.bin']) {
      expect(second.get(name)).toMatchObject({ ok: true, skipped: true, algorithm: 'sha256' });
      expect(second.get(name)!.digest).toBe(contentDigest('sha256', files[name]!).toString('hex'));
    }
    for (const name of ['notes.txt', 'empty']) {
      expect(second.get(name)!.skipped).toBeUndefined();
      expect((await readFile(join(local, 'out', 'tree', name))).equals(files[name]!)).toBe(true);
    }
  }, 60_000);

  // script(1) (util-linux) runs the command on a pseudo-terminal, where the summary line is drawn.
  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'on a terminal, the summary counts the skipped files apart from the ones sent',
    async () => {
      server = await startServer({ backend: 'disk' });
      const local = await tempDirs.make();
      await writeFile(join(local, 'same.txt'), 'unchanged');
      await writeFile(join(local, 'new.txt'), 'first time');
      await cli(['put', 'same.txt', 'same.txt'], local);
      const args = ['put', 'same.txt', 'new.txt', '--to', '/', '--skip-identical'];
      const line = cliShellLine([...args, '--server', `127.0.0.1:${server.port}`]);
      const child = spawn('script', ['-qec', line, '/dev/null'], { cwd: local, stdio: 'pipe' });
      let shown = '';
      child.stdout.on('data', (chunk: Buffer) => {
        shown += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(timer);
      expect(code).toBe(0);
      expect(shown).toMatch(/muxftp: 1 file \(10 B\), 1 skipped \(already there\) in /);
    },
    60_000,
  );

  it('Ctrl-C while the server is still hashing its copy cancels at once (exit 130), sending nothing', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const bytes = randomBytes(64 * 1024);
    await writeFile(join(local, 'f.bin'), bytes);
    // Written behind the server's back: no digest is cached, so the check makes the server read it.
    await writeFile(join(server.root!, 'f.bin'), bytes);
    const openRead = server.storage.openRead.bind(server.storage);
    let reading!: () => void;
    const serverReads = new Promise<void>((resolve) => {
      reading = resolve;
    });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.storage.openRead = async (path) => {
      reading();
      await released;
      return openRead(path);
    };
    try {
      const child = spawn(
        process.execPath,
        [CLI_BIN, 'put', 'f.bin', 'f.bin', '--skip-identical', '--server', `127.0.0.1:${server.port}`],
        { cwd: local, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
      await serverReads;
      const before = await (await server.connect()).stats();
      child.kill('SIGINT');
      const code = await closed;
      clearTimeout(timer);
      expect(code).toBe(130);
      expect(stderr).toMatch(/put f\.bin: .*cancel/i);
      expect((await (await server.connect()).stats()).filesIn).toBe(before.filesIn);
    } finally {
      release();
    }
  }, 60_000);
});

describe('get -c', () => {
  it('leaves a file already whole locally, as put -c leaves one whole on the server: get -r -c after Ctrl-C fetches only what did not finish', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const files = await makeTree(join(server.root!, 'tree'));
    const stats = async () => (await server!.connect()).stats();
    await cli(['get', '-r', 'tree', '--to', 'out', '-p'], local);
    // Another version of the same size, locally: not whole, fetched again.
    const notes = Buffer.from(files['notes.txt']!);
    notes[0] = notes[0]! ^ 0xff;
    await writeFile(join(local, 'out', 'tree', 'notes.txt'), notes);

    const before = await stats();
    const results = await cli(['get', '-r', '-c', 'tree', '--to', 'out'], local);
    const outcomes = new Map(results.map((o) => [o.remote.replace(/^tree\//, ''), o]));
    // Before: every file under a block (4 MiB) fetched again whole, 3 of the 4.
    expect((await stats()).filesOut - before.filesOut).toBe(1);
    for (const name of ['big.bin', 'empty', 'sub/deep.bin'])
      expect(outcomes.get(name)).toMatchObject({ ok: true, skipped: true });
    expect(outcomes.get('notes.txt')).toMatchObject({ ok: true });
    expect(outcomes.get('notes.txt')!.skipped).toBeUndefined();
    for (const [name, bytes] of Object.entries(files))
      expect((await readFile(join(local, 'out', 'tree', name))).equals(bytes)).toBe(true);
  }, 60_000);
});

describe('--skip-unchanged', () => {
  it('put and get leave alone the files whose copy has the same size and time, reading nothing', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const files = await makeTree(join(local, 'tree'));
    const stats = async () => (await server!.connect()).stats();
    // Times are kept: the copies have the sources' (put's and get's default).
    await cli(['put', '-r', 'tree', '--to', 'mirror', '-p'], local);

    // Another time, same size: sent. Other bytes, same size, the time put back: left, as rsync's
    // quick check leaves it (what --skip-identical is for). Grown: sent.
    const notes = join(local, 'tree', 'notes.txt');
    const { mtime } = await stat(notes);
    await utimes(notes, new Date(), new Date(mtime.getTime() + 5_000));
    const deep = join(local, 'tree', 'sub', 'deep.bin');
    // Put back as a Date (to the millisecond, cut): the remote copy's time is rounded to it.
    const deepTime = (await stat(deep)).mtime;
    const otherBytes = Buffer.from(files['sub/deep.bin']!);
    otherBytes[0] = otherBytes[0]! ^ 0xff;
    await writeFile(deep, otherBytes);
    await utimes(deep, new Date(), deepTime);
    await writeFile(join(local, 'tree', 'empty'), 'grown');

    let before = await stats();
    const put = byName(await cli(['put', '-r', 'tree', '--to', 'mirror', '--skip-unchanged'], local));
    expect((await stats()).filesIn - before.filesIn).toBe(2);
    expect(put.get('big.bin')).toMatchObject({ ok: true, skipped: true, bytes: files['big.bin']!.length });
    expect(put.get('big.bin')!.digest).toBeUndefined(); // nothing was read
    expect(put.get('sub/deep.bin')).toMatchObject({ skipped: true });
    expect(put.get('notes.txt')!.skipped).toBeUndefined();
    expect(put.get('empty')!.skipped).toBeUndefined();

    // get: a local copy touched since is compared by content with --skip-identical too, and left.
    await cli(['get', '-r', 'mirror/tree', '--to', 'back', '-p'], local);
    await utimes(join(local, 'back', 'tree', 'big.bin'), new Date(), new Date(Date.now() + 60_000));
    before = await stats();
    const get = byName(
      await cli(['get', '-r', 'mirror/tree', '--to', 'back', '--skip-unchanged', '--skip-identical'], local),
    );
    expect((await stats()).filesOut - before.filesOut).toBe(0);
    expect(get.get('big.bin')).toMatchObject({ skipped: true, algorithm: 'xxh128' });
    expect(get.get('notes.txt')).toMatchObject({ skipped: true });
    expect(get.get('notes.txt')!.digest).toBeUndefined();
    // Found identical by content, it took the server's time (as rsync -t): the quick check alone
    // now leaves it too, instead of hashing it again on every run.
    const bigTimes = async () => [
      (await stat(join(local, 'back', 'tree', 'big.bin'))).mtimeMs,
      (await stat(join(server!.root!, 'mirror', 'tree', 'big.bin'))).mtimeMs,
    ];
    const [mine, theirs] = await bigTimes();
    expect(Math.abs(mine! - theirs!)).toBeLessThanOrEqual(1); // to the millisecond the protocol carries
    before = await stats();
    await cli(['get', '-r', 'mirror/tree', '--to', 'back', '--skip-unchanged'], local);
    expect((await stats()).filesOut - before.filesOut).toBe(0);
    // Alone, the quick check sends a file whose time differs (and it gets the server's time).
    await utimes(join(local, 'back', 'tree', 'big.bin'), new Date(), new Date(Date.now() + 60_000));
    before = await stats();
    const again = byName(await cli(['get', '-r', 'mirror/tree', '--to', 'back', '--skip-unchanged'], local));
    expect((await stats()).filesOut - before.filesOut).toBe(1);
    expect(again.get('big.bin')!.skipped).toBeUndefined();
    const [got, served] = await bigTimes();
    expect(Math.abs(got! - served!)).toBeLessThanOrEqual(1);
  }, 60_000);

  it('put asks a directory many files go into with one listing, a lone file with a stat', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const many = Array.from({ length: 12 }, (_, i) => `many/f${String(i).padStart(2, '0')}`);
    await mkdir(join(local, 'tree', 'many'), { recursive: true });
    for (const name of [...many, 'lone.txt']) await writeFile(join(local, 'tree', name), `${name}\n`);
    await cli(['put', '-r', 'tree', '--to', 'mirror', '-p'], local);
    const remote = (name: string) => join(server!.root!, 'mirror', 'tree', name);
    // Another time: sent. Gone from the server: sent. A directory where the file was: not skipped.
    await utimes(join(local, 'tree', 'many', 'f03'), new Date(), new Date(Date.now() + 5_000));
    await rm(remote('many/f07'));
    await rm(remote('many/f09'));
    await mkdir(remote('many/f09'));
    // Same size and time, other bytes: left by the quick check, sent with --skip-identical.
    const f05 = join(local, 'tree', 'many', 'f05');
    const f05Time = (await stat(f05)).mtime;
    await writeFile(f05, 'many/F05\n');
    await utimes(f05, new Date(), f05Time);
    // A name the server lists but refuses in a path, put there on the host: not skipped.
    const control = 'ctrl\u0001x';
    for (const side of [join(local, 'tree', 'many'), join(server.root!, 'mirror', 'tree', 'many')]) {
      await writeFile(join(side, control), 'same\n');
      await utimes(join(side, control), new Date(), f05Time);
    }

    const { proxy, asked, cancelledListings } = await askingProxy(server.port, 'mirror/tree/');
    const putSkipping = async (...flags: string[]) => {
      asked.length = 0;
      const server = ['--server', `127.0.0.1:${proxy.port}`];
      const run = await runCli(
        ['put', '-r', 'tree', '--to', 'mirror', ...flags, '--json', ...server],
        local,
        {
          timeoutMs: 30_000,
        },
      );
      const outcomes = byName(JSON.parse(run.stdout) as Outcome[]);
      const sent = [...outcomes].filter(([, outcome]) => outcome.skipped !== true).map(([name]) => name);
      return { code: run.code, outcomes, sent: sent.sort(), asked: asked.sort() };
    };
    try {
      const quick = await putSkipping('--skip-unchanged');
      expect(quick.code).toBe(1); // f09: a directory is in the way
      expect(quick.outcomes.get('many/f09')).toMatchObject({ ok: false });
      expect(quick.outcomes.get(`many/${control}`)).toMatchObject({
        ok: false,
        error: { code: 'INVALID_PATH' },
      });
      // The control character's name fails in the walk, as one no remote path can be: not asked.
      expect(quick.asked).toEqual(['list mirror/tree/many', 'stat mirror/tree/lone.txt']);
      expect(quick.sent).toEqual([`many/${control}`, 'many/f03', 'many/f07', 'many/f09']);
      expect(await readFile(remote('many/f07'), 'utf8')).toBe('many/f07\n');
      expect(await readFile(remote('many/f05'), 'utf8')).toBe('many/f05\n');

      // Another time, the same bytes: the quick check says changed, the content check (both
      // flags) looks at what the first one asked for: still one request each, and it is left.
      await rm(remote('many/f09'), { recursive: true });
      await rm(join(local, 'tree', 'many', control));
      await utimes(join(local, 'tree', 'lone.txt'), new Date(), new Date(Date.now() + 5_000));
      const both = await putSkipping('--skip-unchanged', '--skip-identical');
      expect(both.code).toBe(0);
      expect(both.asked).toEqual(['list mirror/tree/many', 'stat mirror/tree/lone.txt']);
      expect(both.sent).toEqual(['many/f09']);
      expect(both.outcomes.get('lone.txt')).toMatchObject({ skipped: true, algorithm: 'xxh128' });

      // The content alone: other bytes at the same time and size are sent.
      const content = await putSkipping('--skip-identical');
      expect(content.code).toBe(0);
      expect(content.asked).toEqual(['list mirror/tree/many', 'stat mirror/tree/lone.txt']);
      expect(content.sent).toEqual(['many/f05']);
      expect(await readFile(remote('many/f05'), 'utf8')).toBe('many/F05\n');
      expect(cancelledListings()).toBe(0); // a dozen entries: far under 16 per file going there
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('put does not read a destination directory far larger than what goes into it: a stat each', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const names = Array.from({ length: 8 }, (_, i) => `n${i}`);
    await mkdir(join(local, 'few'));
    for (const name of names) await writeFile(join(local, 'few', name), `${name}\n`);
    await cli(['put', '-r', 'few', '--to', 'big', '-p'], local);
    // 8 files · 16 entries each may be listed: 2,000 others are far more.
    for (let i = 0; i < 2000; i++) await writeFile(join(server.root!, 'big', 'few', `other${i}`), '');
    await writeFile(join(local, 'few', 'n3'), 'changed\n');

    const { proxy, asked, cancelledListings } = await askingProxy(server.port, 'big/few');
    try {
      const run = await runCli(
        [
          'put',
          '-r',
          'few',
          '--to',
          'big',
          '--skip-unchanged',
          '--json',
          '--server',
          `127.0.0.1:${proxy.port}`,
        ],
        local,
        { timeoutMs: 30_000 },
      );
      expect(run.code).toBe(0);
      const sent = (JSON.parse(run.stdout) as Outcome[]).filter((outcome) => outcome.skipped !== true);
      expect(sent.map((outcome) => outcome.remote)).toEqual(['big/few/n3']);
      // The server refuses a listing of more than asked for at once: nothing to cancel.
      expect(cancelledListings()).toBe(0);
      expect(asked.sort()).toEqual(['list big/few', ...names.map((name) => `stat big/few/${name}`)]);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("an identical copy whose time is already the source's is not touched; nor is one behind a link", async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await makeTree(join(local, 'tree'));
    await cli(['put', '-r', 'tree', '--to', 'mirror', '-p'], local);
    // Setting an equal time would move the file's ctime: the server's digest cache would drop it.
    const remoteBig = join(server.root!, 'mirror', 'tree', 'big.bin');
    const { ctimeMs } = await stat(remoteBig);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = byName(await cli(['put', '-r', 'tree', '--to', 'mirror', '--skip-identical'], local));
    expect(again.get('big.bin')).toMatchObject({ skipped: true });
    expect((await stat(remoteBig)).ctimeMs).toBe(ctimeMs);

    // get: a local name that is a link to a file elsewhere with the same bytes and another time.
    const elsewhere = await tempDirs.make();
    const target = join(elsewhere, 'notes.txt');
    await writeFile(target, await readFile(join(local, 'tree', 'notes.txt')));
    await utimes(target, new Date(), new Date(Date.UTC(2001, 0, 1)));
    await mkdir(join(local, 'back', 'tree', 'sub'), { recursive: true });
    await symlink(target, join(local, 'back', 'tree', 'notes.txt'));
    const got = byName(await cli(['get', '-r', 'mirror/tree', '--to', 'back', '--skip-identical'], local));
    expect(got.get('notes.txt')).toMatchObject({ skipped: true });
    expect((await stat(target)).mtimeMs).toBe(Date.UTC(2001, 0, 1));
  }, 60_000);

  it('refuses stdin and stdout, where there is nothing local to compare', async () => {
    const put = await runCli(['put', '-', 'x', '--skip-unchanged'], process.cwd(), { timeoutMs: 10_000 });
    expect(put.code).toBe(2);
    expect(put.stderr).toContain("--skip-unchanged does not apply to stdin ('-')");
    const get = await runCli(['get', 'x', '-', '--skip-unchanged'], process.cwd(), { timeoutMs: 10_000 });
    expect(get.code).toBe(2);
    expect(get.stderr).toContain("--skip-unchanged does not apply to stdout ('-')");
  });
});

/** Outcomes by their remote path below its first directory. */
const byRemote = (outcomes: Outcome[]) =>
  new Map(outcomes.map((o) => [o.remote.split('/').slice(1).join('/'), o]));

describe('--ignore-existing', () => {
  it('put leaves every remote file there alone, asking a crowded directory with one listing', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const many = Array.from({ length: 12 }, (_, i) => `many/f${String(i).padStart(2, '0')}`);
    await mkdir(join(local, 'tree', 'many'), { recursive: true });
    for (const name of [...many, 'lone.txt']) await writeFile(join(local, 'tree', name), `${name}\n`);
    // On the server already: other bytes, other sizes, other times; a directory where f09 goes.
    const remote = (name: string) => join(server!.root!, 'mirror', 'tree', name);
    await mkdir(remote('many/f09'), { recursive: true });
    const old = new Date(Date.UTC(2001, 0, 1));
    for (const name of [...many.slice(0, 6), 'lone.txt']) {
      await writeFile(remote(name), `older ${name}, longer\n`);
      await utimes(remote(name), old, old);
    }

    const { proxy, asked } = await askingProxy(server.port, 'mirror/tree/');
    const at = ['--server', `127.0.0.1:${proxy.port}`];
    try {
      const dryRun = await runCli(
        ['put', '-r', 'tree', '--to', 'mirror', '--ignore-existing', '-n', ...at],
        local,
      );
      expect(dryRun.code).toBe(0);
      expect(dryRun.stdout.split('\n').filter(Boolean).sort()).toEqual(
        ['f06', 'f07', 'f08', 'f09', 'f10', 'f11'].map(
          (name) => `would put tree/many/${name} → mirror/tree/many/${name} (9 B)`,
        ),
      );
      expect(await readFile(remote('many/f06')).catch(() => 'none')).toBe('none');

      asked.length = 0;
      const before = await (await server.connect()).stats();
      const run = await runCli(
        ['put', '-r', 'tree', '--to', 'mirror', '--ignore-existing', '--json', ...at],
        local,
      );
      expect(run.code).toBe(1); // the directory in the way of f09 is no copy of it
      expect(run.stderr).toContain('many/f09');
      const outcomes = byName(JSON.parse(run.stdout) as Outcome[]);
      for (const name of [...many.slice(0, 6), 'lone.txt']) {
        const bytes = `older ${name}, longer\n`.length;
        expect(outcomes.get(name)).toEqual({
          local: `tree/${name}`,
          remote: `mirror/tree/${name}`,
          ok: true,
          bytes,
          skipped: true,
        });
        expect(await readFile(remote(name), 'utf8')).toBe(`older ${name}, longer\n`);
        expect((await stat(remote(name))).mtimeMs).toBe(old.getTime()); // nor its time touched
      }
      for (const name of many.slice(6).filter((name) => name !== 'many/f09'))
        expect(await readFile(remote(name), 'utf8')).toBe(`${name}\n`);
      expect(outcomes.get('many/f09')).toMatchObject({ ok: false });
      expect((await (await server.connect()).stats()).filesIn - before.filesIn).toBe(5);
      // One listing for the twelve files of many/, a stat for the lone one: not a stat each.
      expect(asked.sort()).toEqual(['list mirror/tree/many', 'stat mirror/tree/lone.txt']);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('get leaves every local file there alone, a tree or a file named', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    const files = await makeTree(join(server.root!, 'tree'));
    await mkdir(join(local, 'back', 'tree', 'sub'), { recursive: true });
    const old = new Date(Date.UTC(2001, 0, 1));
    const mine = (name: string) => join(local, 'back', 'tree', name);
    for (const name of ['big.bin', 'sub/deep.bin']) {
      await writeFile(mine(name), 'mine');
      await utimes(mine(name), old, old);
    }
    const stats = async () => (await server!.connect()).stats();

    const preview = await runCli(
      [
        'get',
        '-r',
        'tree',
        '--to',
        'back',
        '--ignore-existing',
        '-n',
        '--json',
        '--server',
        `127.0.0.1:${server.port}`,
      ],
      local,
    );
    const previewed = byRemote(JSON.parse(preview.stdout) as Outcome[]);
    expect(previewed.get('big.bin')).toMatchObject({ skipped: true, dryRun: true, bytes: 4 });
    expect(previewed.get('notes.txt')!.skipped).toBeUndefined();

    let before = await stats();
    const got = byRemote(await cli(['get', '-r', 'tree', '--to', 'back', '--ignore-existing'], local));
    expect((await stats()).filesOut - before.filesOut).toBe(2);
    for (const name of ['big.bin', 'sub/deep.bin']) {
      expect(got.get(name)).toMatchObject({ ok: true, skipped: true, bytes: 4 });
      expect(await readFile(mine(name), 'utf8')).toBe('mine');
      expect((await stat(mine(name))).mtimeMs).toBe(old.getTime());
    }
    for (const name of ['notes.txt', 'empty'])
      expect((await readFile(mine(name))).equals(files[name]!)).toBe(true);

    // A file named: left as well; without the flag it is replaced.
    before = await stats();
    const named = await cli(['get', 'tree/big.bin', 'back/tree/big.bin', '--ignore-existing'], local);
    expect(named).toEqual([
      { local: 'back/tree/big.bin', remote: 'tree/big.bin', ok: true, bytes: 4, skipped: true },
    ]);
    expect((await stats()).filesOut - before.filesOut).toBe(0);
    await cli(['get', 'tree/big.bin', 'back/tree/big.bin'], local);
    expect((await readFile(mine('big.bin'))).equals(files['big.bin']!)).toBe(true);
  }, 60_000);

  it('put -c with it continues only what is not there: a remote file of other bytes is not hashed nor replaced', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'tree'));
    await writeFile(join(local, 'tree', 'same.txt'), 'same\n');
    await writeFile(join(local, 'tree', 'other.txt'), 'new bytes\n');
    await writeFile(join(local, 'tree', 'new.txt'), 'new\n');
    await mkdir(join(server.root!, 'tree'));
    await writeFile(join(server.root!, 'tree', 'same.txt'), 'same\n');
    await writeFile(join(server.root!, 'tree', 'other.txt'), 'old bytes\n');
    const outcomes = new Map(
      (await cli(['put', '-r', '-c', 'tree', '--ignore-existing'], local)).map((o) => [o.remote, o]),
    );
    // -c alone finds same.txt whole by its digest, and sends other.txt again.
    expect(outcomes.get('tree/same.txt')).toEqual({
      local: 'tree/same.txt',
      remote: 'tree/same.txt',
      ok: true,
      bytes: 5,
      skipped: true,
    });
    expect(outcomes.get('tree/other.txt')).toMatchObject({ skipped: true });
    expect(outcomes.get('tree/new.txt')!.skipped).toBeUndefined();
    expect(await readFile(join(server.root!, 'tree', 'other.txt'), 'utf8')).toBe('old bytes\n');
    expect(await readFile(join(server.root!, 'tree', 'new.txt'), 'utf8')).toBe('new\n');
  }, 60_000);

  it('put fails a file it cannot look for (an account without list), never replacing it, the dry run too', async () => {
    const users = addUser(emptyUsersFile(), {
      name: 'dropper',
      home: 'drop',
      passwordHash: await hashPassword('drop-pw'),
      permissions: ['write', 'mkdir'],
    });
    server = await startServer({ backend: 'disk', accounts: new Accounts({ users }) });
    const local = await tempDirs.make();
    await mkdir(join(server.root!, 'drop', 'tree'), { recursive: true });
    await writeFile(join(server.root!, 'drop', 'report.txt'), 'ORIGINAL\n');
    await mkdir(join(local, 'tree'));
    await writeFile(join(local, 'report.txt'), 'NEW\n');
    // A crowded directory: its listing is refused too, then each stat.
    for (let i = 0; i < 9; i++) {
      await writeFile(join(local, 'tree', `f${i}`), 'new\n');
      await writeFile(join(server.root!, 'drop', 'tree', `f${i}`), 'old\n');
    }
    const as = ['--server', `127.0.0.1:${server.port}`, '--user', 'dropper'];
    const env = { MUXFTP_PASSWORD: 'drop-pw' };
    const refused =
      'cannot tell whether report.txt exists (permission denied: user dropper has no list permission), so it is not sent: --ignore-existing replaces no file (PERMISSION_DENIED)';
    for (const dryRun of [['-n'], []]) {
      const one = await runCli([...as, 'put', 'report.txt', '--ignore-existing', ...dryRun], local, { env });
      expect(one).toMatchObject({ code: 1, stdout: '' });
      expect(one.stderr).toBe(`muxftp: put report.txt: ${refused}\n`);
      const tree = await runCli(
        [...as, '--json', 'put', '-r', 'tree', '--ignore-existing', ...dryRun],
        local,
        {
          env,
        },
      );
      expect(tree.code).toBe(1);
      const outcomes = JSON.parse(tree.stdout) as Outcome[];
      expect(outcomes).toHaveLength(9);
      for (const outcome of outcomes)
        expect(outcome).toMatchObject({ ok: false, error: { code: 'PERMISSION_DENIED' } });
    }
    expect(await readFile(join(server.root!, 'drop', 'report.txt'), 'utf8')).toBe('ORIGINAL\n');
    for (let i = 0; i < 9; i++)
      expect(await readFile(join(server.root!, 'drop', 'tree', `f${i}`), 'utf8')).toBe('old\n');
    // Without the flag the same account sends it: that is what it may do.
    expect((await runCli([...as, 'put', 'report.txt'], local, { env })).code).toBe(0);
    expect(await readFile(join(server.root!, 'drop', 'report.txt'), 'utf8')).toBe('NEW\n');
  }, 60_000);

  it('with --delete it leaves a link to a file alone as without it, put and get, the dry run saying the same', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await mkdir(join(local, 'lk'));
    await writeFile(join(local, 'lk', 'l'), 'local-l-content\n');
    await writeFile(join(local, 'lk', 't'), 'x\n');
    await mkdir(join(server.root!, 'lk'));
    await writeFile(join(server.root!, 'lk', 't'), 'remote-target\n');
    await symlink('t', join(server.root!, 'lk', 'l'));
    await mkdir(join(local, 'gl', 'lk'), { recursive: true });
    await writeFile(join(local, 'gl', 'lk', 't'), 'mine\n');
    await symlink('t', join(local, 'gl', 'lk', 'l'));
    const runs = [
      { args: ['put', '-r', 'lk', '--to', '/'], link: join(server.root!, 'lk', 'l') },
      { args: ['get', '-r', 'lk', 'gl'], link: join(local, 'gl', 'lk', 'l') },
    ];
    for (const { args, link } of runs) {
      for (const dryRun of [['-n'], []]) {
        const outcomes = await cli([...args, '--ignore-existing', '--delete', ...dryRun], local);
        expect(outcomes.map((o) => [o.remote, o.skipped, (o as { deleted?: boolean }).deleted])).toEqual([
          ['lk/l', true, undefined],
          ['lk/t', true, undefined],
        ]);
        expect((await lstat(link)).isSymbolicLink()).toBe(true);
        expect(await readlink(link)).toBe('t');
      }
    }
  }, 60_000);

  it('put - NAME leaves NAME alone when it is there; with another skip flag, or stdout, it is a usage error', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await writeFile(join(server.root!, 'kept.txt'), 'kept\n');
    const at = ['--server', `127.0.0.1:${server.port}`];
    const stdin = await runCli([...at, 'put', '-', 'kept.txt', '--ignore-existing'], local, {
      stdin: 'stdin\n',
    });
    expect(stdin).toMatchObject({ code: 0, stderr: '' });
    expect(await readFile(join(server.root!, 'kept.txt'), 'utf8')).toBe('kept\n');
    await runCli([...at, 'put', '-', 'fresh.txt', '--ignore-existing'], local, { stdin: 'stdin\n' });
    expect(await readFile(join(server.root!, 'fresh.txt'), 'utf8')).toBe('stdin\n');

    for (const flag of ['--skip-unchanged', '--skip-identical']) {
      const both = await runCli([...at, 'get', '-r', 'x', '--ignore-existing', flag], local);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain(
        `--ignore-existing skips every file already there: ${flag} would have nothing left to decide`,
      );
    }
    const stdout = await runCli([...at, 'get', 'kept.txt', '-', '--ignore-existing'], local);
    expect(stdout.code).toBe(2);
    expect(stdout.stderr).toContain("--ignore-existing does not apply to stdout ('-')");
  }, 60_000);

  it('put - NAME it leaves alone reads stdin to its end, so that the writer of a pipe is not cut (pipefail)', async () => {
    server = await startServer({ backend: 'disk' });
    const local = await tempDirs.make();
    await writeFile(join(server.root!, 'kept.txt'), 'kept\n');
    // 8 MiB: far more than a pipe holds, so the writer is still writing when the file is skipped.
    const script = `set -o pipefail; head -c 8388608 /dev/zero | "$0" "$@"; echo "statuses \${PIPESTATUS[*]}" >&2`;
    const at = ['--server', `127.0.0.1:${server.port}`];
    const piped = async (...putArgs: string[]): Promise<{ stdout: string; stderr: string }> => {
      const args = [CLI_BIN, ...at, '--json', 'put', '-', ...putArgs];
      // Not spawnSync: the server runs in this process.
      const shell = spawn('bash', ['-c', script, process.execPath, ...args], { cwd: local });
      const timer = setTimeout(() => shell.kill('SIGKILL'), 20_000);
      let stdout = '';
      let stderr = '';
      shell.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      shell.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      await new Promise((resolve) => shell.once('close', resolve));
      clearTimeout(timer);
      return { stdout, stderr };
    };
    // Before: head was cut by SIGPIPE (141), failing the pipeline though the put succeeded.
    const skipped = await piped('kept.txt', '--ignore-existing');
    expect(skipped.stderr).toBe('statuses 0 0\n');
    expect(JSON.parse(skipped.stdout)).toMatchObject([
      { local: '-', remote: 'kept.txt', ok: true, skipped: true },
    ]);
    // A dry run sends nothing either, skipped or not.
    for (const name of ['kept.txt', 'fresh.txt']) {
      const dryRun = await piped(name, '--ignore-existing', '-n');
      expect({ name, stderr: dryRun.stderr }).toEqual({ name, stderr: 'statuses 0 0\n' });
    }
    expect(await readFile(join(server.root!, 'kept.txt'), 'utf8')).toBe('kept\n');
    expect(existsSync(join(server.root!, 'fresh.txt'))).toBe(false);
  }, 60_000);
});
