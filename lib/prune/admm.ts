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
import { optionFlagName, type LinearRef, type MaskRefiner, type PruneMethod, type PruneOptions, type PruneResult, type Reconstruction } from './method.js';
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

/** The normalized system of one linear (the caller disposes it). */
interface AdmmSystem {
  norm: tf.Tensor2D; // [1, in]: sqrt(diag XX) + 1e-8
  w: tf.Tensor2D; // [in, out]: (weight * norm)^T
  xy: tf.Tensor2D; // [in, out]: XXd W, XXd the damped normalized XX
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

/** fasterprune's preparation, from the Gram matrix `gram` ([in, in]) and `weight` ([out, in]); neither consumed. */
async function admmSystem(weight: tf.Tensor2D, gram: tf.Tensor2D, o: { damp: number; rho: number }): Promise<AdmmSystem> {
  const inF = gram.shape[0];
  const pre = tf.tidy(() => {
    const eye = tf.eye(inF) as tf.Tensor2D;
    const norm = tf.add(tf.sqrt(diagOf(gram, eye)), tf.scalar(1e-8)); // [in]
    // XX / norm divides the columns, (XX^T / norm)^T then the rows
    const xx = tf.div(tf.div(gram, tf.reshape(norm, [1, inF])), tf.reshape(norm, [inF, 1])) as tf.Tensor2D;
    const rho0 = tf.mul(tf.scalar(o.damp), tf.mean(diagOf(xx, eye)));
    const xxd = tf.add(xx, tf.mul(eye, rho0)) as tf.Tensor2D;
    const w = tf.transpose(tf.mul(tf.cast(weight, 'float32'), tf.reshape(norm, [1, inF]))) as tf.Tensor2D; // [in, out]
    return {
      norm: tf.reshape(norm, [1, inF]) as tf.Tensor2D,
      w,
      xy: tf.matMul(xxd, w) as tf.Tensor2D,
      a: tf.add(xxd, tf.mul(eye, tf.scalar(o.rho))) as tf.Tensor2D,
    };
  });
  try {
    return { norm: pre.norm, w: pre.w, xy: pre.xy, xxInv: await inverseSpd(pre.a) };
  } catch (e) {
    tf.dispose([pre.norm, pre.w, pre.xy]);
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

/** N:M, [in, out]: 1 on the M - N largest |v| of every group of M consecutive inputs of an output. */
function groupLargest(v: tf.Tensor2D, n: number, m: number): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(tf.sub(tf.scalar(1), nmMask(tf.transpose(tf.abs(v)) as tf.Tensor2D, n, m))) as tf.Tensor2D);
}

/**
 * N:M round with target `cur`: the group's M - N largest kept (set to +inf), then every |v| below the (k + 1)-th
 * smallest of the matrix removed, k = floor(numel * cur) (the reference's kthvalue and `>=`).
 */
function gradualKeep(v: tf.Tensor2D, n: number, m: number, cur: number): tf.Tensor2D {
  return tf.tidy(() => {
    const top = groupLargest(v, n, m);
    const z2 = tf.where(tf.cast(top, 'bool'), tf.fill(v.shape, Infinity), tf.abs(v)); // [in, out]
    const k = Math.floor(v.size * cur);
    const kth = tf.max(tf.neg(tf.topk(tf.neg(tf.reshape(z2, [-1])), k + 1, false).values)); // (k+1)-th smallest
    // removed: z2 - kth < 0 (inf - inf is NaN: not removed, as inf >= inf keeps it in the reference)
    return tf.sub(tf.scalar(1), tf.cast(tf.less(tf.sub(z2, kth), tf.scalar(0)), 'float32')) as tf.Tensor2D;
  });
}

/** How the kept set is chosen: at round `round` from W + U (null after the last round keeps the last one). */
export type KeepRule = (v: tf.Tensor2D, round: number) => tf.Tensor2D | null;

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

/**
 * The ADMM iterations on a prepared system. `keepRule` gives the kept set (round 0 is asked before the first
 * iteration when rounds = 0, i.e. from W itself). Returns the final Z ([in, out]) and kept set, the caller's.
 */
function admmIterations(sys: AdmmSystem, keepRule: KeepRule, o: { iters: number; rho: number }): { z: tf.Tensor2D; keep: tf.Tensor2D } {
  let w = tf.clone(sys.w);
  let u = tf.zerosLike(w);
  let keep: tf.Tensor2D | null = null;
  const rho = tf.scalar(o.rho);
  try {
    for (let t = 0; t < Math.max(o.iters, 1); t++) {
      const wu = tf.add(w, u) as tf.Tensor2D;
      const next = keepRule(wu, t);
      wu.dispose();
      if (next) {
        keep?.dispose();
        keep = next;
      }
      if (t >= o.iters) break; // iters = 0: the mask alone
      const [w2, u2] = tf.tidy(() => {
        const z = tf.mul(tf.add(w, u), keep!);
        const uNext = tf.add(u, tf.sub(w, z));
        return [tf.matMul(sys.xxInv, tf.add(sys.xy, tf.mul(rho, tf.sub(z, uNext)))), uNext] as tf.Tensor2D[];
      });
      w.dispose();
      u.dispose();
      [w, u] = [w2!, u2!];
    }
    return { z: tf.tidy(() => tf.mul(tf.add(w, u), keep!) as tf.Tensor2D), keep: keep! };
  } catch (e) {
    keep?.dispose();
    throw e;
  } finally {
    tf.dispose([w, u, rho]);
  }
}

/**
 * The output error of `weight` pruned to `before` and to `after` ([out, in] each) on the calibration inputs, as a
 * fraction of the dense output's: ||(W - W') X||^2 / ||W X||^2 = tr(D XX D^T) / tr(W XX W^T). One host read.
 */
export async function reconstructionError(weight: tf.Tensor2D, gram: tf.Tensor2D, before: tf.Tensor2D, after: tf.Tensor2D): Promise<Reconstruction> {
  const energy = (d: tf.Tensor2D): tf.Scalar => tf.sum(tf.mul(tf.matMul(d, gram), d));
  const e = tf.tidy(() => {
    const w = tf.cast(weight, 'float32') as tf.Tensor2D;
    return tf.stack([energy(w), energy(tf.sub(w, before)), energy(tf.sub(w, after))]);
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
  const sys = await admmSystem(weight, gram, o);
  let out: { z: tf.Tensor2D; keep: tf.Tensor2D } | null = null;
  try {
    out = admmIterations(sys, keepRule, o);
    const { z, keep } = out;
    const result = tf.tidy(() => ({
      weight: tf.div(tf.transpose(z), sys.norm) as tf.Tensor2D,
      mask: tf.sub(tf.scalar(1), tf.transpose(keep)) as tf.Tensor2D,
    }));
    try {
      const masked = tf.tidy(() => tf.mul(weight, tf.sub(tf.scalar(1), result.mask)) as tf.Tensor2D);
      try {
        return { ...result, reconstruction: await reconstructionError(weight, gram, masked, result.weight) };
      } finally {
        masked.dispose();
      }
    } catch (e) {
      tf.dispose([result.weight, result.mask]);
      throw e;
    }
  } finally {
    tf.dispose([sys.norm, sys.w, sys.xy, sys.xxInv]);
    if (out) tf.dispose([out.z, out.keep]);
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
};
