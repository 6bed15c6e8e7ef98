/**
 * A test's tree written in one call: the files of a local source or a server's root, each with its
 * content, in place of a mkdir per directory and a writeFile per file.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Writes each of `files` (a path under `root`, '/'-separated, and its content), its directories made first. */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}
