/**
 * Which build of the package version this is, for `muxftp --version`: the git commit dist/ was
 * compiled from and its date (`git 03defbd, 2026-12-07`; `03defbd-dirty` when the sources had
 * uncommitted changes). `npm run build` (so `npm install` in a checkout and `npm pack`) writes it
 * over this module's compiled form (scripts/buildInfo.mjs); a bare `tsc`, or a build outside a git
 * checkout, leaves this undefined.
 */
export const BUILD: string | undefined = undefined;
