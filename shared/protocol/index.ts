export * from './constants.js';
export * from './decoder.js';
export * from './encoder.js';
export type { Frame } from './frame.js';
export * from './messages.js';
