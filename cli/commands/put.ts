/**
 * `muxftp put`: its options and help. What it does is in putRun.ts, loaded only when it runs: a
 * command's start-up loads what that command needs (test/cli.startup.test.ts).
 */
import type { Command } from 'commander';
import type { Output } from '../output.js';
import { addTransferOptions } from '../transferOptions.js';
import type { PutOptions } from './putRun.js';

const EXAMPLES = `
Examples:
  muxftp put report.pdf                     to report.pdf at the server's root
  muxftp put report.pdf docs/2025.pdf -p    another name, in docs/ (made)
  muxftp put *.log --to logs/ -p -j 4       into logs/ (made), 4 at a time
  muxftp put -r photos backup/              a tree, into backup/photos
  muxftp put -r photos/. backup/            what is in it (rsync's photos/)
  muxftp put -r photos backup/ --skip-unchanged --delete
                                            mirror: send only what changed,
                                            remove what photos/ lacks (-n:
                                            say what it would do, do nothing)
  muxftp put -r . site/                     the working directory, into site/
  tar c . | muxftp put - site.tar           stdin (a remote name is required)`;

export function registerPutCommand(program: Command, output: Output): void {
  const command = program
    .command('put')
    .summary('upload files (- reads stdin)')
    .description(
      'Upload local files, stdin (-) or, with -r, directory trees. Existing remote files are replaced.',
    )
    .argument('<local...>', 'local files; with exactly two and no --to, the second is the remote name');
  addTransferOptions(command, 'upload')
    .option(
      '-c, --continue',
      'continue what the server kept of an interrupted upload of the same file (checked block by block; not with stdin)',
    )
    .addHelpText('after', EXAMPLES)
    .action(async (args: string[], options: PutOptions, command: Command) => {
      const { runPut } = await import('./putRun.js');
      await runPut(args, options, command, output);
    });
}
