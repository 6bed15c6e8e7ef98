/**
 * The system Chromium for browser tests (Debian's `chromium` package, driven by playwright-core).
 * When it is missing and we are root with apt-get, it is installed once; otherwise the caller
 * skips with the reason this returns.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/snap/bin/chromium'];

function found(): string | undefined {
  return CANDIDATES.find((path) => existsSync(path));
}

/** The path of a Chromium executable, or `{ skip }` saying why there is none. */
export async function systemChromium(): Promise<{ path: string } | { skip: string }> {
  const present = found();
  if (present !== undefined) return { path: present };
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    return {
      skip: 'no Chromium (/usr/bin/chromium) and not root with apt-get to install it: apt-get install chromium',
    };
  }
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env, timeout: 180_000 });
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env, timeout: 420_000 });
  } catch (error) {
    return {
      skip: `Chromium could not be installed with apt-get: ${(error as Error).message.split('\n')[0]}`,
    };
  }
  const installed = found();
  return installed !== undefined
    ? { path: installed }
    : { skip: 'apt-get installed chromium but no executable was found' };
}
