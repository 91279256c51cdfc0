/**
 * THE layer loop (docs/methods.md section 2), written once for every method:
 *   embed the calibration windows; then for each decoder block:
 *     1. run it unpruned while the taps feed each linear's input to the method's statistics,
 *     2. prune its seven linears,
 *     3. run it again pruned: its outputs are the next block's inputs,
 *     4. write it to the output checkpoint and free it.
 * Only the current block's weights and the calibration activations are resident; blocks are read lazily from the
 * input safetensors and streamed into the output, so peak memory does not grow with the number of layers. On wasm
 * (Kernels.park 'js-memory') what waits between steps waits in JS memory; elsewhere it stays on the backend. With
 * Kernels.windows 'workers' (wasm, --threads > 1) the forwards of steps 1 and 3 run in a pool of worker threads
 * (lib/model/forward-pool.ts), with bit-identical results. On webgpu a linear weight over the binding limit is held
 * and pruned in row chunks (each method's `pruneRows`, lib/prune/rows.ts).
 * Each step is a function below (runBlock: collectStatistics, pruneLinearsInPlace / pruneLinearsParked,
 * blockSparsity, reforward, writeBlock); runLayerLoop sets up, runs the blocks, saves resume checkpoints.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, UnsupportedError, optionKey, type OptionName } from '../errors.js';
import type { Checkpoint, CheckpointWriter } from '../model/checkpoint.js';
import { INPUT_GROUP, LINEAR_NAMES, expectedTensors, linearShape, type LinearName } from '../model/architecture.js';
import { tensorZeros } from '../model/sparsity.js';
import { kernels as activeKernels, type Kernels } from '../model/backend.js';
import { ForwardPool, calibrationWorkers, wantedWorkers } from '../model/forward-pool.js';
import type { LlamaConfig } from '../model/config.js';
import {
  LlamaModel,
  blockWeightsToArrays,
  disposeBlock,
  linearParts,
  linearWeightRows,
  loadBlockWeights,
  setLinearWeightRows,
  wholeWT,
  type BlockWeights,
} from '../model/llama.js';
import { bindingLimitBytes, sizeText } from '../model/binding.js';
import type { CalibrationSet } from '../data/calibration.js';
import { type PruneMethod, type PruneOptions, type PruneResult, type Reconstruction, type RowsPruneResult } from './method.js';
import { applyMask, describeStructure } from './mask.js';
import { buildPlan, type BlockPlan, type LinearPlan, type PrunePlan } from './plan.js';
import { ActivationStats, type StatName } from './stats.js';
import { failpoint } from './resume.js';
import { platform } from '../platform/index.js';

/** Zero fraction of one block's matrices (the reference's check_sparsity). */
export interface BlockSparsity {
  layer: number;
  allocated: number; // the plan's target sparsity of this block (OWL: per block)
  matrices: Record<LinearName, number>; // zero fraction of each linear weight
  zeros: number; // zeros over the seven matrices
  params: number; // weights in the seven matrices
  sparsity: number; // zeros / params
  /** Methods that update weights (ADMM): each linear's output error before and after the update (method.ts). */
  reconstruction?: Partial<Record<LinearName, Reconstruction>>;
}

/** Seconds spent in each phase, summed over blocks. */
export interface PhaseTimes {
  load: number; // reading block weights
  calibrationForward: number; // unpruned forward passes (excluding statistics)
  statistics: number; // statistics accumulation inside the taps
  prune: number; // metric, mask and weight update
  reforward: number; // pruned forward passes producing the next block's inputs
  write: number; // writing the pruned block
}

/** Progress event of a pruning run. */
export interface PruneProgress {
  layer: number; // 0-based block just finished
  layers: number;
  elapsed: number; // seconds since the layer loop started
  eta: number; // seconds still expected
  tokensPerSecond: number; // calibration tokens through forward passes per second (0 for magnitude)
  pass?: 'owl'; // OWL's first pass (outlier ratios of the unpruned model), when it runs
  times?: PhaseTimes; // seconds per phase so far (all attempts of a resumed run); absent in OWL's first pass
}

/** Everything the layer loop needs: a plan, or (shorthand) one method and target for every linear. */
export interface LayerLoopOptions {
  checkpoint: Checkpoint;
  plan?: PrunePlan;
  method?: PruneMethod<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  prune?: PruneOptions;
  calibration: CalibrationSet | null; // null for methods without calibration
  batchSize: number; // calibration samples per forward; results do not depend on it
  writer: CheckpointWriter | null; // where blocks go (null: keep nothing, e.g. tests that inspect `onBlock`)
  onProgress?: (p: PruneProgress) => void;
  /** Called with each pruned block before it is written and freed (the block is owned by the loop). */
  onBlock?: (layer: number, block: BlockWeights) => void;
  /**
   * Extra statistics for a pass that inspects blocks (OWL's outlier ratios): `fn` sees each block's unpruned
   * weights and the statistics of each linear's input, after the calibration forward and before pruning.
   */
  inspect?: { needs: readonly StatName[]; fn: (layer: number, block: BlockWeights, stats: (n: LinearName) => ActivationStats) => void | Promise<void> };
  /** Continue a killed run (lib/prune/resume.ts): non-block tensors and blocks < nextLayer are already written. */
  start?: LoopStart;
  /** Called when blocks < nextLayer are written (before block 0 too), with the next block's inputs (not consumed). */
  onCheckpoint?: (cp: LoopCheckpoint) => void | Promise<void>;
  /** The backend's kernel choices (attention, parking; lib/model/backend.ts). Default: those of the active backend. */
  kernels?: Kernels;
  /** How messages name the options (default the library's names: batchSize; the CLI passes its flags, experiment files key paths). */
  optionName?: OptionName;
  /**
   * Worker threads for the calibration forwards (lib/model/forward-pool.ts); 1 runs them in-process. Default: the
   * active backend's threads when the kernels say `windows: 'workers'` (wasm). Masks do not depend on it.
   */
  workers?: number;
}

/** Where a resumed loop starts; the loop takes ownership of `inputs`. */
export interface LoopStart {
  nextLayer: number;
  inputs: tf.Tensor3D[];
  blocks: BlockSparsity[];
  times: PhaseTimes;
  forwardTokens: number;
  permutations: Record<string, number[]>; // RIA --permute column orders of the blocks already done
  seconds: number; // loop seconds of the earlier attempts
}

/** The loop's state between two blocks. */
export interface LoopCheckpoint extends Omit<LoopStart, 'seconds'> {
  layers: number;
  seconds: number; // loop seconds of this attempt so far
}

export interface LayerLoopResult {
  blocks: BlockSparsity[];
  times: PhaseTimes;
  permutations: Record<string, number[]>; // module name -> column order of its N:M mask (RIA --permute)
}

/** The values of scalar tensors, in one read (the tensors stay the caller's). */
async function readScalars(ts: tf.Scalar[]): Promise<Float32Array | Int32Array | Uint8Array> {
  const stacked = tf.stack(ts);
  try {
    return await stacked.data();
  } finally {
    stacked.dispose();
  }
}

function now(): number {
  return performance.now() / 1000;
}

/** Activations parked in JS memory (Kernels.park 'js-memory'). */
type ParkedInputs = { values: Float32Array; shape: [number, number, number] }[];

/** Copy activations to JS memory and free them on the backend. */
async function parkInputs(inputs: tf.Tensor3D[]): Promise<ParkedInputs> {
  const host: ParkedInputs = [];
  for (const x of inputs) host.push({ values: (await x.data()) as Float32Array, shape: x.shape });
  tf.dispose(inputs);
  return host;
}

/** Move a block's linear weights ([in, out]) out of the backend into JS arrays (freeing the tensors). */
async function parkLinears(block: BlockWeights): Promise<Map<LinearName, Float32Array>> {
  const parked = new Map<LinearName, Float32Array>();
  // (wasm only: never held in chunks)
  for (const n of LINEAR_NAMES) parked.set(n, (await wholeWT(block.linears[n], n).data()) as Float32Array);
  for (const n of LINEAR_NAMES) tf.dispose(linearParts(block.linears[n])); // after all reads: a failed read leaves the block whole
  return parked;
}

/** A LlamaModel holding no weights (1-row placeholders): for `block(i, x, tap, weights)` only. */
function blockRunner(c: LlamaConfig, kernels: Kernels): LlamaModel {
  return new LlamaModel(c, tf.zeros([1, c.hiddenSize]), tf.ones([c.hiddenSize]), null, new Array(c.numLayers).fill(null), kernels);
}

/**
 * The calibration windows embedded, batchSize windows per tensor. The embedding table (vocab x hidden float32:
 * 655 MB at 13B) is freed before the first block, so that it does not sit beside the block weights; on the wasm
 * backend (a 4 GB heap) a 13B-wide block does not fit beside it.
 */
function embedWindows(ckpt: Checkpoint, calibration: CalibrationSet, batchSize: number): tf.Tensor3D[] {
  const embedder = LlamaModel.fromCheckpoint(ckpt, { blocks: false, head: false });
  const inputs: tf.Tensor3D[] = [];
  try {
    const w = calibration.windows.map((x) => x.ids);
    for (let i = 0; i < w.length; i += batchSize) inputs.push(embedder.embed(w.slice(i, i + batchSize)));
    return inputs;
  } catch (e) {
    tf.dispose(inputs);
    throw e;
  } finally {
    embedder.dispose();
  }
}

/** The plan of `o`: given, or one method and target for every linear. */
function planOf(o: LayerLoopOptions): PrunePlan {
  if (o.plan) return o.plan;
  if (!o.method || !o.prune) throw new ConfigError('runLayerLoop: give a plan, or a method and prune options');
  return buildPlan(o.checkpoint.config, { method: o.method, target: o.prune, ...(o.optionName ? { optionName: o.optionName } : {}) });
}

/** What each input group's statistics must collect, over the block's planned linears (and `inspect`). */
function statNeeds(plan: PrunePlan, extra: readonly StatName[]): Map<string, Set<StatName>> {
  const needs = new Map<string, Set<StatName>>();
  for (const b of plan.blocks) {
    for (const n of LINEAR_NAMES) {
      const g = INPUT_GROUP[n];
      const set = needs.get(`${b.layer}/${g}`) ?? new Set<StatName>(extra);
      const e = b.linears[n];
      if (e) {
        for (const x of e.method.stats) set.add(x);
        if (e.refine) for (const x of e.refine.refiner.stats) set.add(x);
      }
      needs.set(`${b.layer}/${g}`, set);
    }
  }
  return needs;
}

/** Check N:M shapes of every planned linear before any work. */
function checkShapes(c: LlamaConfig, plan: PrunePlan, name: OptionName): void {
  for (const b of plan.blocks) {
    for (const n of LINEAR_NAMES) {
      const e = b.linears[n];
      if (!e || e.target.structure.kind !== 'nm') continue;
      const inp = linearShape(c, n)[1];
      const { m } = e.target.structure;
      if (inp % m !== 0) {
        throw new ConfigError(`${name('structure')} ${describeStructure(e.target.structure)}: ${n} has ${inp} inputs, not a multiple of ${m}`);
      }
    }
  }
}

/** The loop's options checked before any work: calibration data when some statistic needs it, batch size, N:M shapes. */
function checkLoopOptions(o: LayerLoopOptions, plan: PrunePlan, useData: boolean, name: OptionName): void {
  if (useData && !o.calibration) {
    const who = o.method?.name ?? plan.blocks.flatMap((b) => Object.values(b.linears)).find((e) => e && e.method.stats.length > 0)?.method.name ?? 'this plan';
    throw new ConfigError(`method ${who} needs calibration data (${name('calibration')})`);
  }
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
    throw new ConfigError(`${name('batchSize')} must be a positive integer, got ${o.batchSize}`);
  }
  checkShapes(o.checkpoint.config, plan, name);
}

/** What pruning a linear leaves beside its weight: RIA's permutations (by module name), ADMM's reconstruction errors. */
interface LinearNotes {
  permutations: Record<string, number[]>;
  reconstruction: Partial<Record<LinearName, Reconstruction>>; // the current block's
}

/**
 * The refusal of a weight held in row chunks (on webgpu, over the binding limit) by a method or refiner without a
 * chunked form: names the linear, its size, the limit and the method.
 */
function chunkRefusal(who: string, e: LinearPlan, rows: readonly tf.Tensor2D[]): UnsupportedError {
  const [out, inp] = [rows.reduce((a, w) => a + w.shape[0], 0), rows[0]!.shape[1]];
  return new UnsupportedError(
    `${who} cannot prune ${e.ref.name} [${out}, ${inp}] (${sizeText(4 * out * inp)}): over the ${sizeText(bindingLimitBytes())} this ` +
      `WebGPU adapter binds per tensor, it is held in ${rows.length} row chunks, and ${who} needs it whole; ` +
      'use a GPU with a larger limit, another method, or --backend wasm',
  );
}

/** The method's result for `rows` (one chunk: `prune` itself; several: its `pruneRows`). */
async function methodRows(rows: readonly tf.Tensor2D[], e: LinearPlan, stats: ActivationStats | null): Promise<RowsPruneResult> {
  const s = e.method.stats.length > 0 ? stats : null;
  if (rows.length > 1) {
    if (!e.method.pruneRows) throw chunkRefusal(`method ${e.method.name}`, e, rows);
    return e.method.pruneRows(rows, s, e.target, e.options, e.ref);
  }
  return asRows(await e.method.prune(rows[0]!, s, e.target, e.options, e.ref));
}

/** A result for one weight as the result for its one row chunk. */
function asRows({ weight, mask, ...rest }: PruneResult): RowsPruneResult {
  return { weights: [weight], masks: [mask], ...rest };
}

/** The refiner's weights for `rows` and the method's `masks` (freed by the caller); records ADMM's reconstruction. */
async function refinedRows(rows: readonly tf.Tensor2D[], masks: tf.Tensor2D[], e: LinearPlan, stats: ActivationStats, notes: LinearNotes): Promise<tf.Tensor2D[]> {
  const { refiner, options } = e.refine!;
  const chunked = rows.length > 1;
  if (refiner.update) {
    if (chunked && !refiner.updateRows) throw chunkRefusal(`refiner ${refiner.name}`, e, rows);
    const updated = chunked ? await refiner.updateRows!(rows, masks, stats, e.target, options) : asRows(await refiner.update(rows[0]!, masks[0]!, stats, e.target, options));
    tf.dispose(updated.masks);
    if (updated.reconstruction) notes.reconstruction[e.ref.linear] = updated.reconstruction;
    return updated.weights;
  }
  if (chunked && !refiner.refineRows) throw chunkRefusal(`refiner ${refiner.name}`, e, rows);
  const refined = chunked ? await refiner.refineRows!(rows, masks, stats, e.target, options) : [await refiner.refine(rows[0]!, masks[0]!, stats, e.target, options)];
  try {
    return tf.tidy(() => rows.map((w, i) => applyMask(w, refined[i]!)));
  } finally {
    tf.dispose(refined);
  }
}

/**
 * Prune one linear by its plan entry: the method, then the refiner. `rows`: its [out, in] weight, or on webgpu its row
 * chunks when it is over the binding limit. Returns the new weight in the same chunks.
 */
async function pruneLinear(rows: readonly tf.Tensor2D[], e: LinearPlan, stats: ActivationStats | null, notes: LinearNotes): Promise<tf.Tensor2D[]> {
  const result = await methodRows(rows, e, stats);
  if (result.permutation) notes.permutations[e.ref.name] = result.permutation;
  if (result.reconstruction) notes.reconstruction[e.ref.linear] = result.reconstruction;
  if (!e.refine) {
    tf.dispose(result.masks);
    return result.weights;
  }
  try {
    return await refinedRows(rows, result.masks, e, stats!, notes);
  } finally {
    tf.dispose([...result.masks, ...result.weights]);
  }
}

/** One run of the loop: its fixed inputs and the state that goes from block to block (what a resume state stores). */
interface Loop {
  o: LayerLoopOptions;
  plan: PrunePlan;
  c: LlamaConfig;
  needs: Map<string, Set<StatName>>; // per `${layer}/${input group}`
  model: LlamaModel | null; // runs blocks; null when no statistic is needed (magnitude)
  pool: ForwardPool | null; // runs the blocks' forwards instead, in worker threads (null: in-process)
  park: boolean; // Kernels.park === 'js-memory'
  fp: typeof failpoint; // resume.ts's test hooks (a no-op in a loop that writes nothing)
  started: number; // now() when this attempt started
  first: number; // the first block of this attempt
  inputs: tf.Tensor3D[]; // the current block's inputs, owned by the loop
  blocks: BlockSparsity[];
  times: PhaseTimes;
  forwardTokens: number;
  permutations: Record<string, number[]>;
  reconstruction: Partial<Record<LinearName, Reconstruction>>; // the current block's (ADMM), reset per block
}

/** Call onCheckpoint: blocks < nextLayer are written; the resume state it stores counts as writing time. */
async function checkpointLoop(s: Loop, nextLayer: number): Promise<void> {
  if (!s.o.onCheckpoint) return;
  const t = now();
  const { inputs, blocks, times, forwardTokens, permutations } = s;
  await s.o.onCheckpoint({ nextLayer, layers: s.c.numLayers, inputs, blocks, times, forwardTokens, permutations, seconds: t - s.started });
  s.times.write += now() - t;
}

/**
 * Step 1: run the unpruned block over the inputs while the taps feed each input group's statistics. Returns the
 * statistics by input group (the caller's to free; freed here when the forward throws).
 */
async function collectStatistics(s: Loop, layer: number, block: BlockWeights): Promise<Map<string, ActivationStats>> {
  const stats = new Map<string, ActivationStats>();
  if (!s.model) return stats;
  const model = s.model;
  try {
    for (const n of LINEAR_NAMES) {
      const g = INPUT_GROUP[n];
      const want = s.needs.get(`${layer}/${g}`);
      if (!stats.has(g) && want && want.size > 0) stats.set(g, new ActivationStats(linearShape(s.c, n)[1], want));
    }
    let statTime = 0;
    const t = now();
    if (s.pool) {
      // the workers reduce each sample's statistics; they are folded here in input order, as in-process
      const r = await s.pool.blockPass(layer, block, s.inputs, new Map([...stats].map(([g, st]) => [g, st.needs])), false);
      const s0 = now();
      r.reductions!.forEach((m, i) => {
        for (const [g, samples] of m) stats.get(g)!.addReduced(samples, s.inputs[i]!.shape[1]);
      });
      statTime += now() - s0;
    }
    for (const x of s.pool ? [] : s.inputs) {
      const seen = new Set<string>();
      const out = model.block(layer, x, (name, input) => {
        const g = INPUT_GROUP[name];
        if (seen.has(g)) return; // q/k/v and gate/up share their input
        seen.add(g);
        const s0 = now();
        stats.get(g)?.add(input);
        statTime += now() - s0;
      }, block);
      out.dispose();
    }
    for (const x of s.inputs) s.forwardTokens += x.shape[0] * x.shape[1];
    s.times.calibrationForward += now() - t - statTime;
    s.times.statistics += statTime;
    return stats;
  } catch (e) {
    for (const st of stats.values()) st.dispose();
    throw e;
  }
}

/** The weight of linear `n` ([out, in], or its row chunks) pruned by its plan entry `e` (`rows` are consumed). */
async function prunedWeight(s: Loop, n: LinearName, e: LinearPlan, rows: tf.Tensor2D[], stats: Map<string, ActivationStats>): Promise<tf.Tensor2D[]> {
  try {
    return await pruneLinear(rows, e, stats.get(INPUT_GROUP[n]) ?? null, { permutations: s.permutations, reconstruction: s.reconstruction });
  } finally {
    tf.dispose(rows);
  }
}

/**
 * Step 2, weights kept on the backend (Kernels.park 'none'): each planned linear replaced by its pruned weight. A
 * weight the model holds in chunks (webgpu, over the binding limit) is pruned in its row chunks.
 */
async function pruneLinearsInPlace(s: Loop, bp: BlockPlan, block: BlockWeights, stats: Map<string, ActivationStats>): Promise<void> {
  for (const n of LINEAR_NAMES) {
    const e = bp.linears[n];
    if (!e) continue;
    const pruned = await prunedWeight(s, n, e, linearWeightRows(block, n), stats);
    try {
      setLinearWeightRows(block, n, pruned);
    } finally {
      tf.dispose(pruned);
    }
  }
}

/**
 * Step 2 on wasm (Kernels.park 'js-memory'): the planned linears pruned one resident at a time, the others waiting
 * in JS memory (wasm's heap is 4 GB; a 13B block is 1.27 GB in float32 and pruning one linear takes several
 * transient copies of it). The block is whole again when this returns or throws.
 */
async function pruneLinearsParked(s: Loop, bp: BlockPlan, block: BlockWeights, stats: Map<string, ActivationStats>): Promise<void> {
  const parked = await parkLinears(block);
  try {
    for (const n of LINEAR_NAMES) {
      const e = bp.linears[n];
      if (!e) continue;
      const [out, inp] = linearShape(s.c, n);
      const w = tf.tidy(() => tf.transpose(tf.tensor2d(parked.get(n)!, [inp, out]))) as tf.Tensor2D; // [out, in]
      const pruned = await prunedWeight(s, n, e, [w], stats);
      try {
        const wT = tf.transpose(pruned[0]!); // back to [in, out], parked until the block is rebuilt
        parked.set(n, (await wT.data()) as Float32Array);
        wT.dispose();
      } finally {
        tf.dispose(pruned);
      }
    }
  } finally {
    for (const n of LINEAR_NAMES) {
      const [out, inp] = linearShape(s.c, n);
      block.linears[n] = { wT: tf.tensor2d(parked.get(n)!, [inp, out]), bias: block.linears[n].bias };
    }
  }
}

/** Zero fraction of a block's seven matrices, counted on the backend and read in one go (no sync per linear). */
async function blockSparsity(bp: BlockPlan, block: BlockWeights, reconstruction: Partial<Record<LinearName, Reconstruction>>): Promise<BlockSparsity> {
  const zeroCounts: tf.Scalar[] = [];
  try {
    for (const n of LINEAR_NAMES) {
      const parts = linearParts(block.linears[n]); // a zero count needs no layout, nor one tensor
      zeroCounts.push(parts.length === 1 ? tensorZeros(parts[0]!) : tf.tidy(() => tf.addN(parts.map(tensorZeros))));
    }
    const counts = await readScalars(zeroCounts);
    const matrices = {} as Record<LinearName, number>;
    let zeros = 0;
    let params = 0;
    LINEAR_NAMES.forEach((n, i) => {
      const size = linearParts(block.linears[n]).reduce((a, p) => a + p.size, 0);
      matrices[n] = counts[i]! / size;
      zeros += counts[i]!;
      params += size;
    });
    const errors = Object.keys(reconstruction).length > 0 ? { reconstruction: { ...reconstruction } } : {};
    return { layer: bp.layer, allocated: bp.sparsity, matrices, zeros, params, sparsity: zeros / params, ...errors };
  } finally {
    tf.dispose(zeroCounts);
  }
}

/** Steps 1 and 2: statistics from the unpruned block (and `inspect`), then its planned linears pruned. */
async function pruneBlock(s: Loop, bp: BlockPlan, block: BlockWeights): Promise<BlockSparsity> {
  const layer = bp.layer;
  const stats = await collectStatistics(s, layer, block);
  try {
    await s.o.inspect?.fn(layer, block, (n) => stats.get(INPUT_GROUP[n])!);
    s.fp('mid-block', layer);
    const t = now();
    s.reconstruction = {};
    if (s.park) await pruneLinearsParked(s, bp, block, stats);
    else await pruneLinearsInPlace(s, bp, block, stats);
    const sparsity = await blockSparsity(bp, block, s.reconstruction);
    s.times.prune += now() - t;
    return sparsity;
  } finally {
    for (const st of stats.values()) st.dispose();
  }
}

/** Step 3: the pruned block's outputs become the next block's inputs. */
async function reforward(s: Loop, layer: number, block: BlockWeights): Promise<void> {
  const t = now();
  const next = s.pool
    ? (await s.pool.blockPass(layer, block, s.inputs, null, true)).outputs!
    : s.inputs.map((x) => s.model!.block(layer, x, undefined, block));
  for (const x of s.inputs) x.dispose();
  s.inputs = next;
  for (const x of s.inputs) s.forwardTokens += x.shape[0] * x.shape[1];
  s.times.reforward += now() - t;
}

/** Step 4: the block's tensors to the output checkpoint. */
async function writeBlock(s: Loop, layer: number, block: BlockWeights, writer: CheckpointWriter): Promise<void> {
  const t = now();
  const arrays = [...(await blockWeightsToArrays(s.c, layer, block))];
  arrays.forEach(([name, values], i) => {
    writer.write(name, values);
    if (i === Math.floor(arrays.length / 2)) s.fp('writing', layer);
  });
  s.times.write += now() - t;
}

/**
 * Load block `layer`, run the four steps on it, free it. With parking, the inputs wait in JS memory while the block
 * loads: nothing small stays on the backend between blocks to fragment wasm's heap.
 */
async function runBlock(s: Loop, layer: number): Promise<void> {
  const bp = s.plan.blocks[layer];
  if (!bp || bp.layer !== layer) throw new ConfigError(`plan: no entry for block ${layer}`);
  const waiting = s.park ? await parkInputs(s.inputs) : null;
  if (waiting) s.inputs = [];
  const t = now();
  const block = loadBlockWeights(s.o.checkpoint, layer);
  s.times.load += now() - t;
  try {
    if (waiting) s.inputs = waiting.map((h) => tf.tensor3d(h.values, h.shape));
    s.blocks.push(await pruneBlock(s, bp, block));
    if (s.model && layer < s.c.numLayers - 1) await reforward(s, layer, block);
    s.o.onBlock?.(layer, block);
    if (s.o.writer) await writeBlock(s, layer, block, s.o.writer);
  } finally {
    disposeBlock(block);
  }
}

/** The progress event after block `layer`. */
function reportProgress(s: Loop, layer: number): void {
  const elapsed = now() - s.started;
  s.o.onProgress?.({
    layer,
    layers: s.c.numLayers,
    elapsed,
    eta: (elapsed / (layer + 1 - s.first)) * (s.c.numLayers - layer - 1),
    tokensPerSecond: elapsed > 0 ? s.forwardTokens / elapsed : 0,
    ...(s.o.inspect ? {} : { times: { ...s.times } }),
  });
}

/** The calibration forwards' worker pool, or null to run them in-process (see LayerLoopOptions.workers). */
async function calibrationPool(o: LayerLoopOptions, kernels: Kernels, needs: Map<string, Set<StatName>>, inputs: tf.Tensor3D[]): Promise<ForwardPool | null> {
  const n = calibrationWorkers(o.checkpoint.config, inputs, needs.values(), wantedWorkers(kernels, o.workers));
  if (n === 0) return null;
  try {
    return await ForwardPool.forBlocks(o.checkpoint.config, n, kernels);
  } catch (e) {
    platform().warn(`prune: calibration worker pool unavailable (${(e as Error).message}); running in-process`);
    return null;
  }
}

/**
 * Run the layer loop. Non-block tensors (embeddings, final norm, lm_head) are copied to the writer unchanged.
 * Returns per-block sparsity and phase times. tfjs memory is back to where it started when it returns or throws.
 */
export async function runLayerLoop(o: LayerLoopOptions): Promise<LayerLoopResult> {
  const plan = planOf(o);
  const c = o.checkpoint.config;
  const needs = statNeeds(plan, o.inspect?.needs ?? []);
  const useData = [...needs.values()].some((x) => x.size > 0);
  checkLoopOptions(o, plan, useData, o.optionName ?? optionKey);
  const kernels = o.kernels ?? activeKernels();
  // Non-block tensors go out unchanged (a resumed run wrote them before its first block).
  if (o.writer && !o.start) {
    for (const t of expectedTensors(c)) if (!t.name.startsWith('model.layers.')) o.writer.write(t.name, o.checkpoint.read(t.name));
  }
  const s: Loop = {
    o,
    plan,
    c,
    needs,
    // A model without weights of its own: block() with the caller-supplied block (RoPE tables and causal mask only).
    model: useData ? blockRunner(c, kernels) : null,
    pool: null,
    park: kernels.park === 'js-memory',
    // the test hooks of lib/prune/resume.ts fire in a loop that writes (not in OWL's first pass)
    fp: o.writer ? failpoint : (): void => undefined,
    started: now(),
    first: o.start?.nextLayer ?? 0,
    inputs: o.start ? o.start.inputs : [],
    blocks: o.start ? [...o.start.blocks] : [],
    times: o.start ? { ...o.start.times } : { load: 0, calibrationForward: 0, statistics: 0, prune: 0, reforward: 0, write: 0 },
    forwardTokens: o.start?.forwardTokens ?? 0,
    permutations: o.start ? { ...o.start.permutations } : {},
    reconstruction: {},
  };
  try {
    if (s.model && o.calibration && !o.start) s.inputs = embedWindows(o.checkpoint, o.calibration, o.batchSize);
    if (s.model) s.pool = await calibrationPool(o, kernels, needs, s.inputs);
    s.fp('after-setup', 0);
    if (!o.start) await checkpointLoop(s, 0);
    for (let layer = s.first; layer < c.numLayers; layer++) {
      await runBlock(s, layer);
      await checkpointLoop(s, layer + 1);
      s.fp('between-blocks', layer);
      reportProgress(s, layer);
    }
  } finally {
    for (const x of s.inputs) x.dispose();
    s.model?.dispose();
    await s.pool?.close();
  }
  return { blocks: s.blocks, times: s.times, permutations: s.permutations };
}
