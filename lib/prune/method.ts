import type * as tf from '@tensorflow/tfjs-core';

/** Which weights are compared with each other when choosing what to remove. */
export type Structure =
  | { kind: 'unstructured' } // ratio p of every comparison group
  | { kind: 'nm'; n: number; m: number }; // N zeros in every group of M consecutive input columns

/** The linear layers of a block come from the architecture spec (re-exported for existing importers). */
export { LINEAR_NAMES, type LinearName } from '../model/architecture.js';

/** Options every method receives for one linear layer. */
export interface PruneOptions {
  sparsity: number; // target zero fraction in [0, 1); N:M fixes it at n/m
  structure: Structure;
  useVariant?: boolean; // Wanda only: the alpha-bisection variant of REFERENCE.md section 3
}

/**
 * Calibration statistics of one linear layer, fed with that layer's inputs.
 * `add(x)` takes x: [batch, seq, in]; each batch element is one calibration sample (one sequence) and is
 * folded in separately, so results do not depend on how many samples share a forward pass.
 * `add` does not take ownership of x. `dispose()` frees the accumulated state.
 */
export interface LayerStats {
  add(x: tf.Tensor3D): void;
  readonly samples: number;
  dispose(): void;
}

/** Result of pruning one weight matrix. The caller owns both tensors. */
export interface PruneResult {
  weight: tf.Tensor2D; // [out, in], pruned (and, for SparseGPT, updated)
  mask: tf.Tensor2D; // [out, in], 1 = removed, 0 = kept (bool stored as float32 0/1)
}

/** A pruning method: optional calibration statistics, then a prune step. Methods hold no global state. */
export interface PruneMethod {
  readonly name: string;
  /** false for methods (magnitude) that use no calibration data; the pipeline then skips the hooks. */
  readonly needsCalibration: boolean;
  /** A fresh accumulator for a linear layer with `inFeatures` inputs (null when !needsCalibration). */
  createStats(inFeatures: number): LayerStats | null;
  /** Prune `weight` ([out, in], not consumed) using `stats` (not consumed). */
  prune(weight: tf.Tensor2D, stats: LayerStats | null, options: PruneOptions): PruneResult;
}
