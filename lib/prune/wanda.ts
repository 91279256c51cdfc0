/**
 * Wanda (Sun et al. 2023, docs/methods.md section 3): metric S = |W| * sqrt(s_j), s_j the running mean over samples of
 * the per-sample sum of squares of input feature j; per-row unstructured, N:M, or the alpha-bisection variant.
 * Reference: locuslab/wanda lib/layerwrapper.py (statistics) and lib/prune.py prune_wanda (masks).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, type OptionName } from '../errors.js';
import { z } from 'zod';
import { parseOptions } from './plan.js';
import { applyMask, structureMask, validateOptions } from './mask.js';
import { optionFlagName, type LinearRef, type PruneMethod, type PruneOptions, type PruneResult, type RowsPruneResult } from './method.js';
import { eachRow, maskedRows, pruneEachRow } from './rows.js';
import { ActivationStats, checkLayerInput } from './stats.js';

export { checkLayerInput };

/** Wanda's statistics alone (the scaler row); kept as a class for notebooks and the public API. */
export class WandaStats extends ActivationStats {
  constructor(inFeatures: number) {
    super(inFeatures, ['scaler']);
  }
}

/** S = |W| * sqrt(s) ([out, in]); the caller owns it. */
export function wandaMetric(weight: tf.Tensor2D, scalerRow: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.abs(tf.cast(weight, 'float32')), tf.reshape(tf.sqrt(scalerRow), [1, -1])) as tf.Tensor2D);
}

/** Outcome of the Wanda variant's bisection. */
export interface VariantResult {
  mask: tf.Tensor2D; // [out, in] float32 0/1, owned by the caller
  alpha: number; // the alpha of the returned mask
  sparsity: number; // its zero fraction over the whole layer (float32, as the reference computes it)
}

/**
 * The Wanda variant (reference `use_variant`): per row, sort S ascending (stable) and take the cumulative sum;
 * for a given alpha, `count` = how many cumulative sums are <= alpha * row_sum and the row's threshold is the
 * count-th smallest value; every S <= threshold is removed (so ties with it go too). A row with count 0 keeps
 * everything (the reference would index position -1 there and fail). Bisection on alpha exactly as the reference
 * loop: start 0.4, bracket [0, 0.8], repeat while |sparsity - target| > 0.001 and the bracket is >= 0.001 wide.
 * The layer sparsity and its comparisons are done in float32 like the reference's 0-dim tensors. Each step reads
 * the removed count back (`await data()`: one scalar per step, on every backend).
 */
export async function wandaVariantMask(metric: tf.Tensor2D, target: number): Promise<VariantResult> {
  const r = await wandaVariantMaskRows([metric], target);
  return { mask: r.masks[0]!, alpha: r.alpha, sparsity: r.sparsity };
}

/** Per row chunk: S sorted ascending (stable), its cumulative sum and the row sums (the variant's fixed inputs). */
interface VariantRows {
  metric: tf.Tensor2D;
  sortedVals: tf.Tensor2D;
  cumsum: tf.Tensor2D;
  rowSum: tf.Tensor1D;
}

/** The variant's mask of one row chunk for `alpha` (see wandaVariantMask). */
function variantChunkMask(v: VariantRows, alpha: number): tf.Tensor2D {
  const [out, inFeatures] = v.metric.shape;
  return tf.tidy(() => {
    const thresCumsum = tf.reshape(tf.mul(v.rowSum, tf.scalar(alpha)), [out, 1]); // [out, 1]
    const count = tf.sum(tf.cast(tf.lessEqual(tf.sub(v.cumsum, thresCumsum), tf.scalar(0)), 'int32'), 1, true); // [out, 1]
    // thres = sorted[count - 1], the largest sorted value at a position < count (-inf when count = 0)
    const positions = tf.reshape(tf.range(0, inFeatures, 1, 'int32'), [1, inFeatures]); // [1, in]
    const firstCount = tf.less(tf.sub(positions, count), tf.scalar(0)); // [out, in]
    const thres = tf.max(tf.where(firstCount, v.sortedVals, tf.fill([out, inFeatures], -Infinity)), 1, true); // [out, 1]
    return tf.cast(tf.lessEqual(tf.sub(v.metric, thres), tf.scalar(0)), 'float32') as tf.Tensor2D; // via the difference: fast on wasm
  });
}

/**
 * `wandaVariantMask` of a metric held in row chunks ([out_i, in], in order): every row's threshold is its own, and
 * the layer sparsity of each step is the removed count summed over the chunks (one read per step).
 */
export async function wandaVariantMaskRows(metrics: readonly tf.Tensor2D[], target: number): Promise<{ masks: tf.Tensor2D[]; alpha: number; sparsity: number }> {
  const f32 = Math.fround;
  const numel = metrics.reduce((a, m) => a + m.size, 0);
  const rows: VariantRows[] = [];
  const givenAlpha = async (alpha: number): Promise<{ masks: tf.Tensor2D[]; sparsity: number }> => {
    const masks = await eachRow(metrics, (_m, i) => variantChunkMask(rows[i]!, alpha));
    const totals = masks.map((m) => tf.sum(m));
    let removed = 0;
    try {
      const counts = totals.length === 1 ? await totals[0]!.data() : await readAll(totals);
      for (let i = 0; i < counts.length; i++) removed += counts[i]!;
    } catch (e) {
      tf.dispose(masks);
      throw e;
    } finally {
      tf.dispose(totals);
    }
    return { masks, sparsity: f32(f32(removed) / f32(numel)) };
  };
  try {
    for (const metric of metrics) {
      const inFeatures = metric.shape[1];
      const sortedVals = tf.tidy(() => tf.neg(tf.topk(tf.neg(metric), inFeatures, true).values)) as tf.Tensor2D; // [out, in] ascending
      rows.push({ metric, sortedVals, cumsum: tf.cumsum(sortedVals, 1), rowSum: tf.sum(metric, 1) as tf.Tensor1D });
    }
    const targetF = f32(target);
    const tol = f32(0.001);
    let alpha = 0.4;
    const hist: [number, number] = [0, 0.8];
    let cur = await givenAlpha(alpha);
    while (Math.abs(f32(cur.sparsity - targetF)) > tol && hist[1] - hist[0] >= 0.001) {
      let alphaNew: number;
      if (cur.sparsity > targetF) {
        alphaNew = (alpha + hist[0]) / 2;
        hist[1] = alpha;
      } else {
        alphaNew = (alpha + hist[1]) / 2;
        hist[0] = alpha;
      }
      alpha = alphaNew;
      tf.dispose(cur.masks);
      cur = await givenAlpha(alpha);
    }
    return { masks: cur.masks, alpha, sparsity: cur.sparsity };
  } finally {
    for (const r of rows) tf.dispose([r.sortedVals, r.cumsum, r.rowSum]);
  }
}

/** The values of scalar tensors in one read (the tensors stay the caller's). */
async function readAll(ts: tf.Tensor[]): Promise<ArrayLike<number>> {
  const stacked = tf.stack(ts);
  try {
    return (await stacked.data()) as Float32Array;
  } finally {
    stacked.dispose();
  }
}

const wandaOptions = z.strictObject({
  variant: z.boolean().default(false).meta({ flag: 'use-variant', description: "Wanda's alpha-bisection variant (unstructured only)" }),
});
export type WandaOptions = z.infer<typeof wandaOptions>;

/** The statistics a method reads, checked: present, sized for `weight`, fed with at least one sample. */
export function checkStats(owner: string, weight: tf.Tensor2D, stats: ActivationStats | null): ActivationStats {
  if (!stats) throw new ConfigError(`${owner}.prune: needs calibration statistics`);
  if (weight.rank !== 2 || weight.shape[1] !== stats.inFeatures) {
    throw new ConfigError(
      `${owner}.prune: weight [${weight.shape.join(', ')}] does not match statistics of ${stats.inFeatures} inputs`,
    );
  }
  if (stats.samples === 0) throw new ConfigError(`${owner}.prune: the statistics have seen no calibration sample`);
  return stats;
}

/** The Wanda method: calibration statistics, then a per-output-row mask of |W| * sqrt(s). Weights are not updated. */
export const wanda: PruneMethod<WandaOptions> = {
  name: 'wanda',
  version: 1, // bump when a change alters its masks or weights
  summary: '|W| * sqrt(mean input norm^2), per output row (Sun et al. 2023)',
  stats: ['scaler'],
  options: wandaOptions,
  updatesWeights: false,
  check(target: PruneOptions, options: WandaOptions, name: OptionName = optionFlagName(wandaOptions)): void {
    if (options.variant && target.structure.kind !== 'unstructured') {
      throw new ConfigError(`wanda: the variant (${name('variant')}) applies to unstructured sparsity only`);
    }
  },
  async prune(weight: tf.Tensor2D, stats: ActivationStats | null, target: PruneOptions, options?: WandaOptions, _where?: LinearRef): Promise<PruneResult> {
    validateOptions(target);
    const o = parseOptions('wanda', wandaOptions, options) as z.infer<typeof wandaOptions>;
    wanda.check!(target, o);
    const s = checkStats('wanda', weight, stats);
    const metric = wandaMetric(weight, s.scalerRow); // [out, in]
    try {
      const mask = o.variant ? (await wandaVariantMask(metric, target.sparsity)).mask : structureMask(metric, target);
      return { weight: applyMask(weight, mask), mask };
    } finally {
      metric.dispose();
    }
  },
  /** Per output row, so per chunk; the variant's bisection sums the removed count over the chunks. */
  async pruneRows(rows, stats, target, options): Promise<RowsPruneResult> {
    const o = parseOptions('wanda', wandaOptions, options) as z.infer<typeof wandaOptions>;
    if (!o.variant) return pruneEachRow(rows, (w) => wanda.prune(w, stats, target, options));
    validateOptions(target);
    wanda.check!(target, o);
    const s = checkStats('wanda', rows[0]!, stats);
    const metrics = await eachRow(rows, (w) => wandaMetric(w, s.scalerRow));
    try {
      return await maskedRows(rows, (await wandaVariantMaskRows(metrics, target.sparsity)).masks);
    } finally {
      tf.dispose(metrics);
    }
  },
};
