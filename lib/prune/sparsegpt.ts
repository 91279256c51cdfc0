/**
 * SparseGPT (Frantar & Alistarh 2023; baseline, docs/methods.md section 3). Reference: IST-DASLab/sparsegpt
 * sparsegpt.py, as vendored in locuslab/wanda lib/sparsegpt.py (add_batch, fasterprune with blocksize 128 and
 * percdamp 0.01). Unlike Wanda and magnitude it updates the weights that remain.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, DataError } from '../errors.js';
import { z } from 'zod';
import { parseOptions } from './plan.js';
import { checkNmShape, smallestPerRowMask, sortedValueTensor, validateOptions } from './mask.js';
import type { PruneMethod, PruneOptions, PruneResult, RowsPruneResult } from './method.js';
import { ActivationStats } from './stats.js';
import { checkStats } from './wanda.js';

/** Columns per block of the OBS sweep (the reference's blocksize). */
export const SPARSEGPT_BLOCK = 128;
/** Dampening added to the diagonal, as a fraction of mean(diag H) (the reference's percdamp). */
export const SPARSEGPT_DAMP = 0.01;

/** SparseGPT's statistics alone (the Hessian); kept as a class for the public API. */
export class SparseGptStats extends ActivationStats {
  constructor(inFeatures: number) {
    super(inFeatures, ['hessian']);
  }
}

/**
 * In-place lower Cholesky factor of the symmetric positive definite `a` ([n, n] row-major; only the lower triangle
 * is read). The strict upper triangle is set to 0. Throws a DataError naming `what` and the column where it is not positive.
 */
export function choleskyLowerInPlace(a: Float64Array, n: number, what = 'SparseGPT: the damped Hessian'): void {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j] as number;
    for (let k = 0; k < j; k++) {
      const v = a[rj + k] as number;
      d -= v * v;
    }
    if (!(d > 0)) {
      throw new DataError(
        `${what} is not positive definite (pivot ${d} at column ${j} of ${n}); ` +
          'the calibration inputs of this layer are degenerate or not finite',
      );
    }
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j] as number;
      for (let k = 0; k < j; k++) s -= (a[ri + k] as number) * (a[rj + k] as number);
      a[ri + j] = s / ljj;
    }
    for (let k = j + 1; k < n; k++) a[rj + k] = 0;
  }
}

/** Inverse of a lower-triangular `l` ([n, n] row-major), lower-triangular, row by row (contiguous access). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const lii = l[ri + i] as number;
    // row i of X: X[i, j] = -(sum_{k=j..i-1} L[i, k] X[k, j]) / L[i, i] for j < i; X[i, i] = 1 / L[i, i]
    for (let k = 0; k < i; k++) {
      const lik = l[ri + k] as number;
      if (lik === 0) continue;
      const rk = k * n;
      for (let j = 0; j <= k; j++) x[ri + j] = (x[ri + j] as number) - lik * (x[rk + j] as number);
    }
    for (let j = 0; j < i; j++) x[ri + j] = (x[ri + j] as number) / lii;
    x[ri + i] = 1 / lii;
  }
  return x;
}

/**
 * The upper Cholesky factor U of H^-1 (U^T U = H^-1, positive diagonal), what the reference gets from
 * cholesky(H) -> cholesky_inverse -> cholesky(upper=True). Computed in float64 (more accurate than the reference's
 * float32; the caller rounds the result to float32) in two O(n^3/3) steps instead of three: with J the reversal
 * permutation and L the lower Cholesky factor of J H J, V = J L J is upper with H = V V^T, so H^-1 = V^-T V^-1 and
 * U = V^-1 = J L^-1 J (upper, positive diagonal, hence the unique factor the reference computes).
 * `h` ([n, n] row-major, symmetric) is not modified.
 */
export function upperCholeskyOfInverse(h: Float64Array, n: number): Float64Array {
  const a = new Float64Array(n * n); // J H J
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) a[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)] as number;
  }
  choleskyLowerInPlace(a, n);
  const linv = invertLower(a, n);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) u[i * n + j] = linv[(n - 1 - i) * n + (n - 1 - j)] as number;
  }
  return u;
}

/**
 * The prepared inverse: dead inputs (H_jj == 0) get H_jj = 1, then damp = 0.01 * mean(diag H) is added to the
 * diagonal and Hinv = upper Cholesky of H^-1 is returned as float32 ([in, in] row-major) with the dead columns.
 */
export function prepareHinv(hessian: Float32Array, n: number, percdamp = SPARSEGPT_DAMP): { hinv: Float32Array; dead: boolean[] } {
  const h = Float64Array.from(hessian);
  const dead: boolean[] = [];
  let trace = 0;
  for (let j = 0; j < n; j++) {
    const isDead = h[j * n + j] === 0;
    dead.push(isDead);
    if (isDead) h[j * n + j] = 1;
    trace += h[j * n + j] as number;
  }
  const damp = (percdamp * trace) / n;
  for (let j = 0; j < n; j++) h[j * n + j] = (h[j * n + j] as number) + damp;
  return { hinv: Float32Array.from(upperCholeskyOfInverse(h, n)), dead };
}

/**
 * SparseGPT's OBS sweep over `weight` ([out, in]) given the float32 upper factor `hinv` ([in, in] row-major) and the
 * dead inputs. Blocks of 128 columns; per block the mask is chosen by w^2 / diag(Hinv)^2 (unstructured: one
 * threshold over the whole block, sorted(flatten)[floor(numel * p)] with `<=`; N:M: each M columns from the block's
 * start, chosen when the sweep reaches them, N smallest per row); per column the masked weights are zeroed,
 * err = (w - q) / Hinv_ii is subtracted times Hinv[i, i+1:] from the block's remaining columns, and after the block
 * Err * Hinv[block, rest] is subtracted from the later columns. The per-column work is tfjs ops over all rows.
 * Internally works on W^T ([in, out]) so that a column is a contiguous row. Returns tensors the caller owns.
 * Like the reference, the `<=` threshold removes at least the block's smallest value even at sparsity 0. The mask
 * holds the positions the sweep removed; dead-input columns are zeroed in the weight too (as the reference does)
 * but are in the mask only where the sweep chose them.
 */
export function sparseGptSweep(
  weight: tf.Tensor2D,
  hinv: Float32Array,
  dead: readonly boolean[],
  options: PruneOptions,
  blocksize = SPARSEGPT_BLOCK,
): PruneResult {
  const r = sparseGptSweepRows([weight], hinv, dead, options, blocksize);
  return { weight: r.weights[0]!, mask: r.masks[0]! };
}

/**
 * `sparseGptSweep` of a weight held in row chunks ([out_i, in], in order). Each output row is swept by itself given
 * Hinv; what joins the rows is an unstructured block's threshold, taken over the block's columns of every chunk
 * ([block, out] fits where the whole weight does not). One chunk: exactly `sparseGptSweep`.
 */
export function sparseGptSweepRows(
  rows: readonly tf.Tensor2D[],
  hinv: Float32Array,
  dead: readonly boolean[],
  options: PruneOptions,
  blocksize = SPARSEGPT_BLOCK,
): { weights: tf.Tensor2D[]; masks: tf.Tensor2D[] } {
  const inF = rows[0]!.shape[1];
  // per chunk: the columns not swept yet ([in - i1, out_i]: rows of W^T), updated
  let rests: tf.Tensor2D[] = rows.map((w) => transposedLiveInputs(w, dead));
  const qBlocks: tf.Tensor2D[][] = rows.map(() => []);
  const maskBlocks: tf.Tensor2D[][] = rows.map(() => []);
  try {
    for (let i1 = 0; i1 < inF; i1 += blocksize) {
      const cols: BlockColumns = { hinv, inF, i1, i2: Math.min(i1 + blocksize, inF) };
      rests = sweepBlockRows(rests, cols, options, qBlocks, maskBlocks);
    }
    return tf.tidy(() => ({
      weights: qBlocks.map((q) => tf.transpose(tf.concat(q, 0)) as tf.Tensor2D),
      masks: maskBlocks.map((m) => tf.transpose(tf.concat(m, 0)) as tf.Tensor2D),
    }));
  } finally {
    for (const r of rests) if (!r.isDisposed) r.dispose();
    for (const t of [...qBlocks.flat(), ...maskBlocks.flat()]) t.dispose();
  }
}

/**
 * One block of the sweep over every chunk's remaining columns `rests` (consumed): each chunk's swept values and mask
 * pushed to `qBlocks` / `maskBlocks`, the later columns updated by the block's error (returned, the caller's).
 */
function sweepBlockRows(
  rests: tf.Tensor2D[],
  cols: BlockColumns,
  options: PruneOptions,
  qBlocks: tf.Tensor2D[][],
  maskBlocks: tf.Tensor2D[][],
): tf.Tensor2D[] {
  const count = cols.i2 - cols.i1;
  const heads: (tf.Tensor2D | null)[] = []; // the block's columns of each chunk, until sweepBlock consumes them
  const tails: (tf.Tensor2D | null)[] = [];
  const next: tf.Tensor2D[] = [];
  let masks: (tf.Tensor2D | null)[] = [];
  try {
    for (const r of rests) {
      const [w1, tail] = splitRows(r, count);
      r.dispose();
      heads.push(w1);
      tails.push(tail);
    }
    if (options.structure.kind === 'unstructured') masks = unstructuredBlockMasks(heads as tf.Tensor2D[], blockDiag(cols), options.sparsity);
    for (let c = 0; c < heads.length; c++) {
      const [w1, mask] = [heads[c]!, masks[c] ?? null];
      [heads[c], masks[c]] = [null, null];
      const swept = sweepBlock(w1, cols, options, mask); // consumes w1 and the mask
      qBlocks[c]!.push(swept.q);
      maskBlocks[c]!.push(swept.mask);
      try {
        const tail = tails[c];
        if (tail) next.push(propagateBlockError(tail, swept.err, cols));
      } finally {
        swept.err.dispose();
      }
    }
    return next;
  } catch (e) {
    tf.dispose(next);
    throw e;
  } finally {
    for (const t of [...heads, ...tails, ...masks]) t?.dispose();
  }
}

/** One block of the sweep: columns i1..i2 of the [in, in] row-major `hinv`. */
interface BlockColumns {
  hinv: Float32Array;
  inF: number;
  i1: number;
  i2: number;
}

/** W^T ([in, out], float32) with the dead input columns zeroed: a column of W is a contiguous row. */
function transposedLiveInputs(weight: tf.Tensor2D, dead: readonly boolean[]): tf.Tensor2D {
  const [out, inF] = weight.shape;
  return tf.tidy(() => {
    const wt = tf.transpose(tf.cast(weight, 'float32')) as tf.Tensor2D; // [in, out]
    if (!dead.includes(true)) return wt;
    const deadCol = tf.tensor2d(dead.map((d) => (d ? 1 : 0)), [inF, 1], 'int32'); // [in, 1]
    return tf.where(tf.cast(tf.broadcastTo(deadCol, [inF, out]), 'bool'), tf.zerosLike(wt), wt) as tf.Tensor2D;
  });
}

/** The first `count` rows of `t` and the rest (null when none); `t` stays the caller's. */
function splitRows(t: tf.Tensor2D, count: number): [tf.Tensor2D, tf.Tensor2D | null] {
  const [rows, out] = t.shape;
  const [head, tail] = tf.tidy(() => {
    const h = tf.slice(t, [0, 0], [count, out]) as tf.Tensor2D;
    return count < rows ? [h, tf.slice(t, [count, 0], [rows - count, out]) as tf.Tensor2D] : [h];
  }) as [tf.Tensor2D, tf.Tensor2D | undefined];
  return [head, tail ?? null];
}

/** diag(Hinv) over the block's columns. */
function blockDiag(b: BlockColumns): Float32Array {
  const diag = new Float32Array(b.i2 - b.i1);
  for (let i = 0; i < diag.length; i++) diag[i] = b.hinv[(b.i1 + i) * b.inF + b.i1 + i] as number;
  return diag;
}

/** The pruning metric w^2 / d^2 of `rows` ([len, out]: the block's columns from..from+len, as rows of W^T). */
function blockMetric(rows: tf.Tensor2D, diag: Float32Array, from: number, len: number): tf.Tensor2D {
  return tf.tidy(() => {
    const d = tf.tensor2d(diag.subarray(from, from + len), [len, 1]); // [len, 1]
    return tf.div(tf.square(rows), tf.square(d)) as tf.Tensor2D; // [len, out]
  });
}

/**
 * Unstructured: the block's mask ([count, out_i] per chunk, 1 = removed) by one threshold over the whole block: the
 * block's columns of every chunk side by side ([count, out]).
 */
function unstructuredBlockMasks(w1s: readonly tf.Tensor2D[], diag: Float32Array, sparsity: number): tf.Tensor2D[] {
  const w1 = w1s.length === 1 ? w1s[0]! : (tf.concat([...w1s], 1) as tf.Tensor2D);
  const metric = blockMetric(w1, diag, 0, w1.shape[0]);
  if (w1 !== w1s[0]) w1.dispose();
  try {
    // wasm / cpu: the value read back and sorted on the host; webgpu: the same order statistic on the device
    const thresh = sortedValueTensor(metric, Math.floor(metric.size * sparsity));
    try {
      return tf.tidy(() => {
        const mask = tf.cast(tf.lessEqual(metric, thresh), 'float32') as tf.Tensor2D;
        return w1s.length === 1 ? [mask] : (tf.split(mask, w1s.map((w) => w.shape[1]), 1) as tf.Tensor2D[]);
      });
    } finally {
      thresh.dispose();
    }
  } finally {
    metric.dispose();
  }
}

/** N:M: the mask ([M, out]) of the group of M columns at the head of `cur`, from their current values. */
function groupMask(cur: tf.Tensor2D, diag: Float32Array, i: number, n: number, m: number): tf.Tensor2D {
  return tf.tidy(() => {
    const rows = tf.slice(cur, [0, 0], [m, cur.shape[1]]) as tf.Tensor2D; // [M, out], current values
    const metric = tf.transpose(blockMetric(rows, diag, i, m)) as tf.Tensor2D; // [out, M]
    return tf.transpose(smallestPerRowMask(metric, n)) as tf.Tensor2D; // [M, out]
  });
}

/**
 * Column i of a block: its masked weights zeroed (q), err = (w - q) / Hinv_ii, and the block's later columns
 * (the rest of `cur`) updated by err times Hinv[i, i+1:] (`next`; absent after the last column).
 */
function sweepColumn(
  cur: tf.Tensor2D,
  maskRowOf: () => tf.Tensor2D,
  diag: Float32Array,
  i: number,
  b: BlockColumns,
): { maskRow: tf.Tensor2D; q: tf.Tensor2D; err: tf.Tensor2D; next?: tf.Tensor2D } {
  const count = b.i2 - b.i1;
  const out = cur.shape[1];
  return tf.tidy(() => {
    const maskRow = maskRowOf(); // [1, out]
    const w = tf.slice(cur, [0, 0], [1, out]) as tf.Tensor2D; // [1, out]
    const q = tf.where(tf.cast(maskRow, 'bool'), tf.zerosLike(w), w) as tf.Tensor2D; // [1, out]
    const err = tf.div(tf.sub(w, q), tf.scalar(diag[i] as number)) as tf.Tensor2D; // [1, out]
    if (i + 1 === count) return { maskRow, q, err };
    const row = (b.i1 + i) * b.inF;
    const h = tf.tensor2d(b.hinv.subarray(row + b.i1 + i + 1, row + b.i2), [count - i - 1, 1]); // Hinv1[i, i+1:]^T
    const next = tf.sub(tf.slice(cur, [1, 0], [count - i - 1, out]), tf.mul(h, err)) as tf.Tensor2D;
    return { maskRow, q, err, next };
  }) as { maskRow: tf.Tensor2D; q: tf.Tensor2D; err: tf.Tensor2D; next?: tf.Tensor2D };
}

/**
 * The OBS sweep over one block's columns (`w1`: [count, out], rows of W^T; consumed). The mask is chosen per block
 * (unstructured) or per group of M columns when the sweep reaches it (N:M). Returns the swept values, the mask and
 * the errors ([count, out] each, the caller's).
 */
function sweepBlock(
  w1: tf.Tensor2D,
  b: BlockColumns,
  options: PruneOptions,
  blockMask: tf.Tensor2D | null, // unstructured: [count, out] (consumed); N:M: null
): { q: tf.Tensor2D; mask: tf.Tensor2D; err: tf.Tensor2D } {
  const { structure } = options;
  const count = b.i2 - b.i1;
  const out = w1.shape[1];
  const diag = blockDiag(b);
  const qs: tf.Tensor2D[] = [];
  const errs: tf.Tensor2D[] = [];
  const maskRows: tf.Tensor2D[] = [];
  let remaining: tf.Tensor2D | null = w1; // [count - i, out]: current values of the block's columns i..count-1
  let group: tf.Tensor2D | null = null; // N:M: mask of the current group of M columns, [M, out]
  try {
    for (let i = 0; i < count; i++) {
      const cur: tf.Tensor2D = remaining as tf.Tensor2D;
      if (structure.kind === 'nm' && i % structure.m === 0) {
        group?.dispose();
        group = groupMask(cur, diag, i, structure.n, structure.m);
      }
      // this column's mask row: from the N:M group, or from the block's unstructured mask
      const [source, index] = group && structure.kind === 'nm' ? [group, i % structure.m] : [blockMask as tf.Tensor2D, i];
      const step = sweepColumn(cur, () => tf.slice(source, [index, 0], [1, out]) as tf.Tensor2D, diag, i, b);
      maskRows.push(step.maskRow);
      qs.push(step.q);
      errs.push(step.err);
      cur.dispose();
      remaining = step.next ?? null;
    }
    return tf.tidy(() => ({
      q: tf.concat(qs, 0) as tf.Tensor2D,
      mask: tf.concat(maskRows, 0) as tf.Tensor2D,
      err: tf.concat(errs, 0) as tf.Tensor2D,
    }));
  } finally {
    remaining?.dispose();
    group?.dispose();
    blockMask?.dispose();
    for (const t of [...qs, ...errs, ...maskRows]) t.dispose();
  }
}

/** After a block: W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:], transposed: W^T[i2:] -= Hinv[i1:i2, i2:]^T @ Err1^T. */
function propagateBlockError(tail: tf.Tensor2D, err1: tf.Tensor2D, b: BlockColumns): tf.Tensor2D {
  const count = b.i2 - b.i1;
  const later = b.inF - b.i2;
  const hT = new Float32Array(later * count); // [in - i2, count]
  for (let r = 0; r < count; r++) {
    const src = (b.i1 + r) * b.inF;
    for (let c = b.i2; c < b.inF; c++) hT[(c - b.i2) * count + r] = b.hinv[src + c] as number;
  }
  return tf.tidy(() => tf.sub(tail, tf.matMul(tf.tensor2d(hT, [later, count]), err1)) as tf.Tensor2D);
}

const sparsegptOptions = z.strictObject({
  damp: z.number().positive().default(SPARSEGPT_DAMP).meta({ flag: 'damp', description: 'SparseGPT: dampening, a fraction of mean(diag H) (default 0.01)' }),
  blocksize: z.number().int().positive().default(SPARSEGPT_BLOCK).meta({ flag: 'blocksize', description: 'SparseGPT: columns per block of the OBS sweep (default 128)' }),
});
export type SparseGptOptions = z.infer<typeof sparsegptOptions>;

/** The SparseGPT method: Hessian statistics, then the OBS sweep that removes and updates weights. */
export const sparsegpt: PruneMethod<SparseGptOptions> = {
  name: 'sparsegpt',
  version: 1, // bump when a change alters its masks or weights
  summary: 'OBS sweep with weight updates from the Hessian of the inputs (Frantar & Alistarh 2023)',
  stats: ['hessian'],
  options: sparsegptOptions,
  updatesWeights: true,
  async prune(weight: tf.Tensor2D, stats: ActivationStats | null, target: PruneOptions, options?: SparseGptOptions): Promise<PruneResult> {
    const { hinv, dead, blocksize } = await sparseGptInverse(weight, weight.shape, stats, target, options);
    return sparseGptSweep(weight, hinv, dead, target, blocksize);
  },
  /** Hinv once for the layer, then the sweep over the chunks (sparseGptSweepRows). */
  async pruneRows(rows, stats, target, options): Promise<RowsPruneResult> {
    const shape: [number, number] = [rows.reduce((a, w) => a + w.shape[0], 0), rows[0]!.shape[1]];
    const { hinv, dead, blocksize } = await sparseGptInverse(rows[0]!, shape, stats, target, options);
    return sparseGptSweepRows(rows, hinv, dead, target, blocksize);
  },
};

/** The options and statistics checked for a weight of `shape` (`weight`: it or a row chunk), then Hinv. */
async function sparseGptInverse(
  weight: tf.Tensor2D,
  shape: [number, number],
  stats: ActivationStats | null,
  target: PruneOptions,
  options?: SparseGptOptions,
): Promise<{ hinv: Float32Array; dead: boolean[]; blocksize: number }> {
  validateOptions(target);
  const o = parseOptions('sparsegpt', sparsegptOptions, options) as z.infer<typeof sparsegptOptions>;
  const s = checkStats('sparsegpt', weight, stats);
  const { structure } = target;
  if (structure.kind === 'nm') {
    checkNmShape(shape, structure.n, structure.m);
    if (o.blocksize % structure.m !== 0) {
      throw new ConfigError(
        `structure ${structure.n}:${structure.m}: SparseGPT forms N:M groups inside blocks of ${o.blocksize} ` +
          `columns, so M must divide ${o.blocksize}`,
      );
    }
  }
  // the inverse Hessian is factored on the host in float64: one read of the Hessian per linear
  const { hinv, dead } = prepareHinv((await s.hessian.data()) as Float32Array, s.inFeatures, o.damp);
  return { hinv, dead, blocksize: o.blocksize };
}
