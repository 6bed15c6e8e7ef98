// Many tests compute digests themselves (contentDigest, ContentDigester) before any client or
// server of theirs has loaded the XXH3-128 WebAssembly: load it for them. That the library and the
// CLI load it on their own is checked in fresh processes (test/lazyHashing.test.ts, the CLI tests).
import { prepareBlockHashes } from '../../shared/integrity/blockHash.js';

await prepareBlockHashes();
