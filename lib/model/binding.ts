/**
 * WebGPU binds each tensor as one storage buffer, and an adapter binds at most `maxStorageBufferBindingSize` bytes
 * (`maxBufferSize` per buffer): 128 MiB on Mesa's llvmpipe and many integrated GPUs, 2-4 GiB on discrete ones. A
 * dispatch over a larger tensor is rejected by the driver and tfjs does not notice (its output is left unwritten).
 * So, on webgpu:
 * - the largest matrices of a model, the embedding table and lm_head (vocab x hidden: 524 MB at 7B), are uploaded in
 *   row chunks that each fit, and used chunk by chunk: `gatherRows` for the embedding, `matMulColumns` for the head
 *   (the logits are the concatenation of the chunks' matMuls: each output is the same dot product, so the same value);
 * - a block's linear weight over the limit is held as column chunks of wT ([in, out_i], lib/model/llama.ts) and its
 *   matMul is done chunk by chunk (`matMulColumns`, as the head); pruning works on the matching row chunks of W;
 * - every other tensor is checked before it is made (`checkBinding`): a clear error instead of wrong numbers (a
 *   linear's output [tokens, out] too: a forward with fewer tokens fits).
 * Other backends have no such limit (`bindingLimitBytes()` is Infinity): nothing is chunked there.
 * `forceBindingLimit(bytes)` lowers the limit (tests of the chunked paths on a small model).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, UnsupportedError } from '../errors.js';
import { transposeFloat32 } from './dtype-convert.js';

/** The adapter's limits as tfjs requested them for its device (bytes). */
export interface DeviceLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/** The active device's limits, or null when the active backend is not webgpu. */
export function deviceLimits(): DeviceLimits | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const limits = (tf.backend() as unknown as { device?: { limits?: Partial<DeviceLimits> } }).device?.limits;
  return { maxStorageBufferBindingSize: limits?.maxStorageBufferBindingSize ?? 2 ** 27, maxBufferSize: limits?.maxBufferSize ?? 2 ** 28 };
}

let forced: number | null = null;

/** Bind at most `bytes` per tensor on webgpu (below the adapter's own limit; null: the adapter's limit again). */
export function forceBindingLimit(bytes: number | null): void {
  if (bytes !== null && (!Number.isInteger(bytes) || bytes < 1024)) throw new ConfigError(`forceBindingLimit: expected a whole number of bytes >= 1024, got ${bytes}`);
  forced = bytes;
}

/** The most bytes one tensor may have on the active backend: Infinity off webgpu. */
export function bindingLimitBytes(): number {
  const d = deviceLimits();
  if (!d) return Infinity;
  const limit = Math.min(d.maxStorageBufferBindingSize, d.maxBufferSize);
  return forced === null ? limit : Math.min(limit, forced);
}

/** A size as people read it: MiB, or KiB below 1 MiB. */
export function sizeText(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** What to do when an activation is over the limit. */
export const FEWER_TOKENS = 'run fewer tokens per forward (--batch-size, --seqlen)';

/**
 * Throws an UnsupportedError naming `what` (or what it returns) when a float32 tensor of `shape` cannot be bound on
 * the active backend; `remedy` ends the message (default: a GPU with a larger limit, or wasm).
 */
export function checkBinding(shape: readonly number[], what: string | (() => string), remedy = 'use a GPU with a larger limit, or --backend wasm'): void {
  const bytes = 4 * shape.reduce((a, b) => a * b, 1);
  const limit = bindingLimitBytes();
  if (bytes > limit) {
    throw new UnsupportedError(
      `${typeof what === 'string' ? what : what()} [${shape.join(', ')}] is ${sizeText(bytes)}, over the ${sizeText(limit)} this WebGPU adapter binds per tensor ` +
        `(maxStorageBufferBindingSize / maxBufferSize); ${remedy}`,
    );
  }
}

/** Rows per chunk so that a chunk of `cols` float32 columns fits `limit` bytes (all rows when it fits). */
export function rowsPerChunk(rows: number, cols: number, limit: number): number {
  const fit = Math.floor(limit / (4 * cols));
  if (fit < 1) throw new UnsupportedError(`one row of ${cols} float32 values is over the ${sizeText(limit)} WebGPU binding limit`);
  return Math.min(rows, fit);
}

/**
 * `values` ([rows, cols] row-major) as row chunks on the backend, each within the binding limit (one tensor when the
 * whole fits). With `transpose`, each chunk is uploaded transposed ([cols, chunkRows], transposed on the host).
 */
export function uploadRowChunks(values: Float32Array, rows: number, cols: number, transpose = false): tf.Tensor2D[] {
  const per = rowsPerChunk(rows, cols, bindingLimitBytes());
  const parts: tf.Tensor2D[] = [];
  try {
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      const chunk = values.subarray(r * cols, (r + n) * cols);
      parts.push(transpose ? tf.tensor2d(transposeFloat32(chunk, n, cols), [cols, n]) : tf.tensor2d(chunk, [n, cols]));
    }
    return parts;
  } catch (e) {
    tf.dispose(parts);
    throw e;
  }
}

/**
 * Rows `ids` of the table held as row chunks `parts` ([n_i, cols], in order): each chunk gathers the ids that fall
 * in it (split on the host), then one gather puts the rows back in the order of `ids`. The values are the table's.
 */
export function gatherRows(parts: readonly tf.Tensor2D[], ids: Int32Array): tf.Tensor2D {
  return tf.tidy(() => {
    if (parts.length === 1) return tf.gather(parts[0]!, tf.tensor1d(ids, 'int32')) as tf.Tensor2D;
    const gathered: tf.Tensor2D[] = [];
    const order = new Int32Array(ids.length); // row i of the result is row order[i] of the concatenation
    let start = 0;
    let next = 0;
    for (const p of parts) {
      const n = p.shape[0];
      const local: number[] = [];
      ids.forEach((id, i) => {
        if (id >= start && id < start + n) {
          order[i] = next++;
          local.push(id - start);
        }
      });
      if (local.length > 0) gathered.push(tf.gather(p, tf.tensor1d(local, 'int32')) as tf.Tensor2D);
      start += n;
    }
    if (next !== ids.length) throw new ConfigError(`gatherRows: an id is outside the ${start} rows of the table`);
    return tf.gather(tf.concat(gathered, 0), tf.tensor1d(order, 'int32')) as tf.Tensor2D;
  });
}

/**
 * x [n, k] times a matrix held as column chunks `partsT` ([k, m_i]): [n, sum m_i], one `matMul` per chunk (each
 * output is the same dot product as in the unchunked matMul). The output must fit the binding limit: `what` names it.
 */
export function matMulColumns(
  x: tf.Tensor2D,
  partsT: readonly tf.Tensor2D[],
  matMul: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = (a, b) => tf.matMul(a, b),
  what = 'the logits',
): tf.Tensor2D {
  if (partsT.length === 1) return matMul(x, partsT[0]!);
  checkBinding([x.shape[0], partsT.reduce((a, p) => a + p.shape[1], 0)], what, FEWER_TOKENS);
  return tf.tidy(() => tf.concat(partsT.map((p) => matMul(x, p)), 1) as tf.Tensor2D);
}
