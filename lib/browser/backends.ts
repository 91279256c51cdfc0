/**
 * The tfjs backends in a browser (lib/platform/index.ts BackendStarters): wasm with SIMD, and with threads only
 * where the page is cross-origin isolated (SharedArrayBuffer); WebGPU on the adapter of `navigator.gpu`, a
 * software one (SwiftShader, a fallback adapter) only when asked for by name. The WebGPU backend package comes from
 * the caller (`loadWebgpu`): it is an optional dependency, and a bundler must not be made to resolve it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adapterLine, describeAdapter, type AdapterInfo, type GpuAdapterLike } from '../model/adapter.js';
import type { BackendStarters } from '../platform/index.js';

/** What the wasm starter uses of the imported @tensorflow/tfjs-backend-wasm. */
interface WasmPackage {
  setWasmPaths(prefix: string): void;
  setThreadsCount(threads: number): void;
}

interface BrowserGpu {
  requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

const gpu = (): BrowserGpu | null => (globalThis as unknown as { navigator?: { gpu?: BrowserGpu } }).navigator?.gpu ?? null;
const isolated = (): boolean => (globalThis as unknown as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;

/** The most wasm threads: tfjs-backend-wasm's pool holds 8, and threads need a cross-origin isolated page. */
export function browserMaxWasmThreads(): number {
  return isolated() ? 8 : 1;
}

async function startWasm(pkg: WasmPackage, threads: number, wasmPaths: string | null): Promise<{ ok: boolean; threads: number; note: string | null }> {
  if (wasmPaths !== null) pkg.setWasmPaths(wasmPaths);
  const want = Math.max(1, Math.min(Math.floor(threads), browserMaxWasmThreads()));
  const note = want < threads ? `wasm threads: ${threads} asked, ${want} here${isolated() ? '' : ' (threads need a cross-origin isolated page)'}` : null;
  pkg.setThreadsCount(want);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
    await tf.ready();
  } catch {
    ok = false;
  }
  const mt = ok && want > 1 && (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  return { ok, threads: ok ? (mt ? want : 1) : 0, note };
}

/** Imports @tensorflow/tfjs-backend-webgpu (it registers the backend): `() => import('@tensorflow/tfjs-backend-webgpu')`. */
export type WebgpuLoader = () => Promise<unknown>;

async function startWebgpu(allowSoftware: boolean, loadWebgpu: WebgpuLoader | null): Promise<AdapterInfo> {
  if (!loadWebgpu) {
    throw new Error(
      "the webgpu backend needs @tensorflow/tfjs-backend-webgpu: install it and pass webgpuBackend: () => import('@tensorflow/tfjs-backend-webgpu') to installBrowserPlatform",
    );
  }
  const g = gpu();
  if (!g) throw new Error('this browser offers no WebGPU (navigator.gpu is missing; Chromium: enable WebGPU)');
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) throw new Error('navigator.gpu found no adapter');
  const info = describeAdapter(adapter, 'navigator.gpu');
  if (info.software && !allowSoftware) throw new Error(`only a software adapter is offered (${adapterLine(info)}); ask for the webgpu backend by name to use it`);
  await loadWebgpu();
  if (!(await tf.setBackend('webgpu'))) throw new Error(`tfjs could not start webgpu on ${adapterLine(info)}`);
  await tf.ready();
  return info;
}

/**
 * The browser's starters; `wasmPaths`: the URL prefix of tfjs's .wasm files (null: next to the script);
 * `loadWebgpu`: the import of @tensorflow/tfjs-backend-webgpu (null: the webgpu backend is refused, naming the fix).
 */
export function browserBackends(wasmPaths: string | null, loadWebgpu: WebgpuLoader | null = null): BackendStarters {
  return {
    wasm: (pkg, threads) => startWasm(pkg as WasmPackage, threads, wasmPaths),
    maxWasmThreads: browserMaxWasmThreads(),
    webgpu: (allowSoftware) => startWebgpu(allowSoftware, loadWebgpu),
    webgpuAdvice: 'WebGPU needs a browser that offers navigator.gpu, on a page in a secure context (https or localhost)',
    hardwareAdapterPossible: () => gpu() !== null,
    adapterLine,
  };
}
