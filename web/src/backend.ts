/**
 * The tfjs backend of the worker: WebGPU (the browser's adapter) or wasm (SIMD, with threads when the page is
 * cross-origin isolated). `auto` takes WebGPU only on a hardware adapter: a software one (SwiftShader) is slower
 * than wasm, so it is used only when asked for by name.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendChoice } from './protocol.js';

export interface ActiveBackend {
  name: 'webgpu' | 'wasm';
  adapter: string; // webgpu: vendor, architecture, description; wasm: SIMD and threads
  software: boolean; // a software adapter (webgpu on the CPU)
  binding: { maxStorageBufferBindingSize: number; maxBufferSize: number } | null;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; description?: string; device?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
}

async function gpuAdapter(): Promise<GpuAdapterLike | null> {
  const gpu = (navigator as { gpu?: { requestAdapter(o?: unknown): Promise<GpuAdapterLike | null> } }).gpu;
  if (!gpu) return null;
  return gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
}

function describeAdapter(a: GpuAdapterLike): string {
  const i = a.info ?? {};
  const words = [i.vendor, i.architecture, i.device, i.description].filter((w) => w && w.length > 0);
  return words.length > 0 ? [...new Set(words)].join(' ') : 'unknown adapter';
}

async function useWebgpu(a: GpuAdapterLike): Promise<ActiveBackend> {
  if (!(await tf.setBackend('webgpu'))) throw new Error('backend webgpu: tfjs could not start it on this adapter');
  await tf.ready();
  const software = a.isFallbackAdapter === true || a.info?.isFallbackAdapter === true || /swiftshader|llvmpipe/i.test(describeAdapter(a));
  const { maxStorageBufferBindingSize, maxBufferSize } = a.limits;
  return { name: 'webgpu', adapter: describeAdapter(a) + (software ? ' (software)' : ''), software, binding: { maxStorageBufferBindingSize, maxBufferSize } };
}

async function useWasm(): Promise<ActiveBackend> {
  setWasmPaths(new URL('./', self.location.href).href);
  const threads = self.crossOriginIsolated ? Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1)) : 1;
  setThreadsCount(threads);
  if (!(await tf.setBackend('wasm'))) throw new Error('backend wasm: tfjs could not start it');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const mt = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  return { name: 'wasm', adapter: `wasm${simd ? ' SIMD' : ''}, ${mt ? threads : 1} thread${mt && threads > 1 ? 's' : ''}`, software: true, binding: null };
}

/** Start the chosen backend (once per worker: tfjs keeps one global backend). */
export async function startBackend(choice: BackendChoice): Promise<ActiveBackend> {
  if (choice === 'wasm') return useWasm();
  const a = await gpuAdapter();
  if (choice === 'webgpu') {
    if (!a) throw new Error('backend webgpu: this browser offers no WebGPU adapter (Chromium: enable WebGPU, or choose backend wasm)');
    return useWebgpu(a);
  }
  const hardware = a !== null && !(a.isFallbackAdapter === true || a.info?.isFallbackAdapter === true);
  return hardware ? useWebgpu(a) : useWasm();
}
