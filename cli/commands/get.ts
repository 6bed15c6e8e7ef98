/**
 * `muxftp get`: its options and help. What it does is in getRun.ts, loaded only when it runs: a
 * command's start-up loads what that command needs (test/cli.startup.test.ts).
 */
import type { Command } from 'commander';
import type { Output } from '../output.js';
import { addTransferOptions } from '../transferOptions.js';
import type { GetOptions } from './getRun.js';

const EXAMPLES = `
Examples:
  muxftp get report.pdf                      to ./report.pdf
  muxftp get docs/2025.pdf ~/r.pdf           under another name
  muxftp get a.log b.log --to logs/ -p -j 4  into logs/ (made), 4 at a time
  muxftp get -r backup/photos .              a tree, into ./photos
  muxftp get -r / --to all -p                everything on the server, into all/
  muxftp get 'logs/*.log' --to saved/ -p     quoted: matched on the server
  muxftp get site.tar - | tar x              to stdout`;

export function registerGetCommand(program: Command, output: Output): void {
  const command = program
    .command('get')
    .summary('download files (- writes stdout)')
    .description(
      'Download remote files, to stdout (-) or, with -r, directory trees. Existing local files are replaced. A download into a file that fails keeps what it received (whole 4 MiB blocks) in a hidden .muxftp-get-*.part beside the target, which get -c continues.',
    )
    .argument(
      '<remote...>',
      "remote files ('logs/*.log': wildcards expanded on the server's listing); with exactly two and no --to, the second is the local name",
    );
  addTransferOptions(command, 'download')
    .option(
      '-c, --continue',
      'continue what a failed get kept (hidden, beside the target), else a partial local file, from its last whole block, after checking those blocks against the server (not with stdout)',
    )
    .addHelpText('after', EXAMPLES)
    .action(async (args: string[], options: GetOptions, command: Command) => {
      const { runGet } = await import('./getRun.js');
      await runGet(args, options, command, output);
    });
}
