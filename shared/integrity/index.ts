export {
  chooseIntegrityAlgorithm,
  DEFAULT_INTEGRITY_ALGORITHM,
  INTEGRITY_ALGORITHMS,
  INTEGRITY_BLOCK_BYTES,
  type IntegrityAlgorithm,
} from './algorithms.js';
export { prepareBlockHashes } from './blockHash.js';
export { ContentDigester, contentDigest, type FileDigest } from './contentDigest.js';
