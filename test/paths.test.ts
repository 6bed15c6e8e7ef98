import * as nodeFs from 'node:fs/promises';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { namesDirectory } from '../shared/clientPaths.js';
import { DEFAULTS } from '../shared/defaults.js';
import { ERROR_STATUS, StorageError } from '../shared/errors.js';
import {
  baseName,
  ConfinedRoot,
  isTemporaryName,
  newTemporaryName,
  normalizeClientPath,
  parentPath,
  TEMP_PREFIX,
} from '../storage/paths.js';

function expectInvalid(path: unknown, message: RegExp): void {
  let caught: unknown;
  try {
    normalizeClientPath(path as string);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(StorageError);
  const error = caught as StorageError;
  expect(error.code).toBe('INVALID_PATH');
  expect(error.status).toBe(ERROR_STATUS.INVALID_PATH);
  expect(error.message).toMatch(message);
}

describe('normalizeClientPath', () => {
  it.each([
    ['', ''],
    ['.', ''],
    ['./', ''],
    ['.//', ''],
    ['a', 'a'],
    ['a/', 'a'],
    ['a//b/./c/', 'a/b/c'],
    ['./a/./b', 'a/b'],
    ['a/.../b', 'a/.../b'],
    ['..a/b..', '..a/b..'],
    ['.hidden', '.hidden'],
    ['with space/ü ñ 文件.txt', 'with space/ü ñ 文件.txt'],
    ['muxftp-not-reserved', 'muxftp-not-reserved'],
    ['a/.muxftp', 'a/.muxftp'],
  ])('normalizes %j to %j', (input, expected) => {
    expect(normalizeClientPath(input)).toBe(expected);
  });

  it.each([
    ['a/', true],
    ['a//', true],
    ['a/.', true],
    ['a/./', true],
    ['a/b/', true],
    ['a', false],
    ['a/b', false],
    ['a/.b', false],
    ['', false],
    ['.', false],
    ['./', false],
    ['././', false],
  ])('says whether %j names a directory by its trailing slash: %j', (input, expected) => {
    expect(namesDirectory(input)).toBe(expected);
  });

  it.each([[42], [null], [undefined], [['a']], [{}]])('refuses the non-string %j', (input) => {
    expectInvalid(input, /must be a string/);
  });

  it.each(['\0', 'a\0b', 'a/b\0'])('refuses a NUL byte in %j', (input) => {
    expectInvalid(input, /NUL/);
  });

  it.each(['a\nb', 'a\rb', '\t', 'a\u001fb', 'a\u007fb', '\u001b[31m'])(
    'refuses the control character in %j',
    (input) => {
      expectInvalid(input, /control character/);
    },
  );

  it('refuses a lone surrogate, which has no UTF-8 form', () => {
    expectInvalid('a\ud800b', /not valid Unicode/);
  });

  it.each(['a\\b', '\\', '..\\etc', 'C:\\Windows'])('refuses the backslash in %j', (input) => {
    expectInvalid(input, /backslash/);
  });

  it.each(['/', '/a', '//a', '/etc/passwd'])('refuses the absolute path %j', (input) => {
    expectInvalid(input, /relative/);
  });

  it.each(['..', '../a', 'a/..', 'a/../b', 'a/b/../../..', './..'])(
    'refuses the .. segment in %j',
    (input) => {
      expectInvalid(input, /'\.\.'/);
    },
  );

  it('accepts a name of exactly maxNameBytes bytes and refuses one byte more', () => {
    const longest = 'n'.repeat(DEFAULTS.maxNameBytes);
    expect(normalizeClientPath(`dir/${longest}`)).toBe(`dir/${longest}`);
    expectInvalid(`dir/${longest}n`, /name is longer than 255 bytes/);
  });

  it('counts name length in UTF-8 bytes, not characters', () => {
    // 128 two-byte characters: 128 characters, 256 bytes.
    expectInvalid('é'.repeat(128), /name is longer/);
    expect(normalizeClientPath('é'.repeat(127))).toBe('é'.repeat(127));
  });

  it('accepts a path of exactly maxPathBytes bytes and refuses one byte more', () => {
    const name = 'n'.repeat(99);
    const segments = Math.floor(DEFAULTS.maxPathBytes / 100);
    const base = Array.from({ length: segments }, () => name).join('/');
    const exact = `${base}/${'x'.repeat(DEFAULTS.maxPathBytes - base.length - 1)}`;
    expect(Buffer.byteLength(exact)).toBe(DEFAULTS.maxPathBytes);
    expect(normalizeClientPath(exact)).toBe(exact);
    expectInvalid(`${exact}x`, /longer than 4096 bytes/);
  });

  it('accepts a path of exactly maxPathDepth names and refuses one name more', () => {
    const deepest = Array.from({ length: DEFAULTS.maxPathDepth }, () => 'd').join('/');
    expect(normalizeClientPath(deepest)).toBe(deepest);
    expectInvalid(`${deepest}/d`, new RegExp(`more than ${DEFAULTS.maxPathDepth} names deep`));
    // Names, not slashes: empty and '.' segments do not count.
    expect(normalizeClientPath(`./${deepest.replaceAll('/', '//./')}/`)).toBe(deepest);
  });

  it('counts the raw input against maxPathBytes, even when it would normalize shorter', () => {
    expectInvalid(`a${'/'.repeat(DEFAULTS.maxPathBytes)}`, /longer than 4096 bytes/);
  });

  it.each([
    `${TEMP_PREFIX}x.part`,
    `a/${TEMP_PREFIX}1234.part`,
    `${TEMP_PREFIX}dir/file`,
    TEMP_PREFIX,
    '.MUXFTP-upper.part',
  ])('refuses the reserved temporary name in %j', (input) => {
    expectInvalid(input, /reserved/);
  });

  it('puts the offending input in error.path', () => {
    try {
      normalizeClientPath('a/../b');
      expect.unreachable();
    } catch (error) {
      expect((error as StorageError).path).toBe('a/../b');
    }
  });
});

describe('temporary names', () => {
  it('makes distinct reserved names that clients cannot address', () => {
    const first = newTemporaryName();
    const second = newTemporaryName();
    expect(first).not.toBe(second);
    expect(first).toMatch(/^\.muxftp-[0-9a-f]{32}\.part$/);
    expect(isTemporaryName(first)).toBe(true);
    expectInvalid(first, /reserved/);
  });

  it('recognizes the prefix in any case and nothing else', () => {
    expect(isTemporaryName('.muxftp-x')).toBe(true);
    expect(isTemporaryName('.Muxftp-x')).toBe(true);
    expect(isTemporaryName('.muxftp')).toBe(false);
    expect(isTemporaryName('muxftp-x')).toBe(false);
    expect(isTemporaryName('x.muxftp-')).toBe(false);
  });
});

describe('baseName and parentPath', () => {
  it.each([
    ['', '', ''],
    ['a', 'a', ''],
    ['name.txt', 'name.txt', ''],
    ['a/b', 'b', 'a'],
    ['a/b/c.txt', 'c.txt', 'a/b'],
  ])('split %j into name %j under %j', (path, name, parent) => {
    expect(baseName(path)).toBe(name);
    expect(parentPath(path)).toBe(parent);
  });
});

describe('ConfinedRoot', () => {
  it('finds the root once it exists, after a first resolve failed (e.g. not mounted yet)', async () => {
    const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'muxftp-paths-')));
    try {
      const root = path.join(dir, 'root');
      const confined = new ConfinedRoot(nodeFs, root, path);
      // Said of the root itself (''), not of the path asked for.
      await expect(confined.resolve('a')).rejects.toMatchObject({ code: 'NOT_FOUND', path: '' });
      await mkdir(root);
      expect(await confined.resolve('a')).toEqual({
        clientPath: 'a',
        hostPath: path.join(root, 'a'),
        realPath: path.join(root, 'a'),
        missingNames: 1,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says NOT_FOUND for a path under a root removed after it was found, as for any missing path', async () => {
    const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'muxftp-paths-')));
    try {
      const root = path.join(dir, 'root');
      await mkdir(root);
      const confined = new ConfinedRoot(nodeFs, root, path);
      expect((await confined.resolve('a/b')).missingNames).toBe(2);
      await rm(root, { recursive: true });
      await expect(confined.resolve('a/b')).rejects.toMatchObject({ code: 'NOT_FOUND', path: 'a/b' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts a path on another Windows drive as outside the root', () => {
    const confined = new ConfinedRoot(
      { realpath: async (p) => p, lstat: nodeFs.lstat },
      'C:\\root',
      path.win32,
    );
    expect(confined.isWithin('C:\\root', 'C:\\root\\a')).toBe(true);
    // Across drives win32's relative() is the absolute target itself, with no '..' in it.
    expect(confined.isWithin('C:\\root', 'D:\\root\\a')).toBe(false);
    expect(confined.isWithin('C:\\root', 'C:\\rootless')).toBe(false);
  });
});
