/**
 * Pruning a weight held in row chunks ([out_i, in], in order): on webgpu, a linear weight over the adapter's binding
 * limit (lib/model/binding.ts) never exists as one tensor. These helpers let a method's `pruneRows` give the mask
 * `prune` gives for the whole weight: per chunk where the method's choices are per output row, and through values
 * combined over every chunk (read back with `await data()`) where it compares the whole layer.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { applyMask } from './mask.js';
import type { PruneResult, RowsPruneResult } from './method.js';

/** `make` for each chunk, in order (the caller owns the results; freed here when one throws). */
export async function eachRow<T extends tf.Tensor>(rows: readonly tf.Tensor2D[], make: (w: tf.Tensor2D, i: number) => T | Promise<T>): Promise<T[]> {
  const out: T[] = [];
  try {
    for (const [i, w] of rows.entries()) out.push(await make(w, i));
    return out;
  } catch (e) {
    tf.dispose(out);
    throw e;
  }
}

/** `pruneRows` of a method whose choices are per output row: `prune` on each chunk by itself. */
export async function pruneEachRow(rows: readonly tf.Tensor2D[], prune: (w: tf.Tensor2D) => PruneResult | Promise<PruneResult>): Promise<RowsPruneResult> {
  const results: PruneResult[] = [];
  try {
    for (const w of rows) results.push(await prune(w));
  } catch (e) {
    for (const r of results) tf.dispose([r.weight, r.mask]);
    throw e;
  }
  return { weights: results.map((r) => r.weight), masks: results.map((r) => r.mask) };
}

/** The weights of `rows` with `masks` applied (masks owned by the result, as `prune` returns them). */
export async function maskedRows(rows: readonly tf.Tensor2D[], masks: tf.Tensor2D[]): Promise<RowsPruneResult> {
  try {
    return { weights: await eachRow(rows, (w, i) => applyMask(w, masks[i]!)), masks };
  } catch (e) {
    tf.dispose(masks);
    throw e;
  }
}

/** The values of every chunk, concatenated on the host (row-major [sum out_i, in]: the whole matrix's values). */
export async function hostRows(rows: readonly tf.Tensor[]): Promise<Float32Array> {
  const all = new Float32Array(rows.reduce((a, t) => a + t.size, 0));
  let at = 0;
  for (const t of rows) {
    all.set((await t.data()) as Float32Array, at);
    at += t.size;
  }
  return all;
}

/** Host values of a [sum out_i, in] matrix cut back into tensors shaped like `rows` (the caller's). */
export function splitRows(values: Float32Array, rows: readonly tf.Tensor2D[]): tf.Tensor2D[] {
  const out: tf.Tensor2D[] = [];
  let at = 0;
  for (const w of rows) {
    out.push(tf.tensor2d(values.subarray(at, at + w.size), w.shape));
    at += w.size;
  }
  return out;
}

/**
 * `sorted(metric(W).flatten())[index]` over every chunk of W (ascending), as a scalar: the metric of each chunk is
 * read back and the values sorted on the host. The same order statistic as `sortedValueTensor` of the whole.
 */
export async function sortedValueOfRows(rows: readonly tf.Tensor2D[], metric: (w: tf.Tensor2D) => tf.Tensor2D, index: number): Promise<tf.Scalar> {
  const metrics = await eachRow(rows, metric);
  let values: Float32Array;
  try {
    values = await hostRows(metrics);
  } finally {
    tf.dispose(metrics);
  }
  if (!Number.isInteger(index) || index < 0 || index >= values.length) {
    throw new ConfigError(`sorted index ${index} is outside a tensor of ${values.length} values`);
  }
  values.sort();
  return tf.scalar(values[index] as number);
}

/** Masks of `rows` removing every metric value <= `thresh` (one threshold for the whole layer). */
export async function thresholdRows(rows: readonly tf.Tensor2D[], metric: (w: tf.Tensor2D) => tf.Tensor2D, thresh: tf.Scalar): Promise<tf.Tensor2D[]> {
  return eachRow(rows, (w) => tf.tidy(() => tf.cast(tf.lessEqual(metric(w), thresh), 'float32') as tf.Tensor2D));
}
