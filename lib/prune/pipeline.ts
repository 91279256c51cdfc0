/**
 * THE layer loop (REFERENCE.md section 2), written once for every method:
 *   embed the calibration windows; then for each decoder block:
 *     1. run it unpruned while the taps feed each linear's input to the method's statistics,
 *     2. prune its seven linears,
 *     3. run it again pruned: its outputs are the next block's inputs,
 *     4. write it to the output checkpoint and free it.
 * Only the current block's weights and the calibration activations are resident; blocks are read lazily from the
 * input safetensors and streamed into the output, so peak memory does not grow with the number of layers.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import type { Checkpoint, CheckpointWriter } from '../model/checkpoint.js';
import { INPUT_GROUP, LINEAR_NAMES, expectedTensors, linearShape, type LinearName } from '../model/architecture.js';
import { tensorZeros } from '../model/sparsity.js';
import {
  LlamaModel,
  blockWeightsToArrays,
  disposeBlock,
  loadBlockWeights,
  type BlockWeights,
} from '../model/llama.js';
import type { CalibrationSet } from '../data/calibration.js';
import { type PruneMethod, type PruneOptions } from './method.js';
import { applyMask, describeStructure } from './mask.js';
import { buildPlan, type LinearPlan, type PrunePlan } from './plan.js';
import { ActivationStats, type StatName } from './stats.js';
import { failpoint } from './resume.js';
import { activeBackend, kernels } from '../model/backend.js';
import { ForwardPool, calibrationWorkers } from '../model/forward-pool.js';

/** Zero fraction of one block's matrices (the reference's check_sparsity). */
export interface BlockSparsity {
  layer: number;
  allocated: number; // the plan's target sparsity of this block (OWL: per block)
  matrices: Record<LinearName, number>; // zero fraction of each linear weight
  zeros: number; // zeros over the seven matrices
  params: number; // weights in the seven matrices
  sparsity: number; // zeros / params
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
  inspect?: { needs: readonly StatName[]; fn: (layer: number, block: BlockWeights, stats: (n: LinearName) => ActivationStats) => void };
  /** Continue a killed run (lib/prune/resume.ts): non-block tensors and blocks < nextLayer are already written. */
  start?: LoopStart;
  /** Called when blocks < nextLayer are written (before block 0 too), with the next block's inputs (not consumed). */
  onCheckpoint?: (cp: LoopCheckpoint) => void | Promise<void>;
  /**
   * Worker threads for the calibration forwards (lib/model/forward-pool.ts); 1 runs them in-process. Default: the
   * active backend's threads when its kernels say `windows: 'workers'` (wasm). Masks do not depend on it.
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

/** Copy activations to JS memory and free them on the backend. */
async function parkInputs(inputs: tf.Tensor3D[]): Promise<{ values: Float32Array; shape: [number, number, number] }[]> {
  const host: { values: Float32Array; shape: [number, number, number] }[] = [];
  for (const x of inputs) host.push({ values: (await x.data()) as Float32Array, shape: x.shape });
  tf.dispose(inputs);
  return host;
}

/** Move a block's linear weights ([in, out]) out of the backend into JS arrays (freeing the tensors). */
async function parkLinears(block: BlockWeights): Promise<Map<LinearName, Float32Array>> {
  const parked = new Map<LinearName, Float32Array>();
  for (const n of LINEAR_NAMES) parked.set(n, (await block.linears[n].wT.data()) as Float32Array);
  for (const n of LINEAR_NAMES) block.linears[n].wT.dispose(); // after all reads: a failed read leaves the block whole
  return parked;
}

/** A LlamaModel holding no weights (1-row placeholders): for `block(i, x, tap, weights)` only. */
function blockRunner(c: Checkpoint['config']): LlamaModel {
  return new LlamaModel(c, tf.zeros([1, c.hiddenSize]), tf.ones([c.hiddenSize]), null, new Array(c.numLayers).fill(null));
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
  return buildPlan(o.checkpoint.config, { method: o.method, target: o.prune });
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
function checkShapes(ckpt: Checkpoint, plan: PrunePlan): void {
  for (const b of plan.blocks) {
    for (const n of LINEAR_NAMES) {
      const e = b.linears[n];
      if (!e || e.target.structure.kind !== 'nm') continue;
      const inp = linearShape(ckpt.config, n)[1];
      const { m } = e.target.structure;
      if (inp % m !== 0) {
        throw new ConfigError(`--structure ${describeStructure(e.target.structure)}: ${n} has ${inp} inputs, not a multiple of ${m}`);
      }
    }
  }
}

/** Prune one linear by its plan entry: the method, then the refiner. Returns the new [out, in] weight. */
function pruneLinear(w: tf.Tensor2D, e: LinearPlan, stats: ActivationStats | null, permutations: Record<string, number[]>): tf.Tensor2D {
  const result = e.method.prune(w, e.method.stats.length > 0 ? stats : null, e.target, e.options, e.ref);
  if (result.permutation) permutations[e.ref.name] = result.permutation;
  if (!e.refine) {
    result.mask.dispose();
    return result.weight;
  }
  try {
    const mask = e.refine.refiner.refine(w, result.mask, stats!, e.target, e.refine.options);
    try {
      return applyMask(w, mask);
    } finally {
      mask.dispose();
    }
  } finally {
    result.mask.dispose();
    result.weight.dispose();
  }
}

/** The calibration forwards' worker pool, or null to run them in-process (see LayerLoopOptions.workers). */
async function calibrationPool(o: LayerLoopOptions, c: Checkpoint['config'], needs: Map<string, Set<StatName>>, inputs: tf.Tensor3D[]): Promise<ForwardPool | null> {
  const wanted = o.workers ?? (kernels().windows === 'workers' ? (activeBackend()?.threads ?? 1) : 1);
  const n = calibrationWorkers(c, inputs, needs.values(), wanted);
  if (n === 0) return null;
  try {
    return await ForwardPool.forBlocks(c, n);
  } catch (e) {
    process.emitWarning(`prune: calibration worker pool unavailable (${(e as Error).message}); running in-process`);
    return null;
  }
}

/**
 * Run the layer loop. Non-block tensors (embeddings, final norm, lm_head) are copied to the writer unchanged.
 * Returns per-block sparsity and phase times. tfjs memory is back to where it started when it returns or throws.
 */
export async function runLayerLoop(o: LayerLoopOptions): Promise<LayerLoopResult> {
  const plan = planOf(o);
  const ckpt = o.checkpoint;
  const c = ckpt.config;
  const needs = statNeeds(plan, o.inspect?.needs ?? []);
  const useData = [...needs.values()].some((s) => s.size > 0);
  if (useData && !o.calibration) {
    const who = o.method?.name ?? plan.blocks.flatMap((b) => Object.values(b.linears)).find((e) => e && e.method.stats.length > 0)?.method.name ?? 'this plan';
    throw new ConfigError(`method ${who} needs calibration data (--calibration FILE)`);
  }
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
    throw new ConfigError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  }
  checkShapes(ckpt, plan);
  const first = o.start?.nextLayer ?? 0;
  // Non-block tensors go out unchanged (a resumed run wrote them before its first block).
  if (o.writer && !o.start) {
    for (const t of expectedTensors(c)) if (!t.name.startsWith('model.layers.')) o.writer.write(t.name, ckpt.read(t.name));
  }
  const times: PhaseTimes = o.start ? { ...o.start.times } : { load: 0, calibrationForward: 0, statistics: 0, prune: 0, reforward: 0, write: 0 };
  const blocks: BlockSparsity[] = o.start ? [...o.start.blocks] : [];
  const permutations: Record<string, number[]> = o.start ? { ...o.start.permutations } : {};
  // A model without weights of its own: block() with the caller-supplied block (RoPE tables and causal mask only).
  const model = useData ? blockRunner(c) : null;
  let inputs: tf.Tensor3D[] = o.start ? o.start.inputs : [];
  let forwardTokens = o.start?.forwardTokens ?? 0;
  let pool: ForwardPool | null = null;
  const start = now();
  // the test hooks of lib/prune/resume.ts fire in a loop that writes (not in OWL's first pass)
  const fp = o.writer ? failpoint : (): void => undefined;
  const checkpoint = async (nextLayer: number): Promise<void> => {
    if (!o.onCheckpoint) return;
    const t = now();
    await o.onCheckpoint({ nextLayer, layers: c.numLayers, inputs, blocks, times, forwardTokens, permutations, seconds: t - start });
    times.write += now() - t; // the resume state (shards synced, activations stored) counts as writing
  };
  try {
    if (model && o.calibration && !o.start) inputs = embedWindows(ckpt, o.calibration, o.batchSize);
    if (model) pool = await calibrationPool(o, c, needs, inputs);
    fp('after-setup', 0);
    if (!o.start) await checkpoint(0);
    for (let layer = first; layer < c.numLayers; layer++) {
      const bp = plan.blocks[layer];
      if (!bp || bp.layer !== layer) throw new ConfigError(`plan: no entry for block ${layer}`);
      // The activations wait in JS memory while the block loads: nothing small stays on the backend between blocks
      // to fragment wasm's heap (at 13B a block and its pruning transients take most of the 4 GB).
      const waiting = await parkInputs(inputs);
      inputs = [];
      let t = now();
      const block = loadBlockWeights(ckpt, layer);
      times.load += now() - t;
      try {
        inputs = waiting.map((h) => tf.tensor3d(h.values, h.shape));
        // 1. statistics from the unpruned block (freed in the `finally` below, also when the forward throws)
        const stats = new Map<string, ActivationStats>();
        const matrices = {} as Record<LinearName, number>;
        let zeros = 0;
        let params = 0;
        const zeroCounts: tf.Scalar[] = []; // one per linear, read together after the block (no sync per op)
        try {
          if (model) {
            for (const n of LINEAR_NAMES) {
              const g = INPUT_GROUP[n];
              const want = needs.get(`${layer}/${g}`);
              if (!stats.has(g) && want && want.size > 0) stats.set(g, new ActivationStats(linearShape(c, n)[1], want));
            }
            let statTime = 0;
            t = now();
            if (pool) {
              // the workers reduce each sample's statistics; they are folded here in input order, as in-process
              const r = await pool.blockPass(layer, block, inputs, new Map([...stats].map(([g, st]) => [g, st.needs])), false);
              const s0 = now();
              r.reductions!.forEach((m, i) => {
                for (const [g, samples] of m) stats.get(g)!.addReduced(samples, inputs[i]!.shape[1]);
              });
              statTime += now() - s0;
            }
            for (const x of pool ? [] : inputs) {
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
            for (const x of inputs) forwardTokens += x.shape[0] * x.shape[1];
            times.calibrationForward += now() - t - statTime;
            times.statistics += statTime;
          }
          o.inspect?.fn(layer, block, (n) => stats.get(INPUT_GROUP[n])!);
          fp('mid-block', layer);
          // 2. prune the planned linears, one resident at a time: the others wait in JS memory (wasm's heap is 4 GB; a
          //    13B block is 1.27 GB in float32 and pruning one linear takes several transient copies of it)
          t = now();
          const parked = await parkLinears(block);
          try {
            for (const n of LINEAR_NAMES) {
              const e = bp.linears[n];
              if (!e) continue;
              const [out, inp] = linearShape(c, n);
              const w = tf.tidy(() => tf.transpose(tf.tensor2d(parked.get(n)!, [inp, out]))) as tf.Tensor2D; // [out, in]
              let pruned: tf.Tensor2D;
              try {
                pruned = pruneLinear(w, e, stats.get(INPUT_GROUP[n]) ?? null, permutations);
              } finally {
                w.dispose();
              }
              try {
                const wT = tf.transpose(pruned); // back to [in, out], parked until the block is rebuilt
                parked.set(n, (await wT.data()) as Float32Array);
                wT.dispose();
              } finally {
                pruned.dispose();
              }
            }
          } finally {
            for (const n of LINEAR_NAMES) {
              const [out, inp] = linearShape(c, n);
              block.linears[n].wT = tf.tensor2d(parked.get(n)!, [inp, out]);
            }
          }
          for (const n of LINEAR_NAMES) {
            zeroCounts.push(tensorZeros(block.linears[n].wT)); // zeros counted in the stored [in, out] layout
          }
          const counts = await readScalars(zeroCounts);
          LINEAR_NAMES.forEach((n, i) => {
            const size = block.linears[n].wT.size;
            matrices[n] = counts[i]! / size;
            zeros += counts[i]!;
            params += size;
          });
        } finally {
          for (const s of stats.values()) s.dispose();
          tf.dispose(zeroCounts);
        }
        times.prune += now() - t;
        blocks.push({ layer, allocated: bp.sparsity, matrices, zeros, params, sparsity: zeros / params });
        // 3. pruned block -> next block's inputs
        if (model && layer < c.numLayers - 1) {
          t = now();
          const next = pool ? (await pool.blockPass(layer, block, inputs, null, true)).outputs! : inputs.map((x) => model.block(layer, x, undefined, block));
          for (const x of inputs) x.dispose();
          inputs = next;
          for (const x of inputs) forwardTokens += x.shape[0] * x.shape[1];
          times.reforward += now() - t;
        }
        // 4. write out
        o.onBlock?.(layer, block);
        if (o.writer) {
          t = now();
          const arrays = [...(await blockWeightsToArrays(c, layer, block))];
          arrays.forEach(([name, values], i) => {
            o.writer!.write(name, values);
            if (i === Math.floor(arrays.length / 2)) fp('writing', layer);
          });
          times.write += now() - t;
        }
      } finally {
        disposeBlock(block);
      }
      await checkpoint(layer + 1);
      fp('between-blocks', layer);
      const elapsed = now() - start;
      o.onProgress?.({
        layer,
        layers: c.numLayers,
        elapsed,
        eta: (elapsed / (layer + 1 - first)) * (c.numLayers - layer - 1),
        tokensPerSecond: elapsed > 0 ? forwardTokens / elapsed : 0,
        ...(o.inspect ? {} : { times: { ...times } }),
      });
    }
  } finally {
    for (const x of inputs) x.dispose();
    model?.dispose();
    await pool?.close();
  }
  return { blocks, times, permutations };
}
