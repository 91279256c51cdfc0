/**
 * RIA, relative importance and activations (Zhang et al. 2024; docs/methods.md section 7.2). Reference:
 * biomedical-cybernetics/Relative-importance-and-activation-pruning lib/prune.py `prune_ria`.
 *   RIA_ij = (|W_ij| / sum_k |W_kj| + |W_ij| / sum_k |W_ik|) * sqrt(scaler_row_j) ** a
 * Unstructured: ONE threshold per matrix (t = sorted(RIA.flatten())[int(R*C*s)], remove RIA <= t), or per output
 * row with `perOutneuron`. N:M: per row, the N smallest of each M consecutive columns. `permute` (N:M only): the
 * reference's channel reallocation then linear-sum-assignment, which choose the N:M groups in a permuted column
 * order; the weights are NOT moved, so the mask is N:M in that order (returned as `permutation`), not in the stored one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { parseOptions } from './plan.js';
import { ConfigError, type OptionName } from '../errors.js';
import { linearSumAssignment } from './lsa.js';
import { applyMask, checkNmShape, nmMask, smallestPerRowMask, sortedValueTensor, validateOptions } from './mask.js';
import { optionFlagName, type PruneMethod, type PruneOptions, type PruneResult, type RowsPruneResult } from './method.js';
import { eachRow, hostRows, maskedRows, sortedValueOfRows, thresholdRows } from './rows.js';
import type { ActivationStats } from './stats.js';
import { checkStats } from './wanda.js';

const riaOptions = z.strictObject({
  alpha: z.number().min(0).default(0.5).meta({ flag: 'ria-alpha', description: 'RIA: exponent a of the activation term (default 0.5)' }),
  permute: z.boolean().default(false).meta({ flag: 'permute', description: 'RIA, N:M only: channel reallocation + linear-sum-assignment permutation' }),
  perOutneuron: z.boolean().default(false).meta({ flag: 'ria-per-outneuron', description: 'RIA, unstructured: one threshold per output row instead of per matrix' }),
});
export type RiaOptions = z.infer<typeof riaOptions>;

/**
 * The RIA metric ([out, in], float32); the caller owns it. `colSum` ([1, in]): the column sums of |W| when `weight`
 * is a row chunk of W (default: its own, the whole matrix's).
 */
export function riaMetric(weight: tf.Tensor2D, scalerRow: tf.Tensor1D, alpha: number, colSum?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const a = tf.abs(tf.cast(weight, 'float32'));
    const cols = colSum ?? tf.sum(a, 0, true); // [1, in]: over the column (all rows)
    const rowSum = tf.sum(a, 1, true); // [out, 1]: over the row
    const act = tf.pow(tf.reshape(tf.sqrt(scalerRow), [1, -1]), tf.scalar(alpha)); // sqrt, then ** a
    return tf.mul(tf.add(tf.div(a, cols), tf.div(a, rowSum)), act) as tf.Tensor2D;
  });
}

/** Stable ascending argsort of `values`. */
function argsortAsc(values: ArrayLike<number>): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  return idx.sort((x, y) => (values[x] as number) - (values[y] as number) || x - y);
}

/**
 * The reference's heuristic channel reallocation: columns sorted by ascending column sum of the metric, cut into m
 * equal slices; slice k (1-based) fills slots k-1, k-1+m, ... and is reversed when k is even (a snake).
 */
export function reallocationIndex(metric: Float32Array, rows: number, cols: number, m: number): number[] {
  const colSum = new Float32Array(cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) colSum[j] = Math.fround((colSum[j] as number) + (metric[r * cols + j] as number));
  const sorted = argsortAsc(colSum);
  const index = new Array<number>(cols).fill(0);
  for (let k = 1; k <= m; k++) {
    const slice = sorted.slice(Math.floor((cols * (k - 1)) / m), Math.floor((cols * k) / m));
    if (k % 2 === 0) slice.reverse();
    slice.forEach((c, t) => (index[k - 1 + t * m] = c));
  }
  return index;
}

/**
 * One linear-sum-assignment round for slot `c` of every group of m columns of the permuted metric P = metric[:, index]:
 * S[g][h] = sum over rows of the m - n largest values of [P[:, h*m+c], P[:, g*m+c'] for c' != c] (group g taking group
 * h's slot-c column); h* maximises the total; returns the new index with index[g*m+c] = old index[h*_g*m+c].
 */
export function lsaRound(metric: Float32Array, rows: number, cols: number, n: number, m: number, c: number, index: readonly number[]): number[] {
  const groups = cols / m;
  const keep = m - n;
  const score = new Float64Array(groups * groups);
  const others = new Float64Array(m - 1);
  const top = new Float64Array(groups); // per g: sum of the keep-1 largest others
  const kth = new Float64Array(groups); // per g: the keep-th largest other
  const x = new Float64Array(groups); // per h: P[r, h*m+c]
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let g = 0; g < groups; g++) {
      let t = 0;
      for (let cc = 0; cc < m; cc++) if (cc !== c) others[t++] = metric[row + (index[g * m + cc] as number)] as number;
      others.sort();
      let s = 0;
      for (let q = 0; q < keep - 1; q++) s += others[m - 2 - q] as number;
      top[g] = s;
      kth[g] = others[m - 1 - keep] as number;
      x[g] = metric[row + (index[g * m + c] as number)] as number;
    }
    // top keep of (others + x) = (keep-1 largest others) + max(x, keep-th largest other)
    for (let g = 0; g < groups; g++) {
      const base = g * groups;
      const tg = top[g] as number;
      const kg = kth[g] as number;
      for (let h = 0; h < groups; h++) score[base + h] = (score[base + h] as number) + tg + Math.max(x[h] as number, kg);
    }
  }
  const assign = linearSumAssignment(score, groups, true);
  const next = index.slice();
  for (let g = 0; g < groups; g++) next[g * m + c] = index[(assign[g] as number) * m + c] as number;
  return next;
}

/** Reallocation, then one LSA round per slot: the permuted column order the N:M mask is chosen in. */
export function riaPermutation(metric: Float32Array, rows: number, cols: number, n: number, m: number): number[] {
  let index = reallocationIndex(metric, rows, cols, m);
  for (let c = 0; c < m; c++) index = lsaRound(metric, rows, cols, n, m, c, index);
  return index;
}

/** The RIA mask ([out, in], 1 = removed) of `metric` and, with `permute`, the permutation it is N:M in. */
export async function riaMask(metric: tf.Tensor2D, target: PruneOptions, o: RiaOptions): Promise<{ mask: tf.Tensor2D; permutation?: number[] }> {
  const { structure } = target;
  const [rows, cols] = metric.shape;
  if (structure.kind === 'unstructured') {
    if (o.perOutneuron) return { mask: smallestPerRowMask(metric, Math.floor(cols * target.sparsity)) };
    const thresh = sortedValueTensor(metric, Math.floor(rows * cols * target.sparsity));
    try {
      return { mask: tf.tidy(() => tf.cast(tf.lessEqual(metric, thresh), 'float32') as tf.Tensor2D) };
    } finally {
      thresh.dispose();
    }
  }
  checkNmShape(metric.shape, structure.n, structure.m);
  if (!o.permute) return { mask: nmMask(metric, structure.n, structure.m) };
  // the permutation is solved on the host (one read of the metric)
  const permutation = riaPermutation((await metric.data()) as Float32Array, rows, cols, structure.n, structure.m);
  return { mask: permutedNmMask(metric, permutation, structure.n, structure.m), permutation };
}

/** The N:M mask of `metric` ([out, in]) in the column order `permutation` (mask[:, permutation[k]] = slot k's). */
function permutedNmMask(metric: tf.Tensor2D, permutation: readonly number[], n: number, m: number): tf.Tensor2D {
  const inverse = new Array<number>(permutation.length);
  permutation.forEach((col, k) => (inverse[col] = k));
  return tf.tidy(() => {
    const permuted = tf.gather(metric, tf.tensor1d(permutation as number[], 'int32'), 1) as tf.Tensor2D;
    const maskP = nmMask(permuted, n, m);
    return tf.gather(maskP, tf.tensor1d(inverse, 'int32'), 1) as tf.Tensor2D; // mask[:, index[k]] = maskP[:, k]
  });
}

/**
 * `riaMask` of a metric held in row chunks ([out_i, in], in order): the matrix's threshold from every chunk's values,
 * the permutation from the whole metric read back; per-row choices per chunk.
 */
async function riaMaskRows(metrics: readonly tf.Tensor2D[], target: PruneOptions, o: RiaOptions): Promise<{ masks: tf.Tensor2D[]; permutation?: number[] }> {
  const { structure } = target;
  const cols = metrics[0]!.shape[1];
  const rows = metrics.reduce((a, m) => a + m.shape[0], 0);
  if (structure.kind === 'unstructured' && !o.perOutneuron) {
    const thresh = await sortedValueOfRows(metrics, (m) => tf.clone(m), Math.floor(rows * cols * target.sparsity));
    try {
      return { masks: await thresholdRows(metrics, (m) => m, thresh) };
    } finally {
      thresh.dispose();
    }
  }
  if (structure.kind === 'nm' && o.permute) {
    checkNmShape([rows, cols], structure.n, structure.m);
    const permutation = riaPermutation(await hostRows(metrics), rows, cols, structure.n, structure.m);
    return { masks: await eachRow(metrics, (m) => permutedNmMask(m, permutation, structure.n, structure.m)), permutation };
  }
  return { masks: await eachRow(metrics, async (m) => (await riaMask(m, target, o)).mask) };
}

export const ria: PruneMethod<RiaOptions> = {
  name: 'ria',
  version: 1, // bump when a change alters its masks or weights
  summary: 'relative importance * activations^a; per-matrix threshold; N:M with optional channel permutation (Zhang et al. 2024)',
  stats: ['scaler'],
  options: riaOptions,
  updatesWeights: false,
  check(target: PruneOptions, o: RiaOptions, name: OptionName = optionFlagName(riaOptions)): void {
    if (o.permute && target.structure.kind !== 'nm') throw new ConfigError(`ria: ${name('permute')} applies to N:M structures only`);
    if (o.perOutneuron && target.structure.kind !== 'unstructured') {
      throw new ConfigError(`ria: ${name('perOutneuron')} applies to unstructured sparsity only`);
    }
  },
  async prune(weight: tf.Tensor2D, stats: ActivationStats | null, target: PruneOptions, options?: RiaOptions): Promise<PruneResult> {
    validateOptions(target);
    const o = parseOptions('ria', riaOptions, options) as z.infer<typeof riaOptions>;
    ria.check!(target, o);
    const s = checkStats('ria', weight, stats);
    const metric = riaMetric(weight, s.scalerRow, o.alpha);
    try {
      const { mask, permutation } = await riaMask(metric, target, o);
      return { weight: applyMask(weight, mask), mask, ...(permutation ? { permutation } : {}) };
    } finally {
      metric.dispose();
    }
  },
  /** The column sums of |W| summed over the chunks, then riaMaskRows (float32 sums: the order of the additions differs). */
  async pruneRows(rows, stats, target, options): Promise<RowsPruneResult> {
    validateOptions(target);
    const o = parseOptions('ria', riaOptions, options) as z.infer<typeof riaOptions>;
    ria.check!(target, o);
    const s = checkStats('ria', rows[0]!, stats);
    const colSum = tf.tidy(() => tf.addN(rows.map((w) => tf.sum(tf.abs(tf.cast(w, 'float32')), 0, true))) as tf.Tensor2D);
    let metrics: tf.Tensor2D[] = [];
    try {
      metrics = await eachRow(rows, (w) => riaMetric(w, s.scalerRow, o.alpha, colSum));
      const { masks, permutation } = await riaMaskRows(metrics, target, o);
      return { ...(await maskedRows(rows, masks)), ...(permutation ? { permutation } : {}) };
    } finally {
      colSum.dispose();
      tf.dispose(metrics);
    }
  },
};
