/**
 * The browser layer's platform (lib/platform/index.ts), for a dedicated Web Worker: files in an in-memory tree
 * (lib/browser/memory-fs.ts) whose inputs are File, Blob and URL byte sources, POSIX paths, the machine as
 * `navigator` reports it, SHA-256 through WebCrypto, no worker threads for the forward pool (everything runs
 * in-process), no process or signals, and the browser's wasm and WebGPU start-up. It imports no Node built-in
 * (test/layers.test.ts; web/build.ts fails a bundle that reaches one).
 */
import { DataError } from '../errors.js';
import { installPlatform, type Platform } from '../platform/index.js';
import { resolveUrl, DEFAULT_HUB_ENDPOINT, type HubDownloads } from '../platform/hub.js';
import type { OutputLock } from '../platform/locks.js';
import { defaultSha256 } from '../platform/sha256.js';
import { browserBackends, type WebgpuLoader } from './backends.js';
import { browserDataFiles } from './data.js';
import { MemoryFileSystem } from './memory-fs.js';
import { posixPath } from './path.js';
import { urlSource } from './sources.js';

export interface BrowserPlatformOptions {
  /** The file tree (default: a new, empty one). */
  fs?: MemoryFileSystem;
  /** The URL prefix of tfjs-backend-wasm's .wasm files (default: next to the script). */
  wasmPaths?: string;
  /**
   * The import of the optional WebGPU backend, `() => import('@tensorflow/tfjs-backend-webgpu')` (installed beside this
   * package); without it the webgpu backend is refused with that advice and wasm is used where the backend is 'auto'.
   */
  webgpuBackend?: WebgpuLoader;
}

interface NavigatorFacts {
  hardwareConcurrency?: number;
  deviceMemory?: number; // Chromium only: GiB, rounded
}

const nav = (): NavigatorFacts => (globalThis as unknown as { navigator?: NavigatorFacts }).navigator ?? {};

/** Output locks within one page: a second writer of the same output is refused; nothing else shares the tree. */
function memoryLocks(): Platform['acquireOutputLock'] {
  const held = new Map<string, number>();
  return (file, options = {}): OutputLock => {
    if (held.has(file) && !options.forceUnlock) {
      throw new DataError(`${options.output ?? file.replace(/\.lock$/, '')}: another run of this page is writing it`);
    }
    held.set(file, (held.get(file) ?? 0) + 1);
    let released = false;
    return {
      file,
      release: () => {
        if (released) return;
        released = true;
        const n = (held.get(file) ?? 1) - 1;
        if (n > 0) held.set(file, n);
        else held.delete(file);
      },
    };
  };
}

/** Hub files: the file's URL mounted under /hub/ of the tree, read by ranges where asked (the hub answers CORS). */
function hubDownloads(fs: MemoryFileSystem): HubDownloads {
  return async (repo, path, access = {}) => {
    const url = resolveUrl(repo, path, access.endpoint ?? DEFAULT_HUB_ENDPOINT);
    const src = await urlSource(url);
    if (!src) throw new DataError(`${repo.name}/${path}: not found on ${access.endpoint ?? DEFAULT_HUB_ENDPOINT} (HTTP 404)`);
    const local = posixPath.join('/hub', `${repo.type}s`, repo.name, repo.revision ?? 'main', path);
    fs.mount(local, src);
    return local;
  };
}

/** The browser layer's platform over `options.fs`. */
export function browserPlatform(options: BrowserPlatformOptions = {}): Platform & { fs: MemoryFileSystem } {
  const fs = options.fs ?? new MemoryFileSystem();
  return {
    name: 'browser',
    fs,
    path: posixPath,
    sha256: defaultSha256,
    cpuCount: () => nav().hardwareConcurrency || 1,
    freeMemory: () => (nav().deviceMemory ?? 4) * 2 ** 30,
    hostname: () => 'browser',
    moduleDir: '/',
    processId: 1,
    processAlive: (pid) => pid === 1,
    peakMemoryMB: () => null,
    warn: (message) => console.warn(message),
    env: () => undefined,
    crash: (): never => {
      (globalThis as unknown as { close?: () => void }).close?.();
      throw new Error('crash requested: the worker is closed');
    },
    startForwardWorker: null,
    backends: browserBackends(options.wasmPaths ?? null, options.webgpuBackend ?? null),
    openFile: (path) => fs.openFile(path),
    acquireOutputLock: memoryLocks(),
    data: browserDataFiles,
    downloadHubFile: hubDownloads(fs),
    createFile: (path, o) => fs.createFile(path, o),
  };
}

/** Install the browser layer (before the core is used); returns it, its file tree as `fs`. */
export function installBrowserPlatform(options: BrowserPlatformOptions = {}): Platform & { fs: MemoryFileSystem } {
  const p = browserPlatform(options);
  installPlatform(p);
  return p;
}
