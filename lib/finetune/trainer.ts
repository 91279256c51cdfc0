/** One training step of LoRA adapters: gradients over micro-batches, clipping, AdamW. */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import type { LlamaModel } from '../model/llama.js';
import { LoraAdapters, SeededRandom } from './lora.js';
import { causalLmLoss, requireGradients } from './loss.js';
import { AdamW, learningRate, type AdamWOptions, type ScheduleOptions } from './optim.js';

// ---------------------------------------------------------------------------------------------------------------
// one training step

export interface TrainerOptions extends ScheduleOptions, AdamWOptions {
  maxGradNorm: number; // clip the global gradient norm to this (0 = no clipping); default 1.0
}

/** What one optimizer step did. */
export interface StepResult {
  step: number; // optimizer steps done, this one included
  loss: number; // mean loss over the step's micro-batches (before the update)
  gradNorm: number; // global gradient norm before clipping
  lr: number; // learning rate used
}

/**
 * `tf.addN(ts)`. On webgpu in groups: one shader binds at most maxStorageBuffersPerShaderStage buffers (8 unless the
 * device asks for more, and tfjs does not), the output one of them; tfjs's AddN does not split its inputs.
 */
function addAll(ts: tf.Tensor[]): tf.Tensor {
  if (tf.getBackend() !== 'webgpu' || ts.length <= 7) return tf.addN(ts);
  let acc = tf.addN(ts.slice(0, 7));
  for (let i = 7; i < ts.length; i += 6) acc = tf.addN([acc, ...ts.slice(i, i + 6)]);
  return acc;
}

/**
 * Trains LoRA adapters on a resident model: gradients by tf.variableGrads over the adapter variables, summed over
 * micro-batches and averaged, clipped to a global norm, applied by AdamW. Dropout masks come from `rng`.
 * Needs tfjs's gradient functions: await ensureGradients() (loss.ts) before constructing one.
 */
export class LoraTrainer {
  readonly optimizer: AdamW;
  readonly rng: SeededRandom;
  step = 0; // optimizer steps done

  constructor(
    readonly model: LlamaModel,
    readonly adapters: LoraAdapters,
    readonly options: TrainerOptions,
    dropoutSeed: number,
  ) {
    requireGradients('LoraTrainer');
    this.optimizer = new AdamW(adapters.variables(), options);
    this.rng = SeededRandom.derive(dropoutSeed, 2);
  }

  /** One optimizer step over `microBatches` (each ids [batch][seqlen]). Leaves no tensors behind. */
  async trainStep(microBatches: number[][][]): Promise<StepResult> {
    if (microBatches.length === 0) throw new ConfigError('trainStep: no micro-batches');
    const vars = this.optimizer.vars;
    const forward = this.adapters.trainingForward(this.rng);
    let acc: tf.Tensor[] | null = null;
    let lossSum = 0;
    for (const mb of microBatches) {
      const { value, grads } = tf.variableGrads(() => causalLmLoss(this.model, mb, forward), vars);
      try {
        lossSum += (await value.data())[0]!;
      } catch (e) {
        tf.dispose(Object.values(grads));
        tf.dispose(acc ?? []);
        throw e;
      } finally {
        value.dispose();
      }
      const g = vars.map((v) => grads[v.name]!);
      if (acc === null) acc = g;
      else {
        const prev: tf.Tensor[] = acc;
        acc = prev.map((a, i) => tf.add(a, g[i]!));
        tf.dispose(prev);
        tf.dispose(g);
      }
    }
    const lr = learningRate(this.step, this.options);
    let gradNorm = 0;
    const grads = acc!;
    try {
      const k = microBatches.length;
      const scaled = tf.tidy(() => grads.map((g) => (k === 1 ? tf.clone(g) : tf.div(g, k))));
      tf.dispose(grads);
      grads.splice(0, grads.length, ...scaled);
      const sumSq = tf.tidy(() => addAll(grads.map((g) => tf.sum(tf.square(g)))));
      try {
        gradNorm = Math.sqrt((await sumSq.data())[0]!);
      } finally {
        sumSq.dispose();
      }
      if (this.options.maxGradNorm > 0) {
        // torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
        const coef = Math.min(1, this.options.maxGradNorm / (gradNorm + 1e-6));
        if (coef < 1) {
          const clipped = tf.tidy(() => grads.map((g) => tf.mul(g, coef)));
          tf.dispose(grads);
          grads.splice(0, grads.length, ...clipped);
        }
      }
      this.optimizer.step(grads, lr);
    } finally {
      tf.dispose(grads);
    }
    this.step++;
    return { step: this.step, loss: lossSum / microBatches.length, gradNorm, lr };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
