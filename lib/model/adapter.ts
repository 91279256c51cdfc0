/**
 * A WebGPU adapter as the backend start-up reports it, on any runtime: Dawn's adapters in Node (lib/model/webgpu.ts)
 * and `navigator.gpu`'s in a browser (lib/browser/backends.ts) have the same `info` and `limits`.
 */

/** The adapter tfjs runs on: what the runtime reports, and whether it is a CPU (software) implementation. */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  path: string; // how it was found: 'default' (Vulkan on Linux), 'opengles', or 'navigator.gpu' (a browser)
  maxBindingBytes: number; // maxStorageBufferBindingSize: no tensor may be larger (llvmpipe: 128 MiB)
  software: boolean; // llvmpipe, lavapipe, SwiftShader, or a fallback adapter: never report its speed as GPU speed
}

/** The part of a WebGPU adapter (Dawn's or a browser's GPUAdapter) read here. */
export interface GpuAdapterLike {
  limits?: { maxStorageBufferBindingSize?: number };
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software rasterizer/i;

/** What `a` reports; `path` says how it was found. */
export function describeAdapter(a: GpuAdapterLike, path: string): AdapterInfo {
  const i = a.info ?? {};
  const info = {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    path,
    maxBindingBytes: a.limits?.maxStorageBufferBindingSize ?? 0,
  };
  const software = Boolean(i.isFallbackAdapter || a.isFallbackAdapter) || SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
  return { ...info, software };
}

/** One line for the user: `llvmpipe-llvm-15 (OpenGL ES 3.2 Mesa 22.3.6), software adapter`. */
export function adapterLine(a: AdapterInfo): string {
  const name = [a.vendor, a.architecture, a.device].filter((s) => s !== '').join(' ') || 'unnamed adapter';
  return `${name}${a.description ? ` (${a.description})` : ''}${a.software ? ', software adapter (runs on the CPU: not a GPU)' : ''}`;
}
