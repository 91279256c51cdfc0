/**
 * Memory a run needs against what the backend can hold, before anything heavy is read. The figures are upper
 * estimates from the config and the run's options:
 * - on the backend (tfjs tensors, float32): the dense model whole for its perplexity (weights, the logits of one
 *   window and two working copies of them), or, while pruning, the embeddings, one block with as much again of
 *   pruning transients, and the calibration activations in and out of the block with one block's attention scores;
 * - on the host (JS typed arrays): the written checkpoint, kept in memory, and its zip (a second copy).
 * Limits: wasm's heap is 32-bit (4 GiB); a WebGPU adapter states no memory size, only the largest buffer it binds
 * (`maxStorageBufferBindingSize`, `maxBufferSize`), checked against the largest tensor; the host has what the
 * browser reports as device memory (`navigator.deviceMemory`, which Chrome caps at 8 GB), else 4 GiB.
 */
import { blockTensors, expectedTensors, parameterCount } from '../../lib/model/architecture.js';
import type { LlamaConfig } from '../../lib/model/config.js';
import type { MemoryEstimate } from './protocol.js';

export const WASM_HEAP_BYTES = 4 * 2 ** 30;
const F32 = 4;

export interface EstimateInput {
  config: LlamaConfig;
  outBytesPerParam: number; // the output dtype's size
  nsamples: number; // 0 when the method reads no calibration data
  seqlen: number;
  backend: 'wasm' | 'webgpu';
  binding: { maxStorageBufferBindingSize: number; maxBufferSize: number } | null; // webgpu
  hostBytes: number; // what the host may hold
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** The estimate and whether the run fits. */
export function estimateMemory(x: EstimateInput): MemoryEstimate {
  const c = x.config;
  const sizes = expectedTensors(c).map((t) => t.shape.reduce((a, b) => a * b, 1));
  const params = parameterCount(c);
  const block = blockTensors(c, 0).reduce((a, t) => a + t.shape.reduce((p, d) => p * d, 1), 0);
  const logits = x.seqlen * c.vocabSize * F32;
  const dense = params * F32 + 3 * logits;
  const acts = 2 * x.nsamples * x.seqlen * c.hiddenSize * F32 + c.numHeads * x.seqlen * x.seqlen * F32;
  const pruning = c.vocabSize * c.hiddenSize * F32 + 2 * block * F32 + acts;
  const device = Math.max(dense, pruning);
  const host = 2 * params * x.outBytesPerParam;
  const largest = Math.max(...sizes, x.seqlen * c.vocabSize) * F32;
  const lines = [
    `model: ${(params / 1e6).toFixed(2)} M parameters, ${c.numLayers} blocks`,
    `${x.backend}: dense model for perplexity ${mb(dense)}, pruning (one block + activations) ${mb(pruning)}`,
    `host: pruned checkpoint + its zip ${mb(host)} of ${mb(x.hostBytes)}`,
  ];
  let limit = x.backend === 'wasm' ? WASM_HEAP_BYTES : Infinity;
  let fits = device <= limit && host <= x.hostBytes;
  const bind = x.binding ? Math.min(x.binding.maxStorageBufferBindingSize, x.binding.maxBufferSize) : null;
  if (x.backend === 'wasm') lines.push(`wasm heap: ${mb(device)} of ${mb(WASM_HEAP_BYTES)}`);
  if (bind !== null) {
    lines.push(`largest tensor ${mb(largest)}, the adapter binds at most ${mb(bind)} per buffer`);
    fits &&= largest <= bind;
    limit = bind;
  }
  return { needBytes: device + host, limitBytes: limit + x.hostBytes, largestTensorBytes: largest, bindingLimitBytes: bind, fits, lines };
}

/** The refusal shown when the run does not fit. */
export function refusal(e: MemoryEstimate): string {
  return `the model does not fit this backend: ${e.lines.join('; ')}`;
}
