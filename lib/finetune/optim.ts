/** Learning-rate schedules (transformers' get_*_schedule_with_warmup) and AdamW (torch.optim.AdamW). */
import * as tf from '@tensorflow/tfjs-core';

// ---------------------------------------------------------------------------------------------------------------
// learning-rate schedule and AdamW

/** Learning-rate schedule, as transformers' get_*_schedule_with_warmup (step counted from 0). */
export interface ScheduleOptions {
  lr: number; // peak learning rate
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number; // linear warmup from 0 over these steps
  totalSteps: number; // linear / cosine decay to 0 at this step
}

/** Learning rate of optimizer step `step` (0-based): warmup step/warmup, then constant, linear or cosine decay. */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  if (o.schedule === 'constant') return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
  if (o.schedule === 'linear') return o.lr * Math.max(0, (o.totalSteps - step) / Math.max(1, o.totalSteps - o.warmupSteps));
  return o.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export interface AdamWOptions {
  beta1: number; // default 0.9
  beta2: number; // default 0.999
  eps: number; // default 1e-8
  weightDecay: number; // decoupled: p <- p (1 - lr wd) before the Adam step (default 0, as transformers' Trainer)
}

/**
 * AdamW (Loshchilov & Hutter) exactly as torch.optim.AdamW updates one parameter p with gradient g at step t:
 *   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * tfjs has Adam without decoupled decay, so the update is written out here on the adapter variables.
 */
export class AdamW {
  readonly vars: tf.Variable[];
  readonly m: tf.Variable[]; // first moments, shaped as vars
  readonly v: tf.Variable[]; // second moments
  t = 0; // steps taken

  constructor(
    vars: tf.Variable[],
    readonly options: AdamWOptions,
  ) {
    this.vars = vars;
    const zeros = (x: tf.Variable): tf.Variable => tf.tidy(() => tf.variable(tf.zerosLike(x), false));
    this.m = vars.map(zeros);
    this.v = vars.map(zeros);
  }

  /** One update with gradients `grads` (same order as vars; not consumed) and learning rate `lr`. */
  step(grads: tf.Tensor[], lr: number): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this.options;
    this.t++;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      this.vars.forEach((p, i) => {
        const g = grads[i]!;
        const m = tf.add(tf.mul(this.m[i]!, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[i]!, b2), tf.mul(tf.square(g), 1 - b2));
        const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
      });
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}
