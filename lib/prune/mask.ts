/**
 * Shared mask functions (docs/methods.md section 3): per-row unstructured masks, N:M masks, the whole-tensor
 * sort-and-index threshold, and validation of PruneOptions. Masks are float32 tensors with 1 = removed, 0 = kept.
 *
 * Ties are broken deterministically on every backend, without relying on the tie order of `tf.topk`: among equal
 * metric values the lower column index is removed first (what the reference's `torch.sort(..., stable=True)` does
 * for unstructured masks). For N:M the reference uses `torch.topk(largest=False)`, whose tie order PyTorch does not
 * specify; we apply the same lower-index-first rule there.
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernels, type Kernels } from '../model/backend.js';
import { ConfigError } from '../errors.js';
import type { PruneOptions, Structure } from './method.js';

/** 'unstructured' or 'N:M', as users write it. */
export function describeStructure(structure: Structure): string {
  return structure.kind === 'unstructured' ? 'unstructured' : `${structure.n}:${structure.m}`;
}

/**
 * Check options before any work: sparsity a finite number in [0, 1); N and M positive integers with N < M;
 * with N:M, sparsity must equal N/M (N:M fixes the ratio; a different value would be silently ignored otherwise).
 */
export function validateOptions(options: PruneOptions): void {
  const { sparsity, structure } = options;
  if (typeof sparsity !== 'number' || !Number.isFinite(sparsity) || sparsity < 0 || sparsity >= 1) {
    throw new ConfigError(`sparsity: ${String(sparsity)} is not a number in [0, 1)`);
  }
  if (structure.kind === 'nm') {
    const { n, m } = structure;
    if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 1) {
      throw new ConfigError(`structure ${String(n)}:${String(m)}: N and M must be positive integers`);
    }
    if (n >= m) throw new ConfigError(`structure ${n}:${m}: N must be smaller than M`);
    if (Math.abs(sparsity - n / m) > 1e-9) {
      throw new ConfigError(`structure ${n}:${m} fixes sparsity at ${n / m}; got sparsity ${sparsity}`);
    }
  } else if (structure.kind !== 'unstructured') {
    throw new ConfigError(`structure: kind '${String((structure as { kind: unknown }).kind)}' is not 'unstructured' or 'nm'`);
  }
}

/** N:M needs groups of M whole columns: throws a ConfigError naming the layer shape when `in % M != 0`. */
export function checkNmShape(shape: readonly [number, number], n: number, m: number): void {
  const [out, inFeatures] = shape;
  if (inFeatures % m !== 0) {
    throw new ConfigError(
      `structure ${n}:${m} needs the input size to be a multiple of ${m}; this layer's weight is ` +
        `[out, in] = [${out}, ${inFeatures}] and ${inFeatures} % ${m} = ${inFeatures % m}`,
    );
  }
}

/** Elements per row chunk of smallestPerRowMask (16M float32: 64 MB per transient). */
const ROW_CHUNK_ELEMENTS = 1 << 24;

/**
 * Mask of the `k` smallest values of each row of `metric` ([rows, cols]), ties: lower column index first.
 * The caller owns the result ([rows, cols], float32 0/1). `metric` is not consumed. `hostReads` 'sync' takes a
 * fast path when no tie crosses the cut (one host read); 'none' never reads back (same mask). Default: the backend's.
 */
export function smallestPerRowMask(
  metric: tf.Tensor2D,
  k: number,
  chunkElements = ROW_CHUNK_ELEMENTS,
  hostReads: Kernels['hostReads'] = kernels().hostReads,
): tf.Tensor2D {
  const [rows, cols] = metric.shape;
  if (!Number.isInteger(k) || k < 0 || k > cols) {
    throw new ConfigError(`cannot remove ${k} of ${cols} values per row`);
  }
  // Rows are independent: large matrices go in chunks of rows, so the transients (negated copy, top-k values and
  // indices, difference, comparison) are those of a chunk, not of the matrix (a 13B MLP matrix is 283 MB in float32,
  // and wasm's heap is 4 GB). The mask is the same.
  const chunk = Math.max(1, Math.floor(chunkElements / cols));
  if (rows > chunk) {
    const parts: tf.Tensor2D[] = [];
    try {
      for (let r = 0; r < rows; r += chunk) {
        parts.push(tf.tidy(() => smallestPerRowMask(tf.slice(metric, [r, 0], [Math.min(chunk, rows - r), cols]), k, Infinity, hostReads)));
      }
      return tf.concat(parts, 0);
    } finally {
      tf.dispose(parts);
    }
  }
  return tf.tidy(() => {
    if (k === 0) return tf.zeros([rows, cols], 'float32');
    if (k === cols) return tf.ones([rows, cols], 'float32');
    // The k-th smallest value of each row (topk of the negated values; only the value is used, not topk's tie order).
    // (unsorted topk of the negated values, then the largest of those k: about 2.5x faster than a sorted topk)
    const kth = tf.max(tf.neg(tf.topk(tf.neg(metric), k, false).values), 1, true); // [rows, 1]
    // Compare through the difference with a scalar: broadcasting comparisons are ~20x slower on wasm.
    // For finite floats, a - b < 0 exactly when a < b and a - b == 0 exactly when a == b.
    const diff = tf.sub(metric, kth); // [rows, cols]
    // Fast path: when every row has exactly k values <= its k-th smallest (no tie crosses the cut), that is the mask.
    const atMost = tf.cast(tf.lessEqual(diff, tf.scalar(0)), 'float32'); // [rows, cols]
    const counts = tf.sum(atMost, 1); // [rows]
    // (on backends without cheap host reads the check is skipped: the general path below gives the same mask)
    if (hostReads === 'sync' && tf.max(counts).dataSync()[0] === k) return atMost as tf.Tensor2D;
    // Ties at the cut: all values below it are removed, then the first `need` tied ones by column index.
    const less = tf.less(diff, tf.scalar(0)); // [rows, cols], all of these are removed
    const tie = tf.equal(diff, tf.scalar(0)); // [rows, cols], the first `need` of these are removed
    const need = tf.sub(tf.scalar(k, 'float32'), tf.sum(tf.cast(less, 'float32'), 1, true)); // [rows, 1]
    const tieRank = tf.cumsum(tf.cast(tie, 'float32'), 1); // 1, 2, ... along the row among tied entries
    const takeTie = tf.logicalAnd(tie, tf.lessEqual(tf.sub(tieRank, need), tf.scalar(0)));
    return tf.cast(tf.logicalOr(less, takeTie), 'float32') as tf.Tensor2D;
  });
}

/**
 * N:M mask of `metric` ([out, in]): in each row, in each group of M consecutive columns starting at a multiple of
 * M, the N smallest are removed (ties: lower index first). Throws a ConfigError when `in % M != 0`.
 * The caller owns the result ([out, in], float32 0/1).
 */
export function nmMask(metric: tf.Tensor2D, n: number, m: number): tf.Tensor2D {
  const [out, inFeatures] = metric.shape;
  checkNmShape(metric.shape, n, m);
  return tf.tidy(() => {
    const groups = tf.reshape(metric, [(out * inFeatures) / m, m]) as tf.Tensor2D; // [out * in/M, M]
    return tf.reshape(smallestPerRowMask(groups, n), [out, inFeatures]) as tf.Tensor2D;
  });
}

/**
 * The mask of a method with a per-row comparison group: unstructured removes floor(in * sparsity) per output row,
 * N:M as `nmMask`. Validates the options. The caller owns the result.
 */
export function structureMask(metric: tf.Tensor2D, options: PruneOptions): tf.Tensor2D {
  validateOptions(options);
  const { structure } = options;
  if (structure.kind === 'nm') return nmMask(metric, structure.n, structure.m);
  const inFeatures = metric.shape[1];
  return smallestPerRowMask(metric, Math.floor(inFeatures * options.sparsity));
}

/**
 * `sorted(values.flatten())[index]` (ascending), as the reference's `torch.sort(x.flatten())[0][index]`.
 * Reads the values back (one sync) and sorts a float32 copy; only the value is needed, so ties do not matter.
 */
export function sortedValueAt(values: tf.Tensor, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= values.size) {
    throw new ConfigError(`sorted index ${index} is outside a tensor of ${values.size} values`);
  }
  const copy = new Float32Array(values.dataSync() as Float32Array);
  copy.sort();
  return copy[index] as number;
}

/**
 * `sortedValueAt` as a scalar tensor. With host reads (`hostReads` 'sync': wasm, cpu) it is `sortedValueAt`; without
 * (webgpu) it stays on the device: the largest of the index + 1 smallest values (topk), the same order statistic.
 */
export function sortedValueTensor(values: tf.Tensor, index: number, hostReads: Kernels['hostReads'] = kernels().hostReads): tf.Scalar {
  if (hostReads === 'sync') return tf.scalar(sortedValueAt(values, index));
  if (!Number.isInteger(index) || index < 0 || index >= values.size) {
    throw new ConfigError(`sorted index ${index} is outside a tensor of ${values.size} values`);
  }
  return tf.tidy(() => tf.max(tf.neg(tf.topk(tf.neg(tf.reshape(values, [-1])), index + 1, false).values)) as tf.Scalar);
}

/**
 * `weight` with the masked entries set to +0 (`mask`: 1 = removed). The caller owns the result.
 * w * (1 - mask) + 0: the product gives -0 for negative weights, adding +0 turns it into +0 (as the reference's
 * `W[mask] = 0`); several times faster than `tf.where` on wasm.
 */
export function applyMask(weight: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.add(tf.mul(weight, tf.sub(tf.scalar(1), mask)), tf.scalar(0)) as tf.Tensor2D);
}
