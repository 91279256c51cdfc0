/** `node:fs/promises` for the browser build (./fs.ts). */
import { promises } from './fs.js';

export const { readFile, stat, open } = promises;
export default promises;
