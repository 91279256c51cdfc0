/**
 * Calibration statistics of one linear layer's inputs, shared by every method, allocator and refiner: each asks for
 * the quantities it reads (`StatName`) and the pipeline keeps one accumulator per input with the union of the
 * requests. All float32, folded in one calibration sample (one sequence) at a time, as the references do:
 *   scaler   Wanda's `scaler_row`: running mean over samples of sum_t x_tj^2 (docs/methods.md section 3)
 *   sum      DSnoT's `sum_metric_row`: running mean over samples of sum_t x_tj (a sum over tokens, not a mean)
 *   variance DSnoT's `var`: token-weighted running average of each sample's population variance over its tokens
 *   hessian  SparseGPT's H = (2/n) sum x x^T over all rows
 *   gram     the ADMM update's XX = sum x x^T over all rows (a plain sum, no scaling: lib/prune/admm.ts)
 * `merge(other)` folds another accumulator of the same layer in (for calibration split over processes): the
 * result equals one pass over both sets of samples up to float32 rounding.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { checkBinding } from '../model/binding.js';

export type StatName = 'scaler' | 'sum' | 'variance' | 'hessian' | 'gram';
export const STAT_NAMES: readonly StatName[] = ['scaler', 'sum', 'variance', 'hessian', 'gram'];
/** The [in, in] statistics: they need each sample itself, so they cannot be folded from per-sample reductions. */
export const MATRIX_STATS: readonly StatName[] = ['hessian', 'gram'];

/** Check that x is [batch, seq, inFeatures]; the message names the statistics' owner. */
export function checkLayerInput(x: tf.Tensor, inFeatures: number, owner: string): void {
  if (x.rank !== 3 || x.shape[2] !== inFeatures) {
    throw new ConfigError(
      `${owner}.add: expected a layer input [batch, seq, ${inFeatures}], got [${x.shape.join(', ')}]`,
    );
  }
}

/** The statistics that fold from per-sample reductions (all but the Hessian). */
export type ReducedStat = 'scaler' | 'sum' | 'variance';
const REDUCED_STATS: readonly ReducedStat[] = ['scaler', 'sum', 'variance'];
/** One sample's reductions over its tokens, [in] each: sum of squares, sum, population variance. */
export type SampleReductions = Partial<Record<ReducedStat, Float32Array>>;

/**
 * The per-sample reductions `needs` asks for, of one sample xb [seq, in] (tensors, the caller's): what
 * `ActivationStats.add` folds in, and what a worker computes for `addReduced`.
 */
export function sampleReductions(xb: tf.Tensor2D, needs: ReadonlySet<StatName>): Partial<Record<ReducedStat, tf.Tensor1D>> {
  return tf.tidy(() => {
    const out: Partial<Record<ReducedStat, tf.Tensor1D>> = {};
    if (needs.has('scaler')) out.scaler = tf.sum(tf.square(xb), 0);
    if (needs.has('sum')) out.sum = tf.sum(xb, 0);
    if (needs.has('variance')) out.variance = tf.moments(xb, 0).variance as tf.Tensor1D;
    return out as Record<string, tf.Tensor1D>;
  });
}

/** Sample b of a layer input x [batch, seq, in], as float32 [seq, in] (the caller's). */
export function sampleOf(x: tf.Tensor3D, b: number): tf.Tensor2D {
  const [, seq, inF] = x.shape;
  return tf.tidy(() => tf.cast(tf.reshape(tf.slice(x, [b, 0, 0], [1, seq, inF]), [seq, inF]), 'float32'));
}

/** `sampleReductions` of every sample of x [batch, seq, in], read back (for `addReduced` in another thread). */
export function reduceSamples(x: tf.Tensor3D, needs: ReadonlySet<StatName>): SampleReductions[] {
  const out: SampleReductions[] = [];
  for (let b = 0; b < x.shape[0]; b++) {
    const xb = sampleOf(x, b);
    const r = sampleReductions(xb, needs);
    try {
      const values: SampleReductions = {};
      for (const [k, t] of Object.entries(r)) values[k as ReducedStat] = (t.dataSync() as Float32Array).slice();
      out.push(values);
    } finally {
      xb.dispose();
      tf.dispose(Object.values(r));
    }
  }
  return out;
}

/** The accumulator of one linear input. Tensors returned by the getters are borrowed (valid until the next add). */
export class ActivationStats {
  readonly inFeatures: number;
  readonly needs: ReadonlySet<StatName>;
  private t = new Map<StatName, tf.Tensor>();
  private count = 0; // samples
  private tokenCount = 0; // rows over all samples
  private disposed = false;

  constructor(inFeatures: number, needs: Iterable<StatName>) {
    if (!Number.isInteger(inFeatures) || inFeatures < 1) {
      throw new ConfigError(`statistics: inFeatures ${String(inFeatures)} is not a positive integer`);
    }
    this.inFeatures = inFeatures;
    this.needs = new Set(needs);
    for (const n of this.needs) {
      const shape = MATRIX_STATS.includes(n) ? [inFeatures, inFeatures] : [inFeatures];
      checkBinding(shape, `the '${n}' statistic of a linear's input`); // on webgpu: [in, in] must fit the binding limit
      this.t.set(n, tf.keep(tf.zeros(shape, 'float32')));
    }
  }

  get samples(): number {
    return this.count;
  }

  get tokens(): number {
    return this.tokenCount;
  }

  private get(n: StatName): tf.Tensor {
    if (this.disposed) throw new ConfigError('statistics: used after dispose()');
    const v = this.t.get(n);
    if (!v) throw new ConfigError(`statistics: '${n}' was not collected (collected: ${[...this.needs].join(', ') || 'none'})`);
    return v;
  }

  /** Wanda's scaler_row [in]. */
  get scalerRow(): tf.Tensor1D {
    return this.get('scaler') as tf.Tensor1D;
  }
  /** DSnoT's sum_metric_row [in]. */
  get sumRow(): tf.Tensor1D {
    return this.get('sum') as tf.Tensor1D;
  }
  /** DSnoT's pooled variance [in]. */
  get variance(): tf.Tensor1D {
    return this.get('variance') as tf.Tensor1D;
  }
  /** SparseGPT's H [in, in]. */
  get hessian(): tf.Tensor2D {
    return this.get('hessian') as tf.Tensor2D;
  }
  /** The ADMM update's XX = sum of x x^T over every token [in, in]. */
  get gram(): tf.Tensor2D {
    return this.get('gram') as tf.Tensor2D;
  }

  private replace(n: StatName, next: tf.Tensor): void {
    this.t.get(n)?.dispose();
    this.t.set(n, tf.keep(next));
  }

  /** Fold in x: [batch, seq, in]; each batch element is one sample. x is not consumed. */
  add(x: tf.Tensor3D): void {
    checkLayerInput(x, this.inFeatures, 'statistics');
    if (this.disposed) throw new ConfigError('statistics: used after dispose()');
    const [batch, seq] = x.shape;
    for (let b = 0; b < batch; b++) {
      const xb = sampleOf(x, b);
      const r = sampleReductions(xb, this.needs);
      try {
        this.fold(xb, seq, r);
      } finally {
        xb.dispose();
        tf.dispose(Object.values(r));
      }
    }
  }

  /**
   * Fold in samples already reduced elsewhere (a worker thread: lib/model/forward-pool.ts) by `sampleReductions`, one
   * entry per sample of `seq` tokens, in order: the same operations as `add`, so the same result bit for bit. The
   * [in, in] statistics (MATRIX_STATS) cannot be folded this way (they need the sample itself).
   */
  addReduced(samples: readonly SampleReductions[], seq: number): void {
    if (this.disposed) throw new ConfigError('statistics: used after dispose()');
    for (const m of MATRIX_STATS) if (this.needs.has(m)) throw new ConfigError(`statistics: the ${m === 'hessian' ? 'Hessian' : 'Gram matrix'} cannot be folded from reductions`);
    for (const r of samples) {
      const t = tf.tidy(() => {
        const out: Partial<Record<ReducedStat, tf.Tensor1D>> = {};
        for (const k of REDUCED_STATS) {
          if (!this.needs.has(k)) continue;
          const v = r[k];
          if (!v || v.length !== this.inFeatures) throw new ConfigError(`statistics: reduction '${k}' missing or not of ${this.inFeatures} values`);
          out[k] = tf.tensor1d(v);
        }
        return out as Record<string, tf.Tensor1D>;
      });
      try {
        this.fold(null, seq, t);
      } finally {
        tf.dispose(Object.values(t));
      }
    }
  }

  /** Fold one sample of `seq` tokens in from its reductions (and xb [seq, in] itself for the Hessian). */
  private fold(xb: tf.Tensor2D | null, seq: number, r: Partial<Record<ReducedStat, tf.Tensor1D>>): void {
    const n = this.count;
    const tokens = this.tokenCount;
    const next = tf.tidy(() => {
      const out: Partial<Record<StatName, tf.Tensor>> = {};
      const decay = tf.scalar(n / (n + 1));
      const share = tf.scalar(n + 1);
      // running means over samples: s * n/(n+1) + v/(n+1), scalars rounded to float32 like the references
      if (r.scaler) out.scaler = tf.add(tf.mul(this.get('scaler'), decay), tf.div(r.scaler, share));
      if (r.sum) out.sum = tf.add(tf.mul(this.get('sum'), decay), tf.div(r.sum, share));
      if (r.variance) {
        const v = r.variance; // population variance over this sample's tokens
        out.variance = tokens === 0 ? tf.clone(v) : tf.div(tf.add(tf.mul(this.get('variance'), tf.scalar(tokens)), tf.mul(v, tf.scalar(seq))), tf.scalar(tokens + seq));
      }
      if (this.needs.has('hessian') && xb) {
        const scaled = tf.mul(xb, tf.scalar(Math.sqrt(2 / (n + 1)))); // [seq, in]
        // transposing first: matMul(a, b, transposeA) is far slower on wasm
        out.hessian = tf.add(tf.mul(this.get('hessian'), tf.scalar(n / (n + 1))), tf.matMul(tf.transpose(scaled), scaled));
      }
      // the reference's add_batch: XX += X^T X, one sample at a time
      if (this.needs.has('gram') && xb) out.gram = tf.add(this.get('gram'), tf.matMul(tf.transpose(xb), xb));
      return out as Record<string, tf.Tensor>;
    });
    for (const [k, v] of Object.entries(next)) this.replace(k as StatName, v);
    this.count = n + 1;
    this.tokenCount = tokens + seq;
  }

  /**
   * Fold in `other` (the same layer's statistics over other samples; not consumed): each running mean becomes
   * the sample-weighted mean of the two, the variance the token-weighted one, the Gram matrix their sum. Both must collect the same things.
   */
  merge(other: ActivationStats): void {
    if (other.inFeatures !== this.inFeatures) {
      throw new ConfigError(`statistics.merge: ${other.inFeatures} inputs into statistics of ${this.inFeatures}`);
    }
    const a = [...this.needs].sort().join(',');
    const b = [...other.needs].sort().join(',');
    if (a !== b) throw new ConfigError(`statistics.merge: collected [${b}] into statistics of [${a}]`);
    if (other.count === 0) return;
    const n1 = this.count;
    const n2 = other.count;
    const t1 = this.tokenCount;
    const t2 = other.tokenCount;
    const next = tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const k of this.needs) {
        if (k === 'gram') {
          out[k] = tf.add(this.get(k), other.get(k)); // a sum, not a mean
          continue;
        }
        const [w1, w2] = k === 'variance' ? [t1 / (t1 + t2), t2 / (t1 + t2)] : [n1 / (n1 + n2), n2 / (n1 + n2)];
        out[k] = tf.add(tf.mul(this.get(k), tf.scalar(w1)), tf.mul(other.get(k), tf.scalar(w2)));
      }
      return out;
    });
    for (const [k, v] of Object.entries(next)) this.replace(k as StatName, v);
    this.count = n1 + n2;
    this.tokenCount = t1 + t2;
  }

  dispose(): void {
    for (const v of this.t.values()) v.dispose();
    this.t.clear();
    this.disposed = true;
  }
}

/** Fresh statistics for what `user` (a method or refiner) reads, or null when it reads nothing (magnitude). */
export function createStats(user: { stats: readonly StatName[] }, inFeatures: number): ActivationStats | null {
  return user.stats.length > 0 ? new ActivationStats(inFeatures, user.stats) : null;
}
