/**
 * Magnitude pruning (baseline, docs/methods.md section 3; reference: locuslab/wanda lib/prune.py prune_magnitude).
 * S = |W|. Unstructured: one threshold for the whole matrix, t = sorted(|W|.flatten())[floor(numel * p)], and every
 * weight with |W| <= t is removed (the `<=` can remove a little more than p, and at p = 0 the smallest weights;
 * kept as the reference does). N:M: per row, as in mask.ts. Uses no calibration data.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { applyMask, nmMask, sortedValueTensor, validateOptions } from './mask.js';
import { z } from 'zod';
import { parseOptions } from './plan.js';
import type { PruneMethod, PruneOptions, PruneResult, RowsPruneResult } from './method.js';
import { maskedRows, pruneEachRow, sortedValueOfRows, thresholdRows } from './rows.js';

/** |W| ([out, in], float32); the caller owns it. */
function magnitudeMetric(weight: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.abs(tf.cast(weight, 'float32')) as tf.Tensor2D);
}

/** The magnitude mask of `weight` ([out, in]); the caller owns it. */
export function magnitudeMask(weight: tf.Tensor2D, options: PruneOptions): tf.Tensor2D {
  validateOptions(options);
  const metric = magnitudeMetric(weight); // [out, in]
  try {
    const { structure } = options;
    if (structure.kind === 'nm') return nmMask(metric, structure.n, structure.m);
    const thresh = sortedValueTensor(metric, Math.floor(metric.size * options.sparsity));
    try {
      return tf.tidy(() => tf.cast(tf.lessEqual(metric, thresh), 'float32') as tf.Tensor2D);
    } finally {
      thresh.dispose();
    }
  } finally {
    metric.dispose();
  }
}

const magnitudeOptions = z.strictObject({});

export const magnitude: PruneMethod<z.infer<typeof magnitudeOptions>> = {
  name: 'magnitude',
  version: 1, // bump when a change alters its masks or weights
  summary: '|W|, one threshold per matrix (baseline; no calibration data)',
  stats: [],
  options: magnitudeOptions,
  updatesWeights: false,
  prune(weight: tf.Tensor2D, _stats, target: PruneOptions, options?: Record<string, never>): PruneResult {
    parseOptions('magnitude', magnitudeOptions, options);
    if (weight.rank !== 2) throw new ConfigError(`magnitude.prune: weight must be [out, in], got [${weight.shape.join(', ')}]`);
    const mask = magnitudeMask(weight, target);
    return { weight: applyMask(weight, mask), mask };
  },
  /** N:M per row, per chunk; unstructured: the matrix's threshold from every chunk's |W|, then each chunk's mask. */
  async pruneRows(rows, _stats, target, options): Promise<RowsPruneResult> {
    if (target.structure.kind === 'nm') return pruneEachRow(rows, (w) => magnitude.prune(w, null, target, options));
    parseOptions('magnitude', magnitudeOptions, options);
    validateOptions(target);
    const numel = rows.reduce((a, w) => a + w.size, 0);
    const thresh = await sortedValueOfRows(rows, magnitudeMetric, Math.floor(numel * target.sparsity));
    try {
      return await maskedRows(rows, await thresholdRows(rows, magnitudeMetric, thresh));
    } finally {
      thresh.dispose();
    }
  },
};
