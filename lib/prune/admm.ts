/**
 * The ADMM weight update (Boža 2024, "Fast and Effective Weight Update for Pruned Large Language Models", arXiv
 * 2401.02938). Reference: fmfi-compbio/admm-pruning lib/admm.py `AdmmPruner` (add_batch, fasterprune) and
 * lib/prune.py `prune_admm` (percdamp 0.1, fasterprune's defaults iterative_prune 15, iters 20, rho 1).
 *
 * Per linear, from XX = sum of x x^T over every calibration token (statistic 'gram'), in the reference's layout
 * W = (weight * norm)^T ([in, out]):
 *   norm = sqrt(diag XX) + 1e-8; XX <- XX / norm / norm^T; XX += damp * mean(diag XX) * I; XY = XX W;
 *   XXinv = (XX + rho I)^-1; U = 0; then `iters` times:
 *     (the first `rounds` iterations) choose the kept set from |W + U|;
 *     Z = (W + U) * keep; U = U + (W - Z); W = XXinv (XY + rho (Z - U));
 *   finally Z = (W + U) * keep and the weight is Z^T / norm.
 * The kept set: unstructured, the floor(numel * sparsity) smallest |W + U| of the whole matrix are removed in every
 * round (the reference's cubic schedule is unused on that branch). N:M, a gradual schedule: at round t the M - N
 * largest of every group of M inputs are kept, and of the rest those below the (k + 1)-th smallest value of the
 * matrix go, k = floor(numel * cur), cur = s - s (1 - (t + 1) / rounds)^3 with s = N/M. The reference hard-codes
 * 2:4 there (s = 0.5, the 2 largest of 4); other N:M with the same rule generalized is this package's extension.
 * With rounds = 0 the kept set is chosen once before the iterations from |W| (the normalized weight: the Wanda
 * metric over the whole matrix). The refiner `admmUpdate` runs the same iterations with another method's mask kept.
 * The inverse is a Cholesky factorization in float64 on the host (as SparseGPT's here; the reference inverts in
 * float32), its product and the iterations are tfjs float32 ops. Ties among equal |W + U| go lower index first.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { ConfigError, type OptionName } from '../errors.js';
import { parseOptions } from './plan.js';
import { checkNmShape, nmMask, smallestPerRowMask, validateOptions } from './mask.js';
import { optionFlagName, type LinearRef, type MaskRefiner, type PruneMethod, type PruneOptions, type PruneResult, type Reconstruction, type RowsPruneResult } from './method.js';
import { eachRow, sortedValueOfRows } from './rows.js';
import { choleskyLowerInPlace, invertLower } from './sparsegpt.js';
import type { ActivationStats } from './stats.js';
import { checkStats } from './wanda.js';

/** The reference's values: fasterprune's iters, iterative_prune and rho, and prune_admm's percdamp. */
export const ADMM_DEFAULTS = { iters: 20, rounds: 15, damp: 0.1, rho: 1 } as const;

const iters = z.number().int().min(0).default(ADMM_DEFAULTS.iters).meta({ flag: 'admm-iters', description: 'ADMM: iterations of the weight update (default 20)' });
const damp = z.number().min(0).default(ADMM_DEFAULTS.damp).meta({ flag: 'admm-damp', description: 'ADMM: dampening, a fraction of mean(diag XX) of the normalized XX (default 0.1)' });
const rho = z.number().positive().default(ADMM_DEFAULTS.rho).meta({ flag: 'admm-rho', description: 'ADMM: penalty rho (default 1)' });
const admmOptions = z.strictObject({
  iters,
  rounds: z.number().int().min(0).default(ADMM_DEFAULTS.rounds).meta({ flag: 'admm-rounds', description: 'ADMM: first iterations that re-choose the mask, gradually for N:M (default 15; 0: the mask from |W| * norm)' }),
  damp,
  rho,
});
export type AdmmOptions = z.infer<typeof admmOptions>;
/** The update after another method's mask: the same options but the mask rounds (the mask is given). */
const admmUpdateOptions = z.strictObject({ iters, damp, rho });
export type AdmmUpdateOptions = z.infer<typeof admmUpdateOptions>;

/** The normalized system of one linear, W in column chunks as its weight's row chunks (the caller disposes it). */
interface AdmmSystem {
  norm: tf.Tensor2D; // [1, in]: sqrt(diag XX) + 1e-8
  ws: tf.Tensor2D[]; // [in, out_i]: (weight_i * norm)^T
  xys: tf.Tensor2D[]; // [in, out_i]: XXd W_i, XXd the damped normalized XX
  xxInv: tf.Tensor2D; // [in, in]: (XXd + rho I)^-1
}

/** diag(a) of a square matrix as [n] (a sum of the diagonal times the identity: exact). */
function diagOf(a: tf.Tensor2D, eye: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(a, eye), 1);
}

/**
 * The inverse of the symmetric positive definite `a` ([n, n], read back once): Cholesky A = L L^T and L^-1 in
 * float64 on the host, then A^-1 = L^-T L^-1 as a float32 product.
 */
async function inverseSpd(a: tf.Tensor2D): Promise<tf.Tensor2D> {
  const n = a.shape[0];
  const l = Float64Array.from(await a.data());
  choleskyLowerInPlace(l, n, 'ADMM: the damped normalized XX');
  const linv = tf.tensor2d(Float32Array.from(invertLower(l, n)), [n, n]);
  try {
    return tf.tidy(() => tf.matMul(tf.transpose(linv), linv) as tf.Tensor2D);
  } finally {
    linv.dispose();
  }
}

/**
 * fasterprune's preparation, from the Gram matrix `gram` ([in, in]) and the weight's row chunks `rows` ([out_i, in];
 * one: the whole weight); neither consumed. Each output column of W is updated by itself: W_i = XXinv (...)_i.
 */
async function admmSystem(rows: readonly tf.Tensor2D[], gram: tf.Tensor2D, o: { damp: number; rho: number }): Promise<AdmmSystem> {
  const inF = gram.shape[0];
  const pre = tf.tidy(() => {
    const eye = tf.eye(inF) as tf.Tensor2D;
    const norm = tf.add(tf.sqrt(diagOf(gram, eye)), tf.scalar(1e-8)); // [in]
    // XX / norm divides the columns, (XX^T / norm)^T then the rows
    const xx = tf.div(tf.div(gram, tf.reshape(norm, [1, inF])), tf.reshape(norm, [inF, 1])) as tf.Tensor2D;
    const rho0 = tf.mul(tf.scalar(o.damp), tf.mean(diagOf(xx, eye)));
    const xxd = tf.add(xx, tf.mul(eye, rho0)) as tf.Tensor2D;
    const ws = rows.map((weight) => tf.transpose(tf.mul(tf.cast(weight, 'float32'), tf.reshape(norm, [1, inF]))) as tf.Tensor2D); // [in, out_i]
    return {
      norm: tf.reshape(norm, [1, inF]) as tf.Tensor2D,
      ws,
      xys: ws.map((w) => tf.matMul(xxd, w) as tf.Tensor2D),
      a: tf.add(xxd, tf.mul(eye, tf.scalar(o.rho))) as tf.Tensor2D,
    };
  });
  try {
    return { norm: pre.norm, ws: pre.ws, xys: pre.xys, xxInv: await inverseSpd(pre.a) };
  } catch (e) {
    tf.dispose([pre.norm, ...pre.ws, ...pre.xys]);
    throw e;
  } finally {
    pre.a.dispose();
  }
}

/** Kept set (1 = kept, [in, out]) with the `k` smallest |v| of the whole matrix removed (ties: lower index first). */
function keepAllBut(v: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const removed = smallestPerRowMask(tf.reshape(tf.abs(v), [1, v.size]) as tf.Tensor2D, k);
    return tf.reshape(tf.sub(tf.scalar(1), removed), v.shape) as tf.Tensor2D;
  });
}

/**
 * `keepAllBut` of a matrix held in column chunks `vs` ([in, out_i], in order): |v| read back and put in the whole
 * matrix's order ([in, out] row-major, which ties follow), the kept set chosen on the host and cut back into chunks.
 */
async function keepAllButRows(vs: readonly tf.Tensor2D[], k: number): Promise<tf.Tensor2D[]> {
  const inF = vs[0]!.shape[0];
  const out = vs.reduce((a, v) => a + v.shape[1], 0);
  const whole = new Float32Array(inF * out);
  let col = 0;
  for (const v of vs) {
    const w = v.shape[1];
    const a = tf.abs(v);
    try {
      const values = (await a.data()) as Float32Array;
      for (let i = 0; i < inF; i++) whole.set(values.subarray(i * w, (i + 1) * w), i * out + col);
    } finally {
      a.dispose();
    }
    col += w;
  }
  const removed = smallestFlat(whole, k);
  col = 0;
  return vs.map((v) => {
    const w = v.shape[1];
    const keep = new Float32Array(inF * w);
    for (let i = 0; i < inF; i++) for (let j = 0; j < w; j++) keep[i * w + j] = 1 - (removed[i * out + col + j] as number);
    col += w;
    return tf.tensor2d(keep, [inF, w]);
  });
}

/** 1 on the `k` smallest of `values` (ties: lower index first), as `smallestPerRowMask` of one row. */
function smallestFlat(values: Float32Array, k: number): Uint8Array {
  const mask = new Uint8Array(values.length);
  if (k === 0) return mask;
  const kth = Float32Array.from(values).sort()[k - 1] as number;
  let need = k;
  for (const v of values) if (v < kth) need--;
  values.forEach((v, i) => {
    if (v < kth) mask[i] = 1;
    else if (v === kth && need > 0) {
      mask[i] = 1;
      need--;
    }
  });
  return mask;
}

/** N:M, [in, out]: 1 on the M - N largest |v| of every group of M consecutive inputs of an output. */
function groupLargest(v: tf.Tensor2D, n: number, m: number): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(tf.sub(tf.scalar(1), nmMask(tf.transpose(tf.abs(v)) as tf.Tensor2D, n, m))) as tf.Tensor2D);
}

/** |v| with the group's M - N largest set to +inf ([in, out]). */
function gradualValues(v: tf.Tensor2D, n: number, m: number): tf.Tensor2D {
  return tf.tidy(() => tf.where(tf.cast(groupLargest(v, n, m), 'bool'), tf.fill(v.shape, Infinity), tf.abs(v)) as tf.Tensor2D);
}

/** The kept set from `gradualValues` z2 and the (k + 1)-th smallest of the matrix (the reference's kthvalue and `>=`). */
function gradualKept(z2: tf.Tensor2D, kth: tf.Scalar): tf.Tensor2D {
  // removed: z2 - kth < 0 (inf - inf is NaN: not removed, as inf >= inf keeps it in the reference)
  return tf.tidy(() => tf.sub(tf.scalar(1), tf.cast(tf.less(tf.sub(z2, kth), tf.scalar(0)), 'float32')) as tf.Tensor2D);
}

/**
 * N:M round with target `cur`: the group's M - N largest kept (set to +inf), then every |v| below the (k + 1)-th
 * smallest of the matrix removed, k = floor(numel * cur).
 */
function gradualKeep(v: tf.Tensor2D, n: number, m: number, cur: number): tf.Tensor2D {
  return tf.tidy(() => {
    const z2 = gradualValues(v, n, m); // [in, out]
    const k = Math.floor(v.size * cur);
    const kth = tf.max(tf.neg(tf.topk(tf.neg(tf.reshape(z2, [-1])), k + 1, false).values)) as tf.Scalar; // (k+1)-th smallest
    return gradualKept(z2, kth);
  });
}

/** `gradualKeep` of a matrix held in column chunks: the (k + 1)-th smallest from every chunk's values. */
async function gradualKeepRows(vs: readonly tf.Tensor2D[], n: number, m: number, cur: number): Promise<tf.Tensor2D[]> {
  const z2s = await eachRow(vs, (v) => gradualValues(v, n, m));
  let kth: tf.Scalar | null = null;
  try {
    kth = await sortedValueOfRows(z2s, (z) => tf.clone(z), Math.floor(vs.reduce((a, v) => a + v.size, 0) * cur));
    const t = kth;
    return await eachRow(z2s, (z) => gradualKept(z, t));
  } finally {
    tf.dispose(z2s);
    kth?.dispose();
  }
}

/** How the kept set is chosen: at round `round` from W + U (null after the last round keeps the last one). */
export type KeepRule = (v: tf.Tensor2D, round: number) => tf.Tensor2D | null;
/** A KeepRule over W + U held in column chunks ([in, out_i], in order): the kept set of each chunk. */
type RowsKeepRule = (vs: readonly tf.Tensor2D[], round: number) => Promise<tf.Tensor2D[] | null>;

/** The method's rule: per round as the reference's iterative_prune branch, or once from |W| when rounds = 0. */
function methodKeepRule(target: PruneOptions, rounds: number): KeepRule {
  const { structure } = target;
  if (structure.kind === 'unstructured') {
    return (v, t) => (t < Math.max(rounds, 1) ? keepAllBut(v, Math.floor(v.size * target.sparsity)) : null);
  }
  const { n, m } = structure;
  if (rounds === 0) return (v, t) => (t === 0 ? groupLargest(v, n, m) : null);
  const s = n / m;
  return (v, t) => (t < rounds ? gradualKeep(v, n, m, s - s * (1 - (t + 1) / rounds) ** 3) : null);
}

/** `methodKeepRule` over column chunks: the whole matrix's choices where it has them (host reads), per chunk otherwise. */
function methodKeepRuleRows(target: PruneOptions, rounds: number): RowsKeepRule {
  const { structure } = target;
  const numel = (vs: readonly tf.Tensor2D[]): number => vs.reduce((a, v) => a + v.size, 0);
  if (structure.kind === 'unstructured') {
    return async (vs, t) => (t < Math.max(rounds, 1) ? keepAllButRows(vs, Math.floor(numel(vs) * target.sparsity)) : null);
  }
  const { n, m } = structure;
  if (rounds === 0) return async (vs, t) => (t === 0 ? eachRow(vs, (v) => groupLargest(v, n, m)) : null);
  const s = n / m;
  return async (vs, t) => (t < rounds ? gradualKeepRows(vs, n, m, s - s * (1 - (t + 1) / rounds) ** 3) : null);
}

/** A rule for one matrix as a rule for its one chunk. */
function oneChunk(rule: KeepRule): RowsKeepRule {
  return async (vs, t) => {
    const keep = rule(vs[0]!, t);
    return keep ? [keep] : null;
  };
}

/**
 * The ADMM iterations on a prepared system. `keepRule` gives the kept set (round 0 is asked before the first
 * iteration when rounds = 0, i.e. from W itself). Returns the final Z ([in, out_i] per chunk) and kept sets, the caller's.
 */
async function admmIterations(sys: AdmmSystem, keepRule: RowsKeepRule, o: { iters: number; rho: number }): Promise<{ zs: tf.Tensor2D[]; keeps: tf.Tensor2D[] }> {
  let ws = sys.ws.map((w) => tf.clone(w));
  let us = ws.map((w) => tf.zerosLike(w));
  let keeps: tf.Tensor2D[] | null = null;
  const rho = tf.scalar(o.rho);
  try {
    for (let t = 0; t < Math.max(o.iters, 1); t++) {
      const wus = ws.map((w, c) => tf.add(w, us[c]!) as tf.Tensor2D);
      let next: tf.Tensor2D[] | null;
      try {
        next = await keepRule(wus, t);
      } finally {
        tf.dispose(wus);
      }
      if (next) {
        if (keeps) tf.dispose(keeps);
        keeps = next;
      }
      if (t >= o.iters) break; // iters = 0: the mask alone
      const kept = keeps!;
      const stepped = tf.tidy(() =>
        ws.map((w, c) => {
          const u = us[c]!;
          const z = tf.mul(tf.add(w, u), kept[c]!);
          const uNext = tf.add(u, tf.sub(w, z));
          return [tf.matMul(sys.xxInv, tf.add(sys.xys[c]!, tf.mul(rho, tf.sub(z, uNext)))), uNext] as tf.Tensor2D[];
        }),
      );
      tf.dispose([...ws, ...us]);
      [ws, us] = [stepped.map((p) => p[0]!), stepped.map((p) => p[1]!)];
    }
    const kept = keeps!;
    return { zs: tf.tidy(() => ws.map((w, c) => tf.mul(tf.add(w, us[c]!), kept[c]!) as tf.Tensor2D)), keeps: kept };
  } catch (e) {
    if (keeps) tf.dispose(keeps);
    throw e;
  } finally {
    tf.dispose([...ws, ...us, rho]);
  }
}

/**
 * The output error of `weight` pruned to `before` and to `after` ([out, in] each) on the calibration inputs, as a
 * fraction of the dense output's: ||(W - W') X||^2 / ||W X||^2 = tr(D XX D^T) / tr(W XX W^T). One host read.
 */
export async function reconstructionError(weight: tf.Tensor2D, gram: tf.Tensor2D, before: tf.Tensor2D, after: tf.Tensor2D): Promise<Reconstruction> {
  return reconstructionErrorRows([weight], gram, [before], [after]);
}

/** `reconstructionError` of a weight held in row chunks: each energy summed over the chunks (float32). */
async function reconstructionErrorRows(rows: readonly tf.Tensor2D[], gram: tf.Tensor2D, before: readonly tf.Tensor2D[], after: readonly tf.Tensor2D[]): Promise<Reconstruction> {
  const energy = (d: tf.Tensor2D): tf.Scalar => tf.sum(tf.mul(tf.matMul(d, gram), d));
  const e = tf.tidy(() => {
    const per = rows.map((weight, c) => {
      const w = tf.cast(weight, 'float32') as tf.Tensor2D;
      return tf.stack([energy(w), energy(tf.sub(w, before[c]!)), energy(tf.sub(w, after[c]!))]);
    });
    return per.length === 1 ? per[0]! : tf.addN(per);
  });
  try {
    const [dense, b, a] = (await e.data()) as Float32Array;
    return { before: (b as number) / (dense as number), after: (a as number) / (dense as number) };
  } finally {
    e.dispose();
  }
}

/**
 * The whole update of one linear: `weight` ([out, in]) and the Gram matrix `gram` ([in, in]) of its inputs (neither
 * consumed); the kept set from `keepRule`. Returns the new weight, its mask (1 = removed) and the reconstruction
 * errors before (the mask on the original weight) and after the update.
 */
export async function admmPrune(
  weight: tf.Tensor2D,
  gram: tf.Tensor2D,
  keepRule: KeepRule,
  o: { iters: number; damp: number; rho: number },
): Promise<PruneResult> {
  const r = await admmPruneRows([weight], gram, oneChunk(keepRule), o);
  return { weight: r.weights[0]!, mask: r.masks[0]!, ...(r.reconstruction ? { reconstruction: r.reconstruction } : {}) };
}

/** `admmPrune` of a weight held in row chunks ([out_i, in], in order): W's column chunks iterate side by side. */
async function admmPruneRows(
  rows: readonly tf.Tensor2D[],
  gram: tf.Tensor2D,
  keepRule: RowsKeepRule,
  o: { iters: number; damp: number; rho: number },
): Promise<RowsPruneResult> {
  const sys = await admmSystem(rows, gram, o);
  let out: { zs: tf.Tensor2D[]; keeps: tf.Tensor2D[] } | null = null;
  try {
    out = await admmIterations(sys, keepRule, o);
    const { zs, keeps } = out;
    const result = tf.tidy(() => ({
      weights: zs.map((z) => tf.div(tf.transpose(z), sys.norm) as tf.Tensor2D),
      masks: keeps.map((k) => tf.sub(tf.scalar(1), tf.transpose(k)) as tf.Tensor2D),
    }));
    try {
      const masked = tf.tidy(() => rows.map((w, c) => tf.mul(w, tf.sub(tf.scalar(1), result.masks[c]!)) as tf.Tensor2D));
      try {
        return { ...result, reconstruction: await reconstructionErrorRows(rows, gram, masked, result.weights) };
      } finally {
        tf.dispose(masked);
      }
    } catch (e) {
      tf.dispose([...result.weights, ...result.masks]);
      throw e;
    }
  } finally {
    tf.dispose([sys.norm, ...sys.ws, ...sys.xys, sys.xxInv]);
    if (out) tf.dispose([...out.zs, ...out.keeps]);
  }
}

function checkAdmm(target: PruneOptions, o: AdmmOptions, name: OptionName): void {
  if (o.rounds > o.iters) {
    throw new ConfigError(`admm: ${name('rounds')} ${o.rounds} is more than ${name('iters')} ${o.iters} (the mask rounds are the first iterations)`);
  }
  void target;
}

/** `--method admm`: the mask chosen inside the ADMM iterations (gradually for N:M), the kept weights updated. */
export const admm: PruneMethod<AdmmOptions> = {
  name: 'admm',
  summary: 'ADMM weight update with the mask chosen in its iterations (Boža 2024)',
  stats: ['gram'],
  version: 1, // bump when a change alters its masks or weights
  options: admmOptions,
  updatesWeights: true,
  check(target: PruneOptions, options: AdmmOptions, name: OptionName = optionFlagName(admmOptions)): void {
    checkAdmm(target, options, name);
  },
  async prune(weight: tf.Tensor2D, stats: ActivationStats | null, target: PruneOptions, options?: AdmmOptions, _where?: LinearRef): Promise<PruneResult> {
    validateOptions(target);
    const o = parseOptions('admm', admmOptions, options) as AdmmOptions;
    checkAdmm(target, o, optionFlagName(admmOptions));
    const s = checkStats('admm', weight, stats);
    if (target.structure.kind === 'nm') checkNmShape(weight.shape, target.structure.n, target.structure.m);
    return await admmPrune(weight, s.gram, methodKeepRule(target, o.rounds), o);
  },
  /** W's column chunks iterate side by side; the whole matrix's kept set each round (methodKeepRuleRows). */
  async pruneRows(rows, stats, target, options): Promise<RowsPruneResult> {
    validateOptions(target);
    const o = parseOptions('admm', admmOptions, options) as AdmmOptions;
    checkAdmm(target, o, optionFlagName(admmOptions));
    const s = checkStats('admm', rows[0]!, stats);
    if (target.structure.kind === 'nm') checkNmShape([rows.reduce((a, w) => a + w.shape[0], 0), s.inFeatures], target.structure.n, target.structure.m);
    return await admmPruneRows(rows, s.gram, methodKeepRuleRows(target, o.rounds), o);
  },
};

/**
 * `--refine admm`: the ADMM update after another method's mask (Wanda, RIA, magnitude; OWL's per-block sparsities,
 * N:M too): the mask is kept, the remaining weights are updated by the same iterations (iterative_prune = 0).
 */
export const admmUpdate: MaskRefiner<AdmmUpdateOptions> = {
  name: 'admm',
  summary: "ADMM weight update of the kept weights, the method's mask kept (Boža 2024); N:M too",
  stats: ['gram'],
  version: 1, // bump when a change alters its masks or weights
  options: admmUpdateOptions,
  structures: 'any',
  applies: () => true,
  refine(_weight: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
    return tf.clone(mask); // the mask is not re-chosen; `update` changes the weights
  },
  async update(weight: tf.Tensor2D, mask: tf.Tensor2D, stats: ActivationStats, _target: PruneOptions, options: AdmmUpdateOptions): Promise<PruneResult> {
    const o = parseOptions('admm', admmUpdateOptions, options) as AdmmUpdateOptions;
    const s = checkStats('admm', weight, stats);
    if (mask.shape[0] !== weight.shape[0] || mask.shape[1] !== weight.shape[1]) {
      throw new ConfigError(`admm: mask [${mask.shape.join(', ')}] does not match weight [${weight.shape.join(', ')}]`);
    }
    const given = tf.tidy(() => tf.transpose(tf.sub(tf.scalar(1), mask)) as tf.Tensor2D); // [in, out], 1 = kept
    try {
      return await admmPrune(weight, s.gram, (_v, t) => (t === 0 ? tf.clone(given) : null), o);
    } finally {
      given.dispose();
    }
  },
  /** The given mask per chunk: each output column of W is updated by itself. */
  async updateRows(weights, masks, stats, _target, options): Promise<RowsPruneResult> {
    const o = parseOptions('admm', admmUpdateOptions, options) as AdmmUpdateOptions;
    const s = checkStats('admm', weights[0]!, stats);
    const given = tf.tidy(() => masks.map((m) => tf.transpose(tf.sub(tf.scalar(1), m)) as tf.Tensor2D)); // [in, out_i], 1 = kept
    try {
      return await admmPruneRows(weights, s.gram, async (_vs, t) => (t === 0 ? given.map((g) => tf.clone(g)) : null), o);
    } finally {
      tf.dispose(given);
    }
  },
};
