import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { platform } from '../platform/index.js';
import type { AdapterInfo } from './adapter.js';

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

/** What `initBackend` chose and why (shown on stderr by the CLI, stored in reports). */
export interface BackendInfo {
  name: string; // the tfjs backend name now active: 'tensorflow', 'webgpu', 'wasm' or 'cpu'
  package: string; // the npm package that provides it
  note: string; // one line for the user
  threads: number | null; // compute threads in use (wasm: XNNPACK's pool; null: the backend manages its own)
  adapter?: AdapterInfo; // webgpu only: the adapter (a `software` one runs on the CPU)
}

/**
 * The backend-dependent choices of the forward and of the hot loops, in one place.
 * - `attention`: 'per-head' runs one 2D matMul per (sequence, head), ~10x faster on wasm than a batched matMul;
 *   'batched' runs one matMul over every head, what a GPU wants (thousands of tiny dispatches otherwise).
 * - `hostReads`: 'sync' lets a kernel read a value back in the middle of its work (`dataSync`, cheap on CPU
 *   backends: the mask's no-tie fast path); 'none' avoids it (WebGPU in Node has no synchronous read at all, and a
 *   read stalls the GPU queue), taking the branch-free path that gives the same result. What must read values on
 *   the host (SparseGPT's Hessian, the Wanda variant's bisection, RIA's permutation, OWL's ratios, DSnoT's cycle,
 *   generate, the LoRA step) reads them with `await t.data()` on every backend.
 * - `park`: where the layer loop keeps what waits between its steps (each block's seven linears while one is being
 *   pruned, the calibration activations while the next block loads). 'js-memory' copies them to JS arrays and frees
 *   them on the backend: wasm's heap is 4 GB, a 13B block and its pruning transients nearly fill it, and small
 *   leftovers fragment it. 'none' leaves them on the backend: on a GPU a copy would be a device-to-host round trip
 *   per linear per block, and cpu / tensorflow have no such heap. Masks and weights are identical either way.
 * - `windows`: how independent forwards (perplexity windows, the layer loop's calibration windows) use several
 *   cores. 'workers' shards them over a pool of worker threads with one single-threaded backend each
 *   (lib/model/forward-pool.ts; on wasm faster than XNNPACK's threads, which leave a quarter of the forward on one
 *   core); 'backend' runs them in-process on the backend's own threads. Results are identical either way.
 * Linear weights are kept in one layout on every backend (wasm's matMul needs it; the WebGPU matMul shader reads
 * either layout, so no choice is made there).
 */
export interface Kernels {
  attention: 'per-head' | 'batched';
  hostReads: 'sync' | 'none';
  park: 'js-memory' | 'none';
  windows: 'workers' | 'backend';
}

export function kernelsFor(backend: string): Kernels {
  const cpu = backend === 'wasm' || backend === 'cpu';
  return {
    attention: cpu ? 'per-head' : 'batched',
    hostReads: backend === 'webgpu' ? 'none' : 'sync',
    park: backend === 'wasm' ? 'js-memory' : 'none',
    windows: backend === 'wasm' ? 'workers' : 'backend',
  };
}

/**
 * The kernels of the active tfjs backend (tfjs has one global backend): the default of the callers that take a
 * `kernels` option (prune, runLayerLoop, loadModel, LlamaModel; the mask functions take `hostReads`). To try other
 * choices on a backend, pass them there: results differ only by float rounding between the two attentions, and not
 * at all between the two `hostReads` or the two `park` settings.
 */
export function kernels(): Kernels {
  return kernelsFor(tf.getBackend());
}

/** Options of `initBackend`. */
export interface BackendOptions {
  backend?: BackendName;
  /** wasm compute threads (default: every logical core, at most 8). Other backends ignore it. */
  threads?: number;
}

/** The default thread count: every logical core, at most the 8 that tfjs-backend-wasm's pool holds. */
export function defaultThreads(): number {
  const p = platform();
  return Math.max(1, Math.min(p.cpuCount(), p.backends.maxWasmThreads));
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
  return platform().backends.wasm(pkg, threads);
}

/** WebGPU on a hardware adapter (or also a software one when asked for explicitly); the reason as a string otherwise. */
async function tryWebgpu(allowSoftware: boolean): Promise<BackendInfo | string> {
  try {
    const starters = platform().backends;
    const adapter = await starters.webgpu(allowSoftware);
    const pkg = '@tensorflow/tfjs-backend-webgpu + webgpu (Dawn)';
    return { name: 'webgpu', package: pkg, note: `backend webgpu on ${starters.adapterLine(adapter)}`, threads: null, adapter };
  } catch (e) {
    return (e as Error).message;
  }
}

async function tryCpu(): Promise<boolean> {
  await import('@tensorflow/tfjs-backend-cpu');
  return tf.setBackend('cpu');
}

/**
 * Select the tfjs backend. `auto` takes the fastest that loads: tensorflow (native, when installed), then webgpu on a
 * hardware adapter (when the optional packages are installed; never a software adapter), then wasm
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
    throw new ConfigError(`backend: '${String(name)}' is not one of ${BACKEND_NAMES.join(', ')}`, { option: 'backend' });
  }
  const threads = opts.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new ConfigError(`threads: '${String(opts.threads)}' is not a whole number >= 1`, { option: 'threads' });
  }
  const sameThreads = active?.name !== 'wasm' || opts.threads === undefined || opts.threads === active.threads;
  if (active && (name === 'auto' || name === active.name) && sameThreads) return active;
  let info: BackendInfo | null = null;
  if (name === 'tensorflow' || name === 'auto') {
    const pkg = await tryTensorflow();
    if (pkg) info = { name: 'tensorflow', package: pkg, note: `backend tensorflow (${pkg}, native)`, threads: null };
    else if (name === 'tensorflow') {
      throw new ConfigError(
        "backend tensorflow: neither '@tensorflow/tfjs-node-gpu' nor '@tensorflow/tfjs-node' could be loaded; " +
          'install one (npm install @tensorflow/tfjs-node; its install downloads libtensorflow) or use the wasm backend',
        { option: 'backend' },
      );
    }
  }
  if (!info && (name === 'webgpu' || (name === 'auto' && platform().backends.hardwareAdapterPossible()))) {
    const r = await tryWebgpu(name === 'webgpu');
    if (typeof r !== 'string') info = r;
    else if (name === 'webgpu') {
      throw new ConfigError(`backend webgpu: ${r}. ${platform().backends.webgpuAdvice}`, { option: 'backend' });
    }
  }
  if (!info && (name === 'wasm' || name === 'auto')) {
    const w = await tryWasm(threads);
    if (w.ok) {
      const what = w.threads === 1 ? 'single-threaded' : `${w.threads} threads`;
      const note = `backend wasm (SIMD, ${what})` + (w.note ? `; ${w.note}` : '');
      info = { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', note, threads: w.threads };
    } else if (name === 'wasm') {
      throw new ConfigError('backend wasm: @tensorflow/tfjs-backend-wasm failed to initialise', { option: 'backend' });
    }
  }
  if (!info) {
    if (!(await tryCpu())) throw new ConfigError('backend cpu: @tensorflow/tfjs-backend-cpu failed to initialise', { option: 'backend' });
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
