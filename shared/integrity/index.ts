export {
  chooseIntegrityAlgorithm,
  DEFAULT_INTEGRITY_ALGORITHM,
  DIGEST_BYTES,
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
  isIntegrityAlgorithm,
} from './algorithms.js';
export { type BlockHash, createBlockHash, prepareBlockHashes } from './blockHash.js';
export { ContentDigester, combineBlockDigests, contentDigest, type FileDigest } from './contentDigest.js';
