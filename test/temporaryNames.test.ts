/**
 * The temporary-name scheme (shared/temporaryNames.ts): each kind of name is recognised as itself
 * and as nothing else, a user's file whose name merely contains one is none of them (the server
 * sweeps its uploads' names at start: a false match there removes a user's file), and kept names
 * are one per key, never shared by two keys.
 */
import { describe, expect, it } from 'vitest';
import {
  downloadInProgressName,
  downloadPartialName,
  isDownloadPartialName,
  isPartialName,
  isTemporaryName,
  isUploadTemporaryName,
  newTemporaryName,
  parseDownloadInProgress,
  partialName,
  partialNamesPrefix,
} from '../shared/temporaryNames.js';

const hex = 'ab'.repeat(16);
const recognisers = { isUploadTemporaryName, isPartialName, isDownloadPartialName };

/** Which recognisers say yes to `name`. */
function recognisedAs(name: string): string[] {
  return Object.entries(recognisers)
    .filter(([, recognises]) => recognises(name))
    .map(([kind]) => kind);
}

describe('recognising temporary names', () => {
  it.each([
    [`.muxftp-${hex}.part`, ['isUploadTemporaryName']],
    [`.MUXFTP-${hex.toUpperCase()}.PART`, ['isUploadTemporaryName']],
    [`.muxftp-partial-${hex}.part`, ['isUploadTemporaryName', 'isPartialName']],
    [`.muxftp-get-${hex}.part`, ['isDownloadPartialName']],
    [`.muxftp-dl-${hex}.part`, []],
  ])('%s is %j', (name, kinds) => {
    expect(recognisedAs(name)).toEqual(kinds);
    expect(isTemporaryName(name)).toBe(true);
  });

  it.each([
    // A user's file whose name holds a temporary name after or before something else.
    `a.muxftp-${hex}.part`,
    `.muxftp-${hex}.part.txt`,
    `a.muxftp-partial-${hex}.part`,
    `.muxftp-partial-${hex}.part~`,
    `a.muxftp-get-${hex}.part`,
    `.muxftp-get-${hex}.partial`,
    // The wrong number of hex digits, or not hex.
    `.muxftp-${hex}0.part`,
    `.muxftp-${hex.slice(1)}.part`,
    `.muxftp-${'g'.repeat(32)}.part`,
    `.muxftp-partial-${hex}0.part`,
    `.muxftp-partial-${hex.slice(1)}.part`,
    `.muxftp-get-${hex}0.part`,
    `.muxftp-get-${hex.slice(1)}.part`,
    `.muxftp-get-${'g'.repeat(32)}.part`,
  ])('%s is none of them', (name) => {
    expect(recognisedAs(name)).toEqual([]);
  });
});

describe('making temporary names', () => {
  it("an upload's temporary name is reserved and distinct", () => {
    const first = newTemporaryName();
    expect(first).not.toBe(newTemporaryName());
    expect(isTemporaryName(first)).toBe(true);
    expect(recognisedAs(first)).toEqual(['isUploadTemporaryName']);
  });

  it("what a download keeps: one name per target, of fixed length, a kept download's and nothing else", () => {
    const long = 'n'.repeat(255);
    for (const target of ['f.bin', long]) {
      const name = downloadPartialName(target);
      expect(name).toBe(downloadPartialName(target));
      expect(name).toHaveLength('.muxftp-get-'.length + 32 + '.part'.length);
      expect(recognisedAs(name)).toEqual(['isDownloadPartialName']);
    }
    expect(downloadPartialName('f.bin')).not.toBe(downloadPartialName('g.bin'));
  });

  it('a download in progress names its owner, read back exactly; other names are not one', () => {
    // A host tag of today (16 hex digits), and an older muxftp's (8: its hostname's hash alone).
    for (const host of ['0123abcd4567ef89', '0123abcd']) {
      const owner = { host, pid: 4_194_304, run: 'deadbeef', seq: 17 };
      expect(parseDownloadInProgress(downloadInProgressName('f.bin', owner))).toEqual({
        ...owner,
        keptName: downloadPartialName('f.bin'),
      });
    }
    const owner = { host: '0123abcd4567ef89', pid: 4_194_304, run: 'deadbeef', seq: 17 };
    const name = downloadInProgressName('f.bin', owner);
    expect(name.startsWith(downloadPartialName('f.bin').slice(0, -'.part'.length))).toBe(true);
    expect(name.endsWith('.part')).toBe(true);
    expect(parseDownloadInProgress(name)).toEqual({ ...owner, keptName: downloadPartialName('f.bin') });
    expect(recognisedAs(name)).toEqual([]);
    expect(isTemporaryName(name)).toBe(true);
    for (const other of [
      `a${name}`,
      `${name}.txt`,
      name.replace('.part', '.bak'),
      downloadPartialName('f.bin'),
      name.replace('0123abcd4567ef89', '0123abcd4567'),
    ]) {
      expect(parseDownloadInProgress(other)).toBeUndefined();
    }
  });
});

describe('partialName', () => {
  const key = { size: 10, algorithm: 'xxh128', digest: 'ab'.repeat(16) };

  it("is a kept upload's name, under the prefix all of its target's kept names share", () => {
    const name = partialName('f.bin', key);
    expect(recognisedAs(name)).toEqual(['isUploadTemporaryName', 'isPartialName']);
    expect(name.startsWith(partialNamesPrefix('f.bin'))).toBe(true);
    expect(
      partialName('f.bin', { size: 10, algorithm: 'xxh128', source: 's' }).startsWith(
        partialNamesPrefix('f.bin'),
      ),
    ).toBe(true);
    expect(partialNamesPrefix('f.bin')).not.toBe(partialNamesPrefix('g.bin'));
  });

  it('is one name per key: the same for the same key (a digest in any letter case), another for any other', () => {
    expect(partialName('f.bin', { ...key })).toBe(partialName('f.bin', key));
    expect(partialName('f.bin', { ...key, digest: key.digest.toUpperCase() })).toBe(
      partialName('f.bin', key),
    );
    const names = [
      partialName('f.bin', key),
      partialName('g.bin', key),
      partialName('f.bin', { ...key, size: 11 }),
      partialName('f.bin', { ...key, algorithm: 'sha256' }),
      partialName('f.bin', { ...key, digest: 'cd'.repeat(16) }),
      // A source that reads like a digest is still another key than that digest.
      partialName('f.bin', { size: 10, algorithm: 'xxh128', source: key.digest }),
      partialName('f.bin', { size: 10, algorithm: 'xxh128', source: 'v2' }),
      partialName('f.bin', { size: 10, algorithm: 'xxh128' }),
      // Parts that run together: 'f.bin' + '10' and 'f.bin1' + '0' (the target's hash tells them apart).
      partialName('f.bin1', { ...key, size: 0 }),
    ];
    expect(new Set(names).size).toBe(names.length);
  });
});
