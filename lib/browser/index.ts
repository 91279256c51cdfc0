/**
 * The browser layer: `installBrowserPlatform()` in a dedicated Web Worker before the core is used, then inputs
 * mounted in its file tree as byte sources (a File or Blob: `fileSource`; a URL: `urlSource`) and outputs taken
 * from it (`filesUnder`).
 */
export { browserPlatform, installBrowserPlatform, type BrowserPlatformOptions } from './platform.js';
export { MemoryFileSystem, fsError } from './memory-fs.js';
export { fileSource, urlSource } from './sources.js';
export { posixPath } from './path.js';
