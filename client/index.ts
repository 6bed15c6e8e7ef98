export { parseServerAddress, type ServerAddress } from './address.js';
export { Client, type ClientOptions, type TransferOptions } from './client.js';
export type { GetResult, ProgressCallback, PutResult } from './streams.js';
