/**
 * How a client command reaches the server: TLS or not and which certificates to trust, and who
 * to log in as, with the password from $MUXFTP_PASSWORD, a credentials file (mode 0600 only), or
 * a prompt on the terminal — never from argv.
 */
import { X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { ClientOptions } from '../client/client.js';
import { DEFAULTS } from '../shared/defaults.js';
import { errnoReason } from '../shared/errnoReasons.js';
import { ANONYMOUS_USER } from '../shared/protocol/messages.js';
import { readFileAtMost } from '../shared/readAtMost.js';
import { CliError } from './cliError.js';
import {
  hasControllingTerminal,
  inTerminalForeground,
  openControllingTerminal,
  promptHidden,
} from './passwordPrompt.js';
import { isLoopback, readPem } from './serverAccess.js';

const PASSWORD_ENV = 'MUXFTP_PASSWORD';

export interface AccessOptions {
  /** Log in as this user. */
  user?: string;
  /** JSON `{"user": …, "password": …}`, mode 0600. */
  credentials?: string;
  /** Connect over TLS (implied by `ca` and `insecure`). */
  tls: boolean;
  /** PEM file of the CA that signed the server's certificate. */
  ca?: string;
  /** Accept any server certificate. */
  insecure: boolean;
}

/**
 * What a client command connects with. `askPassword`: the prompt not shown yet, to be shown only
 * once a server says it wants a password for `user`; it gives the options to connect with then.
 */
export type ClientAccess = Pick<ClientOptions, 'tls' | 'user' | 'password'> & {
  askPassword?: () => Promise<ClientAccess>;
};

/**
 * A `--credentials` or `--ca` file that cannot be used: LOCAL_IO_ERROR, its line ending in the
 * code as every failure's does.
 */
function unusableFile(message: string, options: { cause?: unknown } = {}): CliError {
  return new CliError(message, { ...options, code: 'LOCAL_IO_ERROR', showsCode: true });
}

/** A credentials file others can read is refused, as ssh refuses such a key. */
async function readCredentialsFile(path: string): Promise<{ user?: string; password: string }> {
  const info = await stat(path).catch((error: Error) => {
    throw unusableFile(`cannot read credentials file ${path}: ${errnoReason(error)}`, { cause: error });
  });
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
    throw unusableFile(
      `credentials file ${path} is open to other users (mode ${mode}); it must be 600: chmod 600 ${path}`,
    );
  }
  // A directory, or a file this user may not read: said as that, not as a JSON error. At most
  // its cap: a mode-600 pipe (`--credentials /dev/stdin`) was read to the end, however far.
  const bytes = await readFileAtMost(path, DEFAULTS.maxCredentialsFileBytes, 'a credentials file').catch(
    (error: Error) => {
      throw unusableFile(`cannot read credentials file ${path}: ${errnoReason(error)}`, { cause: error });
    },
  );
  const text = bytes.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw unusableFile(`credentials file ${path} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const o = parsed as { user?: unknown; password?: unknown } | null;
  if (typeof o !== 'object' || o === null || typeof o.password !== 'string') {
    throw unusableFile(`credentials file ${path} must be {"user": "…", "password": "…"}`);
  }
  if (o.user !== undefined && (typeof o.user !== 'string' || o.user === ''))
    throw unusableFile(`credentials file ${path}: "user" must be a non-empty string`);
  return o.user === undefined ? { password: o.password } : { user: o.user, password: o.password };
}

/** Asks on the process's terminal when stdin is not one; undefined when there is no terminal. */
async function promptOnControllingTerminal(prompt: string): Promise<string | undefined> {
  const terminal = openControllingTerminal();
  if (terminal === undefined) return undefined;
  try {
    return await promptHidden(prompt, terminal);
  } finally {
    terminal.destroy();
  }
}

/**
 * The Client options for `access` towards `host`, and `askPassword`: the prompt on the terminal,
 * not shown yet (openClient shows it once a server says it wants a password; a server that takes
 * no logins needs none). With `promptNow`, the prompt is shown here (a caller that cannot wait).
 * Where no password can be had (no terminal, in its background, an empty $MUXFTP_PASSWORD) it
 * fails here, before connecting.
 */
export async function clientAccessOptions(
  access: AccessOptions,
  host: string,
  env: NodeJS.ProcessEnv = process.env,
  { promptNow = false }: { promptNow?: boolean } = {},
): Promise<ClientAccess> {
  const tlsWanted = access.tls || access.ca !== undefined || access.insecure;
  if (access.insecure) {
    process.stderr.write(
      "muxftp: WARNING: --insecure: the server's certificate is not checked; anyone on the path can pose as the server and read or change what is sent\n",
    );
  }
  const tls = tlsWanted
    ? {
        ...(access.ca !== undefined
          ? {
              ca: await readCaFile(access.ca),
            }
          : {}),
        rejectUnauthorized: !access.insecure,
      }
    : undefined;
  const fromFile =
    access.credentials === undefined ? undefined : await readCredentialsFile(access.credentials);
  const user = access.user ?? fromFile?.user;
  if (user === undefined) return tls === undefined ? {} : { tls };
  // `--user anonymous` (serve --anonymous) has no password: the name is reserved, no account has one.
  if (user === ANONYMOUS_USER) return tls === undefined ? { user } : { tls, user };
  const loggingIn = (password: string): ClientAccess => {
    if (tls === undefined && !isLoopback(host)) {
      process.stderr.write(`muxftp: warning: logging in to ${host} without TLS (use --tls)\n`);
    }
    return { ...(tls !== undefined ? { tls } : {}), user, password };
  };
  const noPassword = (why: string): CliError =>
    new CliError(`no password for ${user}: ${why}`, { code: 'LOGIN_FAILED', showsCode: true });
  // No account has an empty password (user add refuses it): sending one would only cost a failed
  // login, counted towards the server's refusal of this address.
  if (fromFile !== undefined && (fromFile.user === undefined || fromFile.user === user)) {
    if (fromFile.password === '')
      throw noPassword(`the credentials file ${access.credentials} has an empty "password"`);
    return loggingIn(fromFile.password);
  }
  if (env[PASSWORD_ENV] === '')
    throw noPassword(`$${PASSWORD_ENV} is set but empty (a CI secret that is not defined?)`);
  if (env[PASSWORD_ENV] !== undefined) return loggingIn(env[PASSWORD_ENV]);
  if (!inTerminalForeground()) {
    throw noPassword(
      `set $${PASSWORD_ENV} or use --credentials FILE (no prompt: the process is in the background of its terminal, as under timeout without --foreground)`,
    );
  }
  // On the terminal: stdin when it is one, else the process's own (stdin may carry data: put -).
  const onStdin = process.stdin.isTTY === true;
  const noTerminal = (): CliError =>
    fromFile !== undefined
      ? noPassword(`the credentials file ${access.credentials} is for ${fromFile.user}`)
      : noPassword(`set $${PASSWORD_ENV}, use --credentials FILE, or run on a terminal to be asked`);
  if (!onStdin && !hasControllingTerminal()) throw noTerminal();
  const prompt = `password for ${user}: `;
  const ask = async (): Promise<ClientAccess> => {
    const password = onStdin ? await promptHidden(prompt) : await promptOnControllingTerminal(prompt);
    if (password === undefined) throw noTerminal();
    return loggingIn(password);
  };
  if (promptNow) return ask();
  return { ...(tls !== undefined ? { tls } : {}), user, askPassword: ask };
}

/**
 * The PEM certificates of `--ca`: a file without one (empty, a key, a users file) is said to be
 * so here, not found out as "the server's certificate is not signed by the CA given".
 */
async function readCaFile(path: string): Promise<Buffer> {
  const pem = await readPem(path).catch((error: Error) => {
    throw unusableFile(`cannot read --ca ${path}: ${errnoReason(error)}`, { cause: error });
  });
  // A leading UTF-8 BOM, which OpenSSL skips.
  const text = pem.toString('latin1').replace(/^\xEF\xBB\xBF/, '');
  // As OpenSSL reads them: a BEGIN line at a line's start only (an indented one, in notes or a
  // YAML excerpt, is text to it); its TRUSTED CERTIFICATE (a certificate with trust settings:
  // Fedora's ca-bundle.trust.crt) and the old X509 CERTIFICATE are certificates too.
  const blocks = [
    ...text.matchAll(
      /^-----BEGIN (TRUSTED |X509 )?CERTIFICATE-----[\s\S]*?(?:^-----END \1CERTIFICATE-----|(?![\s\S]))/gm,
    ),
  ];
  if (blocks.length === 0) {
    // One there all the same, indented or after text on its line: not "holds no PEM certificate"
    // of a file that shows one.
    const misplaced = /-----BEGIN (TRUSTED |X509 )?CERTIFICATE-----/.exec(text);
    if (misplaced !== null) {
      const line = text.slice(0, misplaced.index).split('\n').length;
      throw unusableFile(
        `--ca ${path} holds no PEM certificate OpenSSL reads: the ${misplaced[0]} on line ${line} does not start its line (indented, or after other text), and only one that does is read`,
      );
    }
    throw unusableFile(`--ca ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  // Node skips a certificate that does not parse without a word: the server's was then "not
  // signed by the CA given".
  for (const block of blocks) {
    try {
      new X509Certificate(block[0]);
    } catch {
      const line = text.slice(0, block.index).split('\n').length;
      throw unusableFile(
        `--ca ${path}: the certificate from line ${line} does not parse: cut short or changed in a copy?`,
      );
    }
  }
  return pem;
}
