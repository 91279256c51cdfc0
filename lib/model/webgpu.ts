/**
 * WebGPU in Node: Dawn's binding (npm `webgpu`) under `@tensorflow/tfjs-backend-webgpu`. Both packages are optional
 * (peer dependencies, not installed with this package): this module loads them with dynamic imports.
 *
 * What makes it work in Node (each checked here, with a clear message when a future version changes it):
 * - the tfjs backend registers itself at import time only when `navigator.gpu` exists, so `navigator.gpu` is set
 *   first; it is a small object whose `requestAdapter` returns the adapter chosen here (tfjs asks for the default
 *   adapter with no feature level, which finds nothing on Mesa's OpenGL ES path);
 * - adapters are tried in order: Dawn's default (Vulkan on Linux: a real GPU with its driver), then Mesa's OpenGL ES
 *   through EGL without a display (`EGL_PLATFORM=surfaceless`, `featureLevel: 'compatibility'`), which on a machine
 *   without a GPU is llvmpipe: correct, not fast, and flagged `software`.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { adapterLine, describeAdapter, type AdapterInfo, type GpuAdapterLike } from './adapter.js';

export { adapterLine, type AdapterInfo };

interface DawnGpu {
  requestAdapter(options?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(flags: string[]): DawnGpu;
  globals: Record<string, unknown>;
}

/**
 * Whether a hardware adapter can be there at all, checked without loading Dawn (which prints its probing warnings on
 * stderr): on Linux a Vulkan driver manifest other than Mesa's software ones (lavapipe); elsewhere (Metal, D3D12) yes.
 * `--backend auto` asks this first, so a machine without a GPU driver never pays for the probe.
 */
export function hardwareAdapterPossible(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  return dirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json') && !/^lvp_|lavapipe|swiftshader/i.test(f)));
}

/** Import a package that is not a dependency of this package (the name in a variable keeps tsc from resolving it). */
async function optionalImport<T>(name: string): Promise<T> {
  return (await import(name)) as T;
}

/**
 * How the two optional packages are loaded. By name at run time (the package never depends on them); a bundle
 * (scripts/gpu-check.sh) replaces `tfjs` with a literal import, so the backend shares the bundle's tfjs-core.
 */
export const webgpuLoaders: { dawn: () => Promise<unknown>; tfjs: () => Promise<unknown> } = {
  dawn: () => optionalImport('webgpu'),
  tfjs: () => optionalImport('@tensorflow/tfjs-backend-webgpu'),
};

/**
 * The Dawn instance, its adapter and what it is. The instance must stay referenced as long as the device is used:
 * once garbage collected, Dawn frees what the device still runs on (seen here as aborts in pthread/futex code).
 */
interface Chosen {
  gpu: DawnGpu;
  adapter: GpuAdapterLike;
  info: AdapterInfo;
}
let chosen: Chosen | null = null;

/**
 * Find an adapter: Dawn's default first, then Mesa's OpenGL ES. With `allowSoftware` false a software adapter is
 * skipped (what `--backend auto` does: wasm is faster than llvmpipe). Throws an Error whose message says what is missing.
 */
async function findAdapter(allowSoftware: boolean): Promise<Chosen> {
  let dawn: DawnModule;
  try {
    dawn = (await webgpuLoaders.dawn()) as DawnModule;
  } catch (e) {
    throw new Error(`the optional package 'webgpu' (Dawn) is not installed or does not load here (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof dawn.create !== 'function' || typeof dawn.globals !== 'object') {
    throw new Error("the package 'webgpu' no longer exports create() and globals (tested with webgpu 0.6.2)");
  }
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, ... used by the tfjs backend
  process.env['EGL_PLATFORM'] ??= 'surfaceless'; // Mesa EGL without a display; read when Dawn opens EGL
  const tries: { path: string; flags: string[]; options: Record<string, unknown> }[] = [
    { path: 'default', flags: [], options: { powerPreference: 'high-performance' } },
    { path: 'opengles', flags: ['backend=opengles'], options: { featureLevel: 'compatibility' } },
  ];
  const seen: string[] = [];
  for (const t of tries) {
    let adapter: GpuAdapterLike | null = null;
    const gpu = dawn.create(t.flags);
    try {
      adapter = await gpu.requestAdapter(t.options);
    } catch {
      adapter = null;
    }
    if (!adapter) continue;
    const info = describeAdapter(adapter, t.path);
    if (info.software && !allowSoftware) {
      seen.push(adapterLine(info));
      continue;
    }
    return { gpu, adapter, info };
  }
  throw new Error(seen.length > 0 ? `only a software adapter was found (${seen.join('; ')})` : 'Dawn found no adapter (no Vulkan driver, no Mesa EGL/GLES)');
}

/**
 * tfjs does not watch WebGPU validation errors: a dispatch Dawn rejects (for instance a tensor larger than the
 * adapter's maxStorageBufferBindingSize) is skipped and its output is silently wrong. Any such error stops the
 * process here instead (thrown outside the caller's stack: results computed after it cannot be trusted).
 */
function failOnValidationErrors(info: AdapterInfo): void {
  const device = (tf.backend() as unknown as { device?: { onuncapturederror: unknown } }).device;
  if (!device) return;
  let failed = false;
  device.onuncapturederror = (e: { error?: { message?: string } }) => {
    if (failed) return;
    failed = true;
    const first = (e.error?.message ?? String(e)).split('\n')[0];
    const err = new Error(
      `WebGPU validation error, results cannot be trusted: ${first} (this adapter binds at most ` +
        `${Math.floor(info.maxBindingBytes / 2 ** 20)} MiB per tensor; use --backend wasm for larger tensors)`,
    );
    setImmediate(() => {
      throw err;
    });
  };
}

/**
 * Make `webgpu` the active tfjs backend. Returns the adapter, or throws an Error saying why it cannot.
 * The adapter is chosen once per process (the tfjs backend registers once).
 */
export async function setupWebgpu(allowSoftware: boolean): Promise<AdapterInfo> {
  if (!chosen) {
    const found = await findAdapter(allowSoftware);
    const gpu = {
      requestAdapter: async () => found.adapter,
      getPreferredCanvasFormat: () => 'rgba8unorm',
      wgslLanguageFeatures: new Set<string>(),
    };
    const g = globalThis as { navigator?: object };
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true }); // Node >= 21
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    try {
      await webgpuLoaders.tfjs();
    } catch (e) {
      throw new Error(`the optional package '@tensorflow/tfjs-backend-webgpu' is not installed (${(e as Error).message.split('\n')[0]})`);
    }
    if (!tf.findBackendFactory('webgpu')) {
      throw new Error("'@tensorflow/tfjs-backend-webgpu' did not register a backend (was it imported before navigator.gpu was set?)");
    }
    chosen = found;
  } else if (chosen.info.software && !allowSoftware) {
    throw new Error(`only a software adapter was found (${adapterLine(chosen.info)})`);
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error(`tfjs could not start on ${adapterLine(chosen.info)}`);
  failOnValidationErrors(chosen.info);
  return chosen.info;
}
