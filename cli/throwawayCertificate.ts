/**
 * `bench --local --tls`: a self-signed certificate for 127.0.0.1, made with the openssl CLI in a
 * temporary directory, removed once the server has read it (cli/localServer.ts). The bench's clients trust exactly it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ThrowawayCertificate {
  certPath: string;
  keyPath: string;
  /** The certificate's PEM, which is also its own CA. */
  pem: string;
  remove(): Promise<void>;
}

export async function makeThrowawayCertificate(): Promise<ThrowawayCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'muxftp-bench-tls-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  try {
    // P-256 key, TLS 1.3 with AES-GCM by default: what a real deployment would most likely use.
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'openssl is not installed'
        : (error as Error).message;
    throw new Error(`bench --local --tls needs the openssl CLI to make a certificate: ${reason}`, {
      cause: error,
    });
  }
  return {
    certPath,
    keyPath,
    pem: await readFile(certPath, 'utf8'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
