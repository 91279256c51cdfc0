/** `node:buffer` for the browser build: the `buffer` package's Buffer. */
export { Buffer } from 'buffer';
export { resolveObjectURL } from './unavailable.js';
