/**
 * The Node layer's platform (lib/platform/index.ts): node:fs, node:path, node:os, node:crypto, worker_threads for
 * the forward pool, and the Node start-up of the wasm (threads through worker_threads) and WebGPU (Dawn) backends.
 * Importing this module installs it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installPlatform, type Platform } from '../platform/index.js';
import type { FileSystem } from '../platform/fs.js';
import { MAX_WASM_THREADS, setWasmBackend } from '../model/wasm-threads.js';
import { adapterLine, hardwareAdapterPossible, setupWebgpu } from '../model/webgpu.js';
import { detectFormat, readRows, readTexts } from '../data/sources.js';
import { cachedTextIds, cachedTokenCount } from '../eval/token-cache.js';
import { acquireOutputLock } from '../output-lock.js';
import { downloadHubFile } from '../hub/download.js';
import { fileSink, fileSource } from './files.js';
import { startForwardWorker } from './forward-worker.js';

export const nodePlatform: Platform = {
  name: 'node',
  fs: fs as unknown as FileSystem,
  path: { ...path, sep: path.sep },
  sha256: async (parts) => {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  },
  cpuCount: () => (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length),
  freeMemory: () => os.freemem(),
  hostname: () => os.hostname(),
  moduleDir: path.dirname(fileURLToPath(import.meta.url)),
  processId: process.pid,
  processAlive: (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
  peakMemoryMB: () => process.resourceUsage().maxRSS / 1024,
  warn: (message) => process.emitWarning(message),
  env: (name) => process.env[name],
  crash: () => {
    process.kill(process.pid, 'SIGKILL');
    throw new Error('unreachable');
  },
  startForwardWorker,
  backends: {
    wasm: (pkg, threads) => setWasmBackend(pkg as Parameters<typeof setWasmBackend>[0], threads),
    maxWasmThreads: MAX_WASM_THREADS,
    webgpu: setupWebgpu,
    webgpuAdvice:
      'Install the optional packages (npm install webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0) ' +
      'and a Vulkan driver (GPU), or Mesa EGL/GLES (libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri) for the software adapter',
    hardwareAdapterPossible,
    adapterLine,
  },
  openFile: fileSource,
  acquireOutputLock,
  data: { readRows, readTexts, detectFormat, cachedTextIds, cachedTokenCount },
  createFile: fileSink,
  downloadHubFile,
};

installPlatform(nodePlatform);
