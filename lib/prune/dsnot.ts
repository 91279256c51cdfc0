/**
 * DSnoT, training-free prune-and-grow refinement of a mask (Zhang et al. 2024; docs/methods.md section 7.3). Reference:
 * zyxxmu/DSnoT lib/prune.py `prune_DSnoT` (unstructured branch) and lib/layerwrapper.py `WrappedGPT`.
 * Defaults are the reference README's LLaMA command and main.py: 50 cycles, update threshold 0.1, variance power 1,
 * skip_layer "mlp" (only the attention linears are refined), no sign check (`without_same_sign`, which the
 * reference's argparse cannot switch off). The cycle runs on the host: it is a short sequential loop per row.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { parseOptions } from './plan.js';
import { ConfigError } from '../errors.js';
import type { LinearRef, MaskRefiner, PruneOptions } from './method.js';
import type { ActivationStats } from './stats.js';
import { hostRows, splitRows } from './rows.js';

const dsnotOptions = z.strictObject({
  cycles: z.number().int().min(0).default(50).meta({ flag: 'dsnot-cycles', description: 'DSnoT: maximum prune-and-grow cycles (default 50)' }),
  threshold: z.number().min(0).default(0.1).meta({ flag: 'dsnot-threshold', description: 'DSnoT: update threshold on |reconstruction error| (default 0.1)' }),
  skipLayer: z.enum(['mlp', 'self_attn', 'no_skip']).default('mlp').meta({ flag: 'dsnot-skip', description: 'DSnoT: module group left as the method chose it (default mlp: only attention is refined)' }),
  powVar: z.number().min(0).default(1).meta({ flag: 'dsnot-pow-var', description: 'DSnoT: power of the variance dividing the regrowing metric (default 1)' }),
});
export type DsnotOptions = z.infer<typeof dsnotOptions>;

/** Ascending order of `key` (stable), NaN last as torch.sort puts it. */
function stableOrder(idx: number[], key: (j: number) => number): number[] {
  return idx.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    const nx = Number.isNaN(x);
    const ny = Number.isNaN(y);
    if (nx || ny) return nx === ny ? a - b : nx ? 1 : -1;
    return x - y || a - b;
  });
}

/** Inputs of the DSnoT cycle for one matrix, all float32 row-major [rows, cols]. */
export interface DsnotInput {
  rows: number;
  cols: number;
  weight: Float32Array;
  mask: Uint8Array; // 1 = removed (the initial mask)
  scaler: Float32Array; // Wanda's scaler_row
  sum: Float32Array; // sum_metric_row
  variance: Float32Array;
}

/** Per-row state of the cycle. */
interface RowState {
  d: Float32Array; // DSnoT metric W_ij * mu_j of this row
  grow: number[]; // regrowing order (all columns)
  prune: number[]; // pruning order (kept columns, reordered)
  e: number; // reconstruction error
  gLo: number;
  gHi: number;
  pLo: number;
  pHi: number;
  active: boolean;
}

function rowState(x: DsnotInput, o: DsnotOptions, r: number, mask: Uint8Array): RowState {
  const f = Math.fround;
  const { cols } = x;
  const d = new Float32Array(cols);
  const wanda = new Float32Array(cols);
  const kept: number[] = [];
  let e = 0;
  for (let j = 0; j < cols; j++) {
    const w = x.weight[r * cols + j] as number;
    d[j] = f(w * (x.sum[j] as number));
    wanda[j] = f(Math.abs(w) * f(Math.sqrt(x.scaler[j] as number)));
    if (mask[r * cols + j]) e += d[j] as number;
    else kept.push(j);
  }
  const growKey = new Float32Array(cols);
  for (let j = 0; j < cols; j++) growKey[j] = mask[r * cols + j] ? f((d[j] as number) / f((x.variance[j] as number) ** o.powVar)) : 0;
  const grow = stableOrder(Array.from({ length: cols }, (_, j) => j), (j) => growKey[j] as number);
  // kept columns in ascending Wanda order; then D < 0 first (same order), D == 0 slots pointing at position 0,
  // D > 0 last in reverse order (the reference's return_reorder_indice)
  const byWanda = stableOrder(kept, (j) => wanda[j] as number);
  const neg = byWanda.filter((j) => (d[j] as number) < 0);
  const pos = byWanda.filter((j) => (d[j] as number) > 0).reverse();
  const zeros = byWanda.length - neg.length - pos.length;
  const prune = [...neg, ...new Array<number>(zeros).fill(byWanda[0] as number), ...pos];
  return { d, grow, prune, e: f(e), gLo: 0, gHi: cols - 1, pLo: 0, pHi: prune.length - 1, active: true };
}

/**
 * The refined mask (1 = removed). A row whose pruning list runs out before the cycles end stops changing (the
 * reference would index past its list); at the default 50 cycles that needs a row with fewer than 50 kept weights.
 */
export function dsnotCycle(x: DsnotInput, o: DsnotOptions): Uint8Array {
  const f = Math.fround;
  const mask = x.mask.slice();
  const states = Array.from({ length: x.rows }, (_, r) => rowState(x, o, r, x.mask));
  let anyActive = x.rows > 0;
  for (let cycle = 0; anyActive && cycle < o.cycles; cycle++) {
    anyActive = false;
    states.forEach((s, r) => {
      const gi = s.e > 0 ? s.gHi : s.gLo;
      const pi = s.e < 0 ? s.pHi : s.pLo;
      if (pi < 0 || pi >= s.prune.length || gi < 0 || gi >= s.grow.length) {
        s.active = false;
        return;
      }
      const g = s.grow[gi] as number;
      const p = s.prune[pi] as number;
      if (s.e > 0) s.gHi--;
      else s.gLo++;
      if (s.e < 0) s.pHi--;
      else s.pLo++;
      s.active = s.active && Math.abs(s.e) > o.threshold;
      const base = r * x.cols;
      mask[base + p] = s.active ? 1 : 0;
      mask[base + g] = s.active ? 0 : 1;
      if (s.active) s.e = f(f(s.e + (s.d[p] as number)) - (s.d[g] as number));
      anyActive ||= s.active;
    });
  }
  return mask;
}

export const dsnot: MaskRefiner<DsnotOptions> = {
  name: 'dsnot',
  version: 1, // bump when a change alters its masks or weights
  summary: 'training-free prune-and-grow refinement of the mask (Zhang et al. 2024), unstructured',
  stats: ['scaler', 'sum', 'variance'],
  options: dsnotOptions,
  applies(where: LinearRef, options: DsnotOptions): boolean {
    const group = where.linear === 'gate_proj' || where.linear === 'up_proj' || where.linear === 'down_proj' ? 'mlp' : 'self_attn';
    return group !== options.skipLayer;
  },
  async refine(weight: tf.Tensor2D, mask: tf.Tensor2D, stats: ActivationStats, target: PruneOptions, options: DsnotOptions): Promise<tf.Tensor2D> {
    const out = await dsnotOnHost(weight.shape, Float32Array.from(await weight.data()), () => mask.data(), stats, target, options);
    return tf.tensor2d(Float32Array.from(out), weight.shape);
  },
  /** The cycle over the whole matrix on the host (the rows' cycles share their count): the chunks read back and joined. */
  async refineRows(weights, masks, stats, target, options): Promise<tf.Tensor2D[]> {
    const shape: [number, number] = [weights.reduce((a, w) => a + w.shape[0], 0), weights[0]!.shape[1]];
    const out = await dsnotOnHost(shape, await hostRows(weights), () => hostRows(masks), stats, target, options);
    return splitRows(Float32Array.from(out), weights);
  },
};

/** The refined mask of a [rows, cols] weight given as host values (the mask read by `maskValues`). */
async function dsnotOnHost(
  [rows, cols]: [number, number],
  weight: Float32Array,
  maskValues: () => Promise<ArrayLike<number>>,
  stats: ActivationStats,
  target: PruneOptions,
  options: DsnotOptions,
): Promise<Uint8Array> {
  if (target.structure.kind !== 'unstructured') throw new ConfigError('dsnot: only unstructured sparsity is supported (as ported from the reference)');
  const o = parseOptions('dsnot', dsnotOptions, options) as DsnotOptions;
  if (stats.inFeatures !== cols) throw new ConfigError(`dsnot: weight [${rows}, ${cols}] does not match statistics of ${stats.inFeatures} inputs`);
  if (stats.samples === 0) throw new ConfigError('dsnot: the statistics have seen no calibration sample');
  // the cycle runs on the host: its inputs are read back once per linear
  return dsnotCycle(
    {
      rows,
      cols,
      weight,
      mask: Uint8Array.from(await maskValues()),
      scaler: (await stats.scalerRow.data()) as Float32Array,
      sum: (await stats.sumRow.data()) as Float32Array,
      variance: (await stats.variance.data()) as Float32Array,
    },
    o,
  );
}
