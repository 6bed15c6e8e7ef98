/**
 * The docs against the code: docs/PROTOCOL.md's error and frame tables list exactly what the code
 * sends, README.md names every option of `muxftp serve`, and every file the docs link to or
 * name is in the repository.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../cli/main.js';
import { Output } from '../cli/output.js';
import { ERROR_STATUS } from '../shared/errors.js';
import { FrameType } from '../shared/protocol/constants.js';

const ROOT = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const protocol = read('docs/PROTOCOL.md');

/** The rows of the first Markdown table under `## heading` whose first cell matches `firstCell`. */
function tableRows(markdown: string, heading: string, firstCell: RegExp): string[][] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith(`${heading}\n`));
  if (section === undefined) throw new Error(`no section "## ${heading}"`);
  return section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
    .filter((cells) => firstCell.test(cells[0] ?? ''));
}

describe('docs/PROTOCOL.md', () => {
  it('lists every wire error code with its status, and no other', () => {
    const documented = Object.fromEntries(
      tableRows(protocol, 'Errors', /^\d{3}$/).map(([status, code]) => [code, Number(status)]),
    );
    const onTheWire = Object.fromEntries(Object.entries(ERROR_STATUS).filter(([, status]) => status < 400));
    expect(documented).toEqual(onTheWire);
  });

  it('names every client-local code (4xx) as never on the wire', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      if (status >= 400) expect(protocol).toContain(`\`${code}\``);
    }
  });

  it('lists every frame type with its number, and no other', () => {
    const documented = Object.fromEntries(
      tableRows(protocol, 'Frames', /^0x[0-9A-Fa-f]{2}$/).map(([type, name]) => [name, Number(type)]),
    );
    expect(documented).toEqual({ ...FrameType });
  });
});

describe("README.md's server section", () => {
  it('names every option of muxftp serve in its synopsis and in its table', () => {
    const program = createProgram(new Output(new PassThrough(), new PassThrough()));
    const serve = program.commands.find((command) => command.name() === 'serve')!;
    const options = serve.options.map((option) => option.long!).filter((long) => long !== '--help');
    expect(options.length).toBeGreaterThan(10);
    const readme = read('README.md');
    const synopsis = readme.slice(readme.indexOf('muxftp serve ['), readme.indexOf('| option |'));
    const table = readme.slice(
      readme.indexOf('| option |'),
      readme.indexOf('\n\n', readme.indexOf('| option |')),
    );
    // Named as itself (`--x`, [--x, a|--x), not as the start of a longer option.
    const names = (text: string, long: string) => new RegExp(`[[ |\`]${long}(?![\\w-])`).test(text);
    expect(options.filter((long) => !names(synopsis, long))).toEqual([]);
    expect(options.filter((long) => !names(table, long))).toEqual([]);
  });
});

describe('files the docs point at', () => {
  const docs = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
    ...readdirSync(join(ROOT, 'bench'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `bench/${f}`),
  ];
  /** Built by `npm run docs` / `npm run build`, not committed: linking to them is fine. */
  const generated = ['docs/api/', 'dist/'];

  it.each(docs)('%s links to and names only files that exist', (doc) => {
    const text = read(doc);
    const links = [...text.matchAll(/\]\(([^)\s#]+)(?:#[^)]*)?\)/g)]
      .map((m) => m[1]!)
      .filter((target) => !/^[a-z]+:/.test(target))
      .map((target) => resolve(ROOT, dirname(doc), target));
    // `dir/file.ext` in backquotes: a path in the repository, from its root.
    const named = [...text.matchAll(/`([\w.-]+(?:\/[\w.-]+)+\.(?:ts|mjs|js|md|json))`/g)].map((m) =>
      resolve(ROOT, m[1]!),
    );
    // Outside the repository counts as missing, even when this machine happens to have it.
    const missing = [...links, ...named]
      .map((path) => relative(ROOT, path))
      .filter((path) => !generated.some((g) => path.startsWith(g)))
      .filter((path) => path.startsWith('..') || !existsSync(join(ROOT, path)));
    expect(missing).toEqual([]);
  });
});
