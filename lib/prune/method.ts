import type * as tf from '@tensorflow/tfjs-core';
import type { z } from 'zod';
import type { LinearName } from '../model/architecture.js';
import type { ActivationStats, StatName } from './stats.js';
import type { OptionName } from '../errors.js';

/** Which weights are compared with each other when choosing what to remove. */
export type Structure =
  | { kind: 'unstructured' } // ratio p of every comparison group
  | { kind: 'nm'; n: number; m: number }; // N zeros in every group of M consecutive input columns


/** What one linear layer is pruned to: its target sparsity and structure (the same for every method). */
export interface PruneOptions {
  sparsity: number; // target zero fraction in [0, 1); N:M fixes it at n/m
  structure: Structure;
}

/** Which linear a prune call is for (block index, short name, full module name). */
export interface LinearRef {
  layer: number;
  linear: LinearName;
  name: string; // 'model.layers.3.self_attn.q_proj'
}

/**
 * Output error of a pruned linear on the calibration inputs, as a fraction of the dense output's:
 * ||(W - W') X||^2 / ||W X||^2, with W' the weight masked without an update (`before`) and as returned (`after`).
 */
export interface Reconstruction {
  before: number;
  after: number;
}

/** Result of pruning one weight matrix. The caller owns both tensors. */
export interface PruneResult {
  weight: tf.Tensor2D; // [out, in], pruned (and, for SparseGPT, updated)
  mask: tf.Tensor2D; // [out, in], 1 = removed, 0 = kept (bool stored as float32 0/1)
  /** RIA --permute: the column order in which the mask is N:M (mask[:, permutation[k]] = mask in slot k). */
  permutation?: number[];
  /** Methods that update the kept weights (ADMM) report the output error before and after their update. */
  reconstruction?: Reconstruction;
}

/**
 * The result of pruning a weight held in row chunks (`PruneMethod.pruneRows`): per chunk ([out_i, in], in order) its
 * weight and mask, the caller's, equal to the rows of `prune`'s result of the whole weight.
 */
export interface RowsPruneResult {
  weights: tf.Tensor2D[];
  masks: tf.Tensor2D[];
  permutation?: number[];
  reconstruction?: Reconstruction;
}

/** The method's own options: a zod schema whose fields carry `.meta({ flag, description })` for the CLI. */
export type OptionsSchema<O> = z.ZodType<O, Record<string, unknown>>;

/**
 * A pruning method: the statistics it reads, then a prune step for one linear. Methods hold no global state and own
 * their options (`options` parses the user's values and fills the defaults).
 */
export interface PruneMethod<O = Record<string, unknown>> {
  readonly name: string;
  /**
   * The version of this module's numbers: bump it with any change that can change what it computes (masks, kept
   * weights, statistics it reads). Stored experiment results record it, and a run redoes results made at another.
   */
  readonly version: number;
  /** One line for help texts. */
  readonly summary: string;
  /** What the method reads from the calibration data; empty for methods (magnitude) that use none. */
  readonly stats: readonly StatName[];
  /** Its options: parse({}) gives the defaults. */
  readonly options: OptionsSchema<O>;
  /**
   * Throws a ConfigError when `options` cannot be used with `target` (checked when the plan is built). Messages name
   * the method's options as `name` does (default `optionFlagName(this.options)`: their CLI flags, `--permute`).
   */
  check?(target: PruneOptions, options: O, name?: OptionName): void;
  /** true when the method changes the weights it keeps (SparseGPT): a refiner cannot then re-choose the mask. */
  readonly updatesWeights: boolean;
  /**
   * Prune `weight` ([out, in], not consumed) to `target` using `stats` (not consumed; null when `stats` is empty).
   * `options` is what `this.options` parsed (default: its defaults); `where` names the linear (for messages and per-linear choices).
   * A method that reads values back to the host (SparseGPT's Hessian, the Wanda variant's bisection, RIA's
   * permutation) returns a promise: reads are `await t.data()`, the only kind WebGPU has.
   */
  prune(weight: tf.Tensor2D, stats: ActivationStats | null, target: PruneOptions, options?: O, where?: LinearRef): PruneResult | Promise<PruneResult>;
  /**
   * `prune` of a weight held in row chunks `rows` ([out_i, in], in order, not consumed): on webgpu, a weight over the
   * binding limit (lib/model/binding.ts). Chooses the same mask as `prune` of the whole (quantities over the whole
   * layer are combined from the chunks). Absent: the pipeline refuses such a weight with a clear error.
   */
  pruneRows?(rows: readonly tf.Tensor2D[], stats: ActivationStats | null, target: PruneOptions, options?: O, where?: LinearRef): Promise<RowsPruneResult>;
}

/**
 * A mask refiner (DSnoT): re-chooses a mask after the method chose it, at the same per-row sparsity. A refiner with
 * `update` (the ADMM update) keeps the mask and updates the kept weights instead.
 */
export interface MaskRefiner<O = Record<string, unknown>> {
  readonly name: string;
  /** The version of its numbers (see PruneMethod.version). */
  readonly version: number;
  readonly summary: string;
  readonly stats: readonly StatName[];
  readonly options: OptionsSchema<O>;
  /** The structures it takes: 'unstructured' (DSnoT, the default) or 'any' (N:M masks too). */
  readonly structures?: 'unstructured' | 'any';
  /** Whether this linear is refined at all (DSnoT skips the MLP linears by default). */
  applies(where: LinearRef, options: O): boolean;
  /** A new mask ([out, in], 1 = removed; the caller owns it) from `weight` (the unpruned weight) and `mask`. */
  refine(weight: tf.Tensor2D, mask: tf.Tensor2D, stats: ActivationStats, target: PruneOptions, options: O): tf.Tensor2D | Promise<tf.Tensor2D>;
  /**
   * Weight updaters only: the weight ([out, in]) that keeps `mask` and updates the rest, from `weight` (unpruned);
   * the pipeline calls it instead of `refine`. The caller owns the result's tensors.
   */
  update?(weight: tf.Tensor2D, mask: tf.Tensor2D, stats: ActivationStats, target: PruneOptions, options: O): PruneResult | Promise<PruneResult>;
  /** `refine` of a weight and mask held in row chunks ([out_i, in] each; see PruneMethod.pruneRows); absent: refused. */
  refineRows?(weights: readonly tf.Tensor2D[], masks: readonly tf.Tensor2D[], stats: ActivationStats, target: PruneOptions, options: O): Promise<tf.Tensor2D[]>;
  /** `update` of a weight and mask held in row chunks; absent (for a refiner with `update`): refused. */
  updateRows?(weights: readonly tf.Tensor2D[], masks: readonly tf.Tensor2D[], stats: ActivationStats, target: PruneOptions, options: O): Promise<RowsPruneResult>;
}

/** Per-block sparsities chosen before the layer loop (OWL). `mean` of the result is the global target. */
export interface LayerwiseAllocator<O = Record<string, unknown>> {
  readonly name: string;
  /** The version of its numbers (see PruneMethod.version). */
  readonly version: number;
  readonly summary: string;
  readonly options: OptionsSchema<O>;
}

/** Backwards-compatible name of the statistics every method receives. */
export type LayerStats = ActivationStats;

/** How the CLI names a method's options: `--` and the flag in each field's `.meta({ flag })` (else the key). */
export function optionFlagName(schema: unknown): OptionName {
  const shape = (schema as { shape?: Record<string, { meta?(): Record<string, unknown> | undefined }> }).shape ?? {};
  return (key) => `--${String(shape[key]?.meta?.()?.['flag'] ?? key)}`;
}
