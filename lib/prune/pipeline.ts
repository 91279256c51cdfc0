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
import { countTensorZeros } from '../model/sparsity.js';
import {
  LlamaModel,
  blockWeightsToArrays,
  disposeBlock,
  linearWeight,
  loadBlockWeights,
  setLinearWeight,
  type BlockWeights,
} from '../model/llama.js';
import type { CalibrationSet } from '../data/calibration.js';
import type { LayerStats, PruneMethod, PruneOptions } from './method.js';
import { describeStructure, validateOptions } from './mask.js';

/** Zero fraction of one block's matrices (the reference's check_sparsity). */
export interface BlockSparsity {
  layer: number;
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
}

/** Everything the layer loop needs. */
export interface LayerLoopOptions {
  checkpoint: Checkpoint;
  method: PruneMethod;
  prune: PruneOptions;
  calibration: CalibrationSet | null; // null for methods without calibration
  batchSize: number; // calibration samples per forward; results do not depend on it
  writer: CheckpointWriter | null; // where blocks go (null: keep nothing, e.g. tests that inspect `onBlock`)
  onProgress?: (p: PruneProgress) => void;
  /** Called with each pruned block before it is written and freed (the block is owned by the loop). */
  onBlock?: (layer: number, block: BlockWeights) => void;
}

export interface LayerLoopResult {
  blocks: BlockSparsity[];
  times: PhaseTimes;
}

function now(): number {
  return performance.now() / 1000;
}


/**
 * Run the layer loop. Non-block tensors (embeddings, final norm, lm_head) are copied to the writer unchanged.
 * Returns per-block sparsity and phase times. tfjs memory is back to where it started when it returns or throws.
 */
export function runLayerLoop(o: LayerLoopOptions): LayerLoopResult {
  validateOptions(o.prune);
  const ckpt = o.checkpoint;
  const c = ckpt.config;
  if (o.method.needsCalibration && !o.calibration) {
    throw new ConfigError(`method ${o.method.name} needs calibration data (--calibration FILE)`);
  }
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
    throw new ConfigError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  }
  if (o.prune.structure.kind === 'nm') {
    for (const n of LINEAR_NAMES) {
      const inp = linearShape(c, n)[1];
      if (inp % o.prune.structure.m !== 0) {
        throw new ConfigError(
          `--structure ${describeStructure(o.prune.structure)}: ${n} has ${inp} inputs, not a multiple of ${o.prune.structure.m}`,
        );
      }
    }
  }
  // Non-block tensors go out unchanged.
  if (o.writer) {
    for (const t of expectedTensors(c)) if (!t.name.startsWith('model.layers.')) o.writer.write(t.name, ckpt.read(t.name));
  }
  const times: PhaseTimes = { load: 0, calibrationForward: 0, statistics: 0, prune: 0, reforward: 0, write: 0 };
  const blocks: BlockSparsity[] = [];
  const useData = o.method.needsCalibration;
  // Embedding-only model: provides embed() and block() with caller-supplied weights.
  const model = useData ? LlamaModel.fromCheckpoint(ckpt, { blocks: false, head: false }) : null;
  let inputs: tf.Tensor3D[] = [];
  let forwardTokens = 0;
  const start = now();
  try {
    if (model && o.calibration) {
      const w = o.calibration.windows.map((x) => x.ids);
      for (let i = 0; i < w.length; i += o.batchSize) inputs.push(model.embed(w.slice(i, i + o.batchSize)));
    }
    for (let layer = 0; layer < c.numLayers; layer++) {
      let t = now();
      const block = loadBlockWeights(ckpt, layer);
      times.load += now() - t;
      try {
        // 1. statistics from the unpruned block (freed in the `finally` below, also when the forward throws)
        const stats = new Map<string, LayerStats>();
        const matrices = {} as Record<LinearName, number>;
        let zeros = 0;
        let params = 0;
        try {
          if (model) {
            for (const n of LINEAR_NAMES) {
              const g = INPUT_GROUP[n];
              if (!stats.has(g)) stats.set(g, o.method.createStats(linearShape(c, n)[1])!);
            }
            let statTime = 0;
            t = now();
            for (const x of inputs) {
              const seen = new Set<string>();
              const out = model.block(layer, x, (name, input) => {
                const g = INPUT_GROUP[name];
                if (seen.has(g)) return; // q/k/v and gate/up share their input
                seen.add(g);
                const s0 = now();
                stats.get(g)!.add(input);
                statTime += now() - s0;
              }, block);
              out.dispose();
              forwardTokens += x.shape[0] * x.shape[1];
            }
            times.calibrationForward += now() - t - statTime;
            times.statistics += statTime;
          }
          // 2. prune the seven linears
          t = now();
          for (const n of LINEAR_NAMES) {
            const w = linearWeight(block, n); // [out, in]
            let result;
            try {
              result = o.method.prune(w, stats.get(INPUT_GROUP[n]) ?? null, o.prune);
            } finally {
              w.dispose();
            }
            result.mask.dispose();
            try {
              setLinearWeight(block, n, result.weight);
              const z = countTensorZeros(result.weight);
              matrices[n] = z / result.weight.size;
              zeros += z;
              params += result.weight.size;
            } finally {
              result.weight.dispose();
            }
          }
        } finally {
          for (const s of stats.values()) s.dispose();
        }
        times.prune += now() - t;
        blocks.push({ layer, matrices, zeros, params, sparsity: zeros / params });
        // 3. pruned block -> next block's inputs
        if (model && layer < c.numLayers - 1) {
          t = now();
          const next = inputs.map((x) => model.block(layer, x, undefined, block));
          for (const x of inputs) x.dispose();
          inputs = next;
          for (const x of inputs) forwardTokens += x.shape[0] * x.shape[1];
          times.reforward += now() - t;
        }
        // 4. write out
        o.onBlock?.(layer, block);
        if (o.writer) {
          t = now();
          for (const [name, values] of blockWeightsToArrays(c, layer, block)) o.writer.write(name, values);
          times.write += now() - t;
        }
      } finally {
        disposeBlock(block);
      }
      const elapsed = now() - start;
      o.onProgress?.({
        layer,
        layers: c.numLayers,
        elapsed,
        eta: (elapsed / (layer + 1)) * (c.numLayers - layer - 1),
        tokensPerSecond: elapsed > 0 ? forwardTokens / elapsed : 0,
      });
    }
  } finally {
    for (const x of inputs) x.dispose();
    model?.dispose();
  }
  return { blocks, times };
}
