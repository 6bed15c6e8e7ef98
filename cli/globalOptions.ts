/** The options every client command shares: where the server is and how to print results. */
import { type Command, Option } from 'commander';
import { parseServerAddress, type ServerAddress } from '../client/address.js';
import { DEFAULTS } from '../shared/defaults.js';
import { parseServerOption } from './optionParsers.js';

export interface GlobalOptions {
  server: ServerAddress;
  /** Machine-readable results on stdout, no progress. */
  json: boolean;
  /** No progress bars or summaries; failures are still reported. */
  quiet: boolean;
}

export const SERVER_ENV = 'MUXFTP_SERVER';

export function addGlobalOptions(program: Command): void {
  program
    .addOption(
      new Option('--server <host:port>', `server address (default ${DEFAULTS.host}:${DEFAULTS.port})`)
        .env(SERVER_ENV)
        .argParser(parseServerOption),
    )
    .option('--json', 'print machine-readable JSON results on stdout')
    .option('-q, --quiet', 'no progress bars or summaries');
}

/** The global options as seen from a subcommand's action. */
export function globalOptionsOf(command: Command): GlobalOptions {
  const options = command.optsWithGlobals<{ server?: ServerAddress; json?: boolean; quiet?: boolean }>();
  return {
    server: options.server ?? parseServerAddress(undefined),
    json: options.json === true,
    quiet: options.quiet === true,
  };
}
