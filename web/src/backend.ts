/**
 * The tfjs backend of the worker, started by the browser layer (lib/browser/backends.ts): WebGPU (the browser's
 * adapter) or wasm (SIMD, with threads when the page is cross-origin isolated). `auto` takes WebGPU only on a
 * hardware adapter: a software one (SwiftShader) is slower than wasm, so it is used only when asked for by name.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import { platform } from '../../lib/platform/index.js';
import type { AdapterInfo } from '../../lib/model/adapter.js';
import type { BackendChoice } from './protocol.js';

export interface ActiveBackend {
  name: 'webgpu' | 'wasm';
  adapter: string; // webgpu: vendor, architecture, description; wasm: SIMD and threads
  software: boolean; // a software adapter (webgpu on the CPU)
  binding: { maxStorageBufferBindingSize: number; maxBufferSize: number } | null;
}

/** The limits of the device tfjs's WebGPU backend runs on. */
function deviceLimits(): { maxStorageBufferBindingSize: number; maxBufferSize: number } {
  const limits = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number; maxBufferSize: number } } }).device.limits;
  return { maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize, maxBufferSize: limits.maxBufferSize };
}

function webgpuBackend(a: AdapterInfo): ActiveBackend {
  const words = [a.vendor, a.architecture, a.device, a.description].filter((w) => w.length > 0);
  const name = words.length > 0 ? [...new Set(words)].join(' ') : 'unknown adapter';
  return { name: 'webgpu', adapter: name + (a.software ? ' (software)' : ''), software: a.software, binding: deviceLimits() };
}

async function useWasm(): Promise<ActiveBackend> {
  const starters = platform().backends;
  const threads = Math.max(1, Math.min(starters.maxWasmThreads, platform().cpuCount()));
  const r = await starters.wasm(wasm, threads);
  if (!r.ok) throw new Error('backend wasm: tfjs could not start it');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { name: 'wasm', adapter: `wasm${simd ? ' SIMD' : ''}, ${r.threads} thread${r.threads > 1 ? 's' : ''}`, software: true, binding: null };
}

/** Start the chosen backend (once per worker: tfjs keeps one global backend). */
export async function startBackend(choice: BackendChoice): Promise<ActiveBackend> {
  if (choice === 'wasm') return useWasm();
  const starters = platform().backends;
  if (choice === 'webgpu') {
    try {
      return webgpuBackend(await starters.webgpu(true));
    } catch (e) {
      throw new Error(`backend webgpu: ${(e as Error).message} (choose backend wasm)`);
    }
  }
  if (!starters.hardwareAdapterPossible()) return useWasm();
  return starters.webgpu(false).then(webgpuBackend, useWasm);
}
