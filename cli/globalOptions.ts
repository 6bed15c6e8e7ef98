/** The options every client command shares: where the server is and how to print results. */
import { type Command, Option } from 'commander';
import { parseServerAddress, type ServerAddress } from '../client/address.js';
import { DEFAULTS } from '../shared/defaults.js';
import type { AccessOptions } from './clientAccess.js';
import { parseServerOption } from './optionParsers.js';

export interface GlobalOptions {
  server: ServerAddress;
  /** Machine-readable results on stdout, no progress. */
  json: boolean;
  /** No progress bars or summaries; failures are still reported. */
  quiet: boolean;
  /** TLS and login. */
  access: AccessOptions;
}

export const SERVER_ENV = 'MUXFTP_SERVER';

export function addGlobalOptions(program: Command): void {
  program
    .addOption(
      new Option(
        '--server <host:port>',
        `server address, [v6]:port for IPv6 (default ${DEFAULTS.host}:${DEFAULTS.port})`,
      )
        .env(SERVER_ENV)
        .argParser(parseServerOption),
    )
    .option('--json', 'print machine-readable JSON results on stdout')
    .option('-q, --quiet', 'no progress bars or summaries')
    .option('--user <name>', 'log in as NAME (password from $MUXFTP_PASSWORD, --credentials, or a prompt)')
    .option('--credentials <file>', 'JSON {"user","password"} file, mode 600 only')
    .option('--tls', 'connect over TLS, checking the certificate against the system CAs')
    .option('--ca <file>', 'with TLS: trust the CA certificate(s) in this PEM file (implies --tls)')
    .option('--insecure', 'with TLS: accept any server certificate (implies --tls; warned about every time)');
}

/** The global options as seen from a subcommand's action. */
export function globalOptionsOf(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<{
    server?: ServerAddress;
    json?: boolean;
    quiet?: boolean;
    user?: string;
    credentials?: string;
    tls?: boolean;
    ca?: string;
    insecure?: boolean;
  }>();
  return {
    server: options.server ?? parseServerAddress(undefined),
    json: options.json === true,
    quiet: options.quiet === true,
    access: {
      ...(options.user !== undefined ? { user: options.user } : {}),
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      tls: options.tls === true,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      insecure: options.insecure === true,
    },
  };
}
