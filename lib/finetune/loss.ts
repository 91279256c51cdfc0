/** The training objective: next-token cross-entropy through the model, differentiable in the adapters. */
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, LlmPruneError } from '../errors.js';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { frozenMatMul } from './lora.js';

// ---------------------------------------------------------------------------------------------------------------
// gradients

/**
 * Make tfjs able to differentiate; await it before training (finetune() does). tfjs-core registers no gradient
 * functions by itself, and its module that registers them all (dist/register_all_gradients.js) is written for
 * bundlers, not for Node: scripts/build.mjs bundles it into ./tfjs-gradients.js (the same functions that the whole
 * @tensorflow/tfjs package registers), loaded here on first use so that code that never trains does not pay for it.
 *
 * Why there is no context object or flag to pass around: where the gradients go is tfjs-core's gradient registry,
 * one per process (kept in tfjs's global namespace, shared by every backend and engine), and an ES module is
 * evaluated once per process. So this is idempotent by construction: a second call, or a caller that imported
 * @tensorflow/tfjs itself, finds the work done, and no state of ours records it. `requireGradients` checks it.
 */
export async function ensureGradients(): Promise<void> {
  if (tf.getGradient(tf.BatchMatMul) !== undefined) return; // registered already (by this or by @tensorflow/tfjs)
  try {
    await import('./tfjs-gradients.js');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' && !/Cannot find module/.test(String(e))) throw e;
    throw new LlmPruneError(`ensureGradients: ${fileURLToPath(new URL('./tfjs-gradients.js', import.meta.url))} is missing: build it with npm run build (or node scripts/build.mjs --gradients)`);
  }
  requireGradients('ensureGradients');
}

/**
 * Throw a clear error when tfjs has no gradient functions (ensureGradients was not awaited), instead of tfjs's
 * "gradient function not found" in the middle of the first backward pass. Reads tfjs's registry, not a flag.
 */
export function requireGradients(caller: string): void {
  if (tf.getGradient(tf.BatchMatMul) === undefined) {
    throw new LlmPruneError(`${caller}: tfjs has no gradient functions registered; await ensureGradients() (lib/finetune/loss.ts) first`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// loss

/**
 * Mean next-token cross-entropy over the predicted tokens of ids [b][s] (tokens 1..s-1 of every window; equal to
 * the mean over windows of perplexity.ts's `windowLosses`), as a scalar differentiable in the adapter variables.
 * The final RMSNorm and lm_head are the model's (`LlamaModel.headFlat`), with lm_head as a frozen matMul (fast backward),
 * and the cross-entropy has its analytic gradient (softmax - onehot) / n. The caller owns the scalar.
 */
export function causalLmLoss(model: LlamaModel, ids: number[][], forward: ForwardOptions): tf.Scalar {
  const b = ids.length;
  const s = ids[0]?.length ?? 0;
  if (s < 2) throw new ConfigError(`loss: windows of ${s} tokens predict nothing; need at least 2`);
  const c = model.config;
  const n = b * (s - 1);
  const targets = new Int32Array(n);
  for (let i = 0; i < b; i++) for (let j = 1; j < s; j++) targets[i * (s - 1) + j - 1] = ids[i]![j]!;
  if (!model.lmHeadT) throw new ConfigError('fine-tuning needs a model loaded with its lm_head');
  return tf.tidy(() => {
    const hidden = model.hidden(ids, forward); // [b, s, hidden]
    const x = tf.slice(hidden, [0, 0, 0], [b, s - 1, c.hiddenSize]); // the positions that predict a next token
    const logits = model.headFlat(x, frozenMatMul); // [n, vocab]
    return crossEntropyMean(logits, targets);
  });
}

/** mean_i (logsumexp(logits_i) - logits_i[target_i]) for logits [n, vocab]; gradient (softmax - onehot) / n. */
function crossEntropyMean(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [n, v] = logits.shape;
  const f = tf.customGrad((lg: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const l = lg as tf.Tensor2D;
    (save as tf.GradSaveFunc)([l]); // kept by the tape until the backward pass
    const value = tf.tidy(() => {
      const flat = new Int32Array(n);
      for (let i = 0; i < n; i++) flat[i] = i * v + targets[i]!;
      const picked = tf.gather(tf.reshape(l, [-1]), tf.tensor1d(flat, 'int32')); // [n]
      return tf.mean(tf.sub(tf.logSumExp(l, 1), picked)) as tf.Scalar;
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          // int32 one-hot, then cast: the wasm OneHot kernel writes int bits into a float32 output when asked for one
          const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), v), 'float32');
          return tf.mul(tf.sub(tf.softmax(saved[0]!), onehot), tf.div(dy, n));
        }),
    };
  });
  return f(logits) as tf.Scalar;
}
