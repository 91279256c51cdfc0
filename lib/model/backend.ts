import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { ConfigError } from '../errors.js';
import { MAX_WASM_THREADS, setWasmBackend } from './wasm-threads.js';

export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** What `initBackend` chose and why (shown on stderr by the CLI, stored in reports). */
export interface BackendInfo {
  name: string; // the tfjs backend name now active: 'tensorflow', 'wasm' or 'cpu'
  package: string; // the npm package that provides it
  note: string; // one line for the user
  threads: number | null; // compute threads in use (wasm: XNNPACK's pool; null: the backend manages its own)
}

/** Options of `initBackend`. */
export interface BackendOptions {
  backend?: BackendName;
  /** wasm compute threads (default: every logical core, at most 8). Other backends ignore it. */
  threads?: number;
}

/** The default thread count: every logical core, at most the 8 that tfjs-backend-wasm's pool holds. */
export function defaultThreads(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_WASM_THREADS));
}

let active: BackendInfo | null = null;

/**
 * Try the optional native bindings. They are never dependencies of this package (their install downloads
 * libtensorflow); a user who installed one gets it here through a dynamic import.
 */
async function tryTensorflow(): Promise<string | null> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      if (await tf.setBackend('tensorflow')) return pkg;
    } catch {
      // not installed or failed to load its native library: try the next one
    }
  }
  return null;
}

/** The wasm backend with `threads` threads; switching the count of an active wasm backend re-creates it. */
async function tryWasm(threads: number): Promise<{ ok: boolean; threads: number; note: string | null }> {
  const pkg = await import('@tensorflow/tfjs-backend-wasm');
  if (tf.findBackend('wasm')) {
    const factory = tf.findBackendFactory('wasm');
    tf.removeBackend('wasm'); // disposes every tensor held by the old instance
    if (factory) tf.registerBackend('wasm', factory, 2);
  }
  return setWasmBackend(pkg, threads);
}

async function tryCpu(): Promise<boolean> {
  await import('@tensorflow/tfjs-backend-cpu');
  return tf.setBackend('cpu');
}

/**
 * Select the tfjs backend. `auto` takes the fastest that loads: tensorflow (native, when installed), then wasm
 * (SIMD, `threads` threads, see wasm-threads.ts), then cpu (plain JS, about 30x slower than wasm for matMul).
 * `initBackend('wasm', { threads: 2 })` and `initBackend({ backend: 'wasm', threads: 2 })` are the same.
 * Calling it again with the backend already active is a no-op, unless it asks wasm for another thread count:
 * then the wasm backend is re-created (tensors held by the old one are lost).
 */
export async function initBackend(
  nameOrOptions: BackendName | BackendOptions = 'auto',
  options: BackendOptions = {},
): Promise<BackendInfo> {
  const opts = typeof nameOrOptions === 'string' ? { ...options, backend: nameOrOptions } : nameOrOptions;
  const name = opts.backend ?? 'auto';
  if (!BACKEND_NAMES.includes(name)) {
    throw new ConfigError(`--backend: '${String(name)}' is not one of ${BACKEND_NAMES.join(', ')}`);
  }
  const threads = opts.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new ConfigError(`--threads: '${String(opts.threads)}' is not a whole number >= 1`);
  }
  const sameThreads = active?.name !== 'wasm' || opts.threads === undefined || opts.threads === active.threads;
  if (active && (name === 'auto' || name === active.name) && sameThreads) return active;
  let info: BackendInfo | null = null;
  if (name === 'tensorflow' || name === 'auto') {
    const pkg = await tryTensorflow();
    if (pkg) info = { name: 'tensorflow', package: pkg, note: `backend tensorflow (${pkg}, native)`, threads: null };
    else if (name === 'tensorflow') {
      throw new ConfigError(
        "--backend tensorflow: neither '@tensorflow/tfjs-node-gpu' nor '@tensorflow/tfjs-node' could be loaded; " +
          'install one (npm install @tensorflow/tfjs-node; its install downloads libtensorflow) or use --backend wasm',
      );
    }
  }
  if (!info && (name === 'wasm' || name === 'auto')) {
    const w = await tryWasm(threads);
    if (w.ok) {
      const what = w.threads === 1 ? 'single-threaded' : `${w.threads} threads`;
      const note = `backend wasm (SIMD, ${what})` + (w.note ? `; ${w.note}` : '');
      info = { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', note, threads: w.threads };
    } else if (name === 'wasm') {
      throw new ConfigError('--backend wasm: @tensorflow/tfjs-backend-wasm failed to initialise');
    }
  }
  if (!info) {
    if (!(await tryCpu())) throw new ConfigError('--backend cpu: @tensorflow/tfjs-backend-cpu failed to initialise');
    info = { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', note: 'backend cpu (plain JavaScript, slow)', threads: 1 };
  }
  await tf.ready();
  active = info;
  return info;
}

/** The backend chosen by the last `initBackend`, or null before any. */
export function activeBackend(): BackendInfo | null {
  return active;
}
