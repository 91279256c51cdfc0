/** Counting zeros: in values, in a tensor (on its backend), and in the linear weights of a checkpoint. */
import * as tf from '@tensorflow/tfjs-core';
import { LINEAR_NAMES, linearTensorName } from './architecture.js';
import type { Checkpoint } from './checkpoint.js';

/** Exact zeros (+0 and -0) in `values`. */
export function countZeros(values: ArrayLike<number>): number {
  let zeros = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
  return zeros;
}

/** Exact zeros of a tensor as an int32 scalar left on its backend (the layer loop reads a block's counts at once). */
export function tensorZeros(t: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(t, 0), 'int32')));
}

/** Exact zeros of a tensor, counted on its backend (only the count is read back). */
export async function countTensorZeros(t: tf.Tensor): Promise<number> {
  const z = tensorZeros(t);
  try {
    return (await z.data())[0]!;
  } finally {
    z.dispose();
  }
}

/** Zero count of one weight matrix. */
export interface MatrixZeros {
  tensor: string;
  params: number;
  zeros: number;
}

/** Exact zeros of every linear weight of every block, as stored in a checkpoint. */
export function linearZeros(ckpt: Checkpoint): MatrixZeros[] {
  const out: MatrixZeros[] = [];
  for (let layer = 0; layer < ckpt.config.numLayers; layer++) {
    for (const n of LINEAR_NAMES) {
      const tensor = linearTensorName(layer, n);
      const v = ckpt.read(tensor);
      out.push({ tensor, params: v.length, zeros: countZeros(v) });
    }
  }
  return out;
}

/** Zero fraction over every linear weight of every block of a checkpoint (0 for a checkpoint without blocks). */
export function linearSparsity(ckpt: Checkpoint): number {
  let zeros = 0;
  let params = 0;
  for (const m of linearZeros(ckpt)) {
    zeros += m.zeros;
    params += m.params;
  }
  return params === 0 ? 0 : zeros / params;
}
