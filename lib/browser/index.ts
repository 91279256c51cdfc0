/**
 * The package's browser entry, `tfjs-llm-prune/browser`: the core's API (lib/api.ts) and the browser layer.
 * `installBrowserPlatform()` in a dedicated Web Worker before the core is used, then inputs mounted in its file tree
 * as byte sources (a File or Blob: `fileSource`; a URL: `urlSource`) and outputs taken from it (`filesUnder`).
 * Nothing here or below reaches a Node built-in (test/layers.test.ts; the packed entry is bundled for the browser
 * and run in Chromium by test/web/package-browser.acceptance.test.ts).
 */
export * from '../api.js';
export { browserPlatform, installBrowserPlatform, type BrowserPlatformOptions } from './platform.js';
export { MemoryFileSystem, fsError } from './memory-fs.js';
export { fileSource, urlSource } from './sources.js';
export { posixPath } from './path.js';
