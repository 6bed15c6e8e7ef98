/**
 * Uploads cut mid-way, as a killed `put -c` leaves them: the server keeps the whole blocks sent
 * (its abort over) for a later put -c to be offered.
 */
import { expect } from 'vitest';
import type { Client } from '../../client/client.js';
import { INTEGRITY_BLOCK_BYTES } from '../../shared/integrity/algorithms.js';
import type { UploadHandle } from '../../storage/types.js';
import type { TestServer } from './testServer.js';
import { until } from './waits.js';

const BLOCK = INTEGRITY_BLOCK_BYTES;

/**
 * Puts `source` to big.bin over `client`, resumable, and destroys `client` once 2.5 blocks are
 * sent: the put fails CONNECTION_LOST.
 */
export async function cutPut(client: Client, source: string): Promise<void> {
  await expect(
    client.put('big.bin', source, {
      resumable: true,
      onProgress: (done) => {
        if (done >= 2 * BLOCK + BLOCK / 2) void client.destroy();
      },
    }),
  ).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
}

/**
 * Cuts a resumable put of `source` to big.bin after 2.5 blocks sent and waits until the server
 * has kept its whole blocks for put -c. Kept means its abort is over: the hidden file is there
 * from the start and cut to whole blocks before it is closed, and until that abort ends a put -c
 * asking is offered nothing (on a loaded machine: the put then starts from 0).
 */
export async function cutAndKept(server: TestServer, source: string): Promise<void> {
  const uploads: UploadHandle[] = [];
  const createUpload = server.storage.createUpload.bind(server.storage);
  server.storage.createUpload = async (path, options) => {
    const upload = await createUpload(path, options);
    uploads.push(upload);
    return upload;
  };
  const cut = await server.connect();
  await cutPut(cut, source);
  server.storage.createUpload = createUpload;
  // The server starts the abort as it drops the stream (before it counts it closed): abort()
  // again is that abort, resolving once what it kept is offered.
  await until(() => server.server.stats().streams === 0, 'the server to drop the upload');
  expect(uploads).toHaveLength(1);
  expect(await uploads[0]!.abort()).toBeGreaterThan(0);
}
