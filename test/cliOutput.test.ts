/** How the CLI words an error on one line: expected errors plainly, a broken install with its fix. */
import { describe, expect, it } from 'vitest';
import { CliError } from '../cli/cliError.js';
import { describeError } from '../cli/output.js';
import { MuxftpError } from '../shared/errors.js';

describe('describeError', () => {
  it('names the code of a protocol error, and nothing more for a CLI error', () => {
    expect(describeError(new MuxftpError('NOT_FOUND', 'no such file: a'))).toBe(
      'no such file: a (NOT_FOUND)',
    );
    expect(describeError(new CliError('bad flag'))).toBe('bad flag');
  });

  it('says how to mend a package that is missing, instead of a stack', () => {
    const missing = Object.assign(new Error("Cannot find package 'hdr-histogram-js'"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    expect(describeError(missing)).toBe(
      "not installed completely (Cannot find package 'hdr-histogram-js'); run npm ci",
    );
    expect(describeError(new TypeError('x is undefined'))).toMatch(
      /^internal error: TypeError: x is undefined\n/,
    );
  });
});
