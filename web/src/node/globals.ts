/** Globals the library reads in Node, injected into the browser bundle by web/build.ts. */
export { process } from './process.js';
export { Buffer } from 'buffer';
