import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { xxhash128 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../shared/errors.js';
import { idleXxh128Instances } from '../shared/integrity/blockHash.js';
import {
  INTEGRITY_BLOCK_BYTES as B,
  ContentDigester,
  chooseIntegrityAlgorithm,
  contentDigest,
  type IntegrityAlgorithm,
} from '../shared/integrity/index.js';

/** H as an independent one-shot implementation: node:crypto for sha256, hash-wasm's one-shot xxhash128. */
async function oneShot(algorithm: IntegrityAlgorithm, data: Uint8Array): Promise<Buffer> {
  if (algorithm === 'sha256') return createHash('sha256').update(data).digest();
  return Buffer.from(await xxhash128(data), 'hex');
}

/** Dropbox's published content_hash algorithm, generalised over H (dropbox-api-content-hasher's referenceHasher). */
async function reference(
  algorithm: IntegrityAlgorithm,
  data: Uint8Array,
): Promise<{ digest: Buffer; blocks: Buffer[] }> {
  const blocks: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += B)
    blocks.push(await oneShot(algorithm, data.subarray(pos, pos + B)));
  return { digest: await oneShot(algorithm, Buffer.concat(blocks)), blocks };
}

function feed(
  algorithm: IntegrityAlgorithm,
  data: Uint8Array,
  chunkSizes: readonly number[],
): ContentDigester {
  const digester = new ContentDigester(algorithm);
  let pos = 0;
  for (const size of chunkSizes) {
    digester.update(data.subarray(pos, pos + size));
    pos += size;
  }
  digester.digest();
  return digester;
}

const sum = (sizes: readonly number[]) => sizes.reduce((a, b) => a + b, 0);

// Dropbox's own chunking cases (run-tests.js), plus the block boundaries issue #11 names.
const CHUNKINGS: readonly (readonly number[])[] = [
  [0],
  [1],
  [100, 10],
  [B - 1],
  [B],
  [B + 1],
  [B - 2, 1],
  [B - 2, 3],
  [B - 2, B + 2],
  [5, 5, 5, 3 * B],
  [3 * B + 1], // a last block of one byte
  [256 * 1024, 3 * B - 256 * 1024 + 1],
];
const data = randomBytes(Math.max(...CHUNKINGS.map(sum), 5 * B + 12_345));

describe.each(['sha256', 'xxh128'] as const)('content digest, %s', (algorithm) => {
  it.each(CHUNKINGS.map((sizes) => [sizes.map(String).join('+'), sizes] as const))(
    'fed as %s equals the reference, block by block',
    async (_name, sizes) => {
      const digester = feed(algorithm, data, sizes);
      const expected = await reference(algorithm, data.subarray(0, sum(sizes)));
      expect(digester.blockDigests.map((d) => d.toString('hex'))).toEqual(
        expected.blocks.map((d) => d.toString('hex')),
      );
      expect(digester.digest().toString('hex')).toBe(expected.digest.toString('hex'));
      expect(digester.bytes).toBe(sum(sizes));
    },
  );

  it('many blocks in uneven chunks that straddle every boundary', async () => {
    const size = 5 * B + 12_345;
    const sizes: number[] = [];
    for (let left = size, i = 0; left > 0; i++) {
      const next = Math.min(left, [1, 65_536, 1_000_003, 262_144, 7][i % 5]!);
      sizes.push(next);
      left -= next;
    }
    const digester = feed(algorithm, data, sizes);
    expect(digester.blockDigests).toHaveLength(6);
    expect(digester.digest().equals((await reference(algorithm, data.subarray(0, size))).digest)).toBe(true);
  });

  it('a changed byte in any block changes D', () => {
    const size = 3 * B + 1;
    const original = contentDigest(algorithm, data.subarray(0, size));
    for (const at of [0, B - 1, B, 2 * B + 17, 3 * B]) {
      const copy = Buffer.from(data.subarray(0, size));
      copy[at]! ^= 0x01;
      expect(contentDigest(algorithm, copy).equals(original), `byte ${at}`).toBe(false);
    }
  });

  it('interleaved digesters (more than the wasm pool holds) do not mix their states', async () => {
    const count = idleXxh128Instances() + 24;
    const sizes = Array.from({ length: count }, (_, i) => 70_000 + i * 1_001);
    const digesters = sizes.map(() => new ContentDigester(algorithm));
    for (let round = 0; round < 3; round++) {
      digesters.forEach((digester, i) => {
        const third = Math.ceil(sizes[i]! / 3);
        digester.update(data.subarray(i + round * third, i + Math.min((round + 1) * third, sizes[i]!)));
      });
    }
    for (const [i, digester] of digesters.entries()) {
      const expected = await reference(algorithm, data.subarray(i, i + sizes[i]!));
      expect(digester.digest().toString('hex'), `digester ${i}`).toBe(expected.digest.toString('hex'));
    }
  });
});

describe('the one XXH3-128 instance streams share once the pool is empty', () => {
  it("a stream given up while another holds the instance leaves that one's state alone", async () => {
    // Every idle instance taken (synchronously: no refill lands meanwhile), so these share one.
    const pooled = Array.from({ length: idleXxh128Instances() }, () => new ContentDigester('xxh128'));
    let thirdDigest: Buffer;
    let keptDigest: Buffer;
    const [gone, kept, third] = [0, 1, 2].map(() => new ContentDigester('xxh128'));
    try {
      gone!.update(data.subarray(0, 1000));
      kept!.update(data.subarray(1000, 2000)); // kept holds the instance now
      gone!.release(); // a cancelled transfer's: it does not hold the instance
      third!.update(data.subarray(5000, 6000)); // takes the instance over, saving kept's state
      kept!.update(data.subarray(2000, 3000));
      thirdDigest = third!.digest();
      keptDigest = kept!.digest();
    } finally {
      for (const digester of [...pooled, kept!, third!]) digester.release();
    }
    expect(keptDigest.toString('hex')).toBe(
      (await reference('xxh128', data.subarray(1000, 3000))).digest.toString('hex'),
    );
    expect(thirdDigest.toString('hex')).toBe(
      (await reference('xxh128', data.subarray(5000, 6000))).digest.toString('hex'),
    );
  });
});

describe('a finished digester', () => {
  it.each(['sha256', 'xxh128'] as const)(
    '%s: refuses more bytes after its digest, which stays as it was',
    (algorithm) => {
      const digester = new ContentDigester(algorithm);
      digester.update(data.subarray(0, 100));
      const digest = digester.digest();
      expect(() => digester.update(data.subarray(100, 200))).toThrow(/update\(\) after digest\(\)/);
      expect(digester.digest().equals(digest)).toBe(true);
      expect(digester.bytes).toBe(100);
    },
  );
});

describe('known answers', () => {
  it('the empty file: D is H of the empty string, as Dropbox defines it', () => {
    expect(contentDigest('sha256', Buffer.alloc(0)).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(contentDigest('xxh128', Buffer.alloc(0)).toString('hex')).toBe('99aa06d3014798d86001c324468d497f');
  });

  it('one byte: D = H(H(byte))', () => {
    const inner = createHash('sha256').update('a').digest();
    expect(
      contentDigest('sha256', Buffer.from('a')).equals(createHash('sha256').update(inner).digest()),
    ).toBe(true);
  });

  // Dropbox's published example (developers/reference/content-hash): milky-way-nasa.jpg, 9,711,423
  // bytes. The image is not in this repository (no network in tests); point MUXFTP_DROPBOX_EXAMPLE at it.
  const example = process.env.MUXFTP_DROPBOX_EXAMPLE;
  it.skipIf(example === undefined || !existsSync(example))(
    "sha256 mode equals Dropbox's example content_hash",
    () => {
      const bytes = readFileSync(example!);
      expect(bytes.length).toBe(9_711_423);
      expect(contentDigest('sha256', bytes).toString('hex')).toBe(
        '485291fa0ee50c016982abbfa943957bcd231aae0492ccbaa22c58e3997b35e0',
      );
    },
  );
});

describe('negotiation', () => {
  it('the server takes the first algorithm of the client it supports', () => {
    expect(chooseIntegrityAlgorithm(['xxh128', 'sha256'])).toBe('xxh128');
    expect(chooseIntegrityAlgorithm(['sha256', 'xxh128'])).toBe('sha256');
    expect(chooseIntegrityAlgorithm(['sha256'])).toBe('sha256');
    expect(chooseIntegrityAlgorithm(['blake3', 'xxh128'])).toBe('xxh128');
    expect(chooseIntegrityAlgorithm(['xxh128', 'sha256'], ['sha256'])).toBe('sha256');
  });

  it('no algorithm in common is a VERSION_MISMATCH naming both lists', () => {
    for (const [offered, supported] of [
      [['md5'], undefined],
      [[], undefined],
      [['xxh128'], ['sha256']],
    ] as const) {
      let caught: unknown;
      try {
        chooseIntegrityAlgorithm(offered, supported);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ProtocolError);
      expect(caught).toMatchObject({ code: 'VERSION_MISMATCH', status: 106, fatal: true });
      expect((caught as Error).message).toMatch(/no common integrity algorithm/);
    }
  });

  it("names both lists as they are, and a hostile client's long one only in part", () => {
    expect(() => chooseIntegrityAlgorithm(['md5', 'blake3'])).toThrow(
      'client offers [md5, blake3], server supports [xxh128, sha256]',
    );
    const many = Array.from({ length: 10_000 }, (_, i) => `algorithm-${i}`);
    let message = '';
    try {
      chooseIntegrityAlgorithm(many);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('client offers [algorithm-0, algorithm-1, ');
    expect(message.length).toBeLessThan(400);
  });
});
