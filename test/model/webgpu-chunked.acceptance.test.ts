/**
 * Linear weights over the WebGPU binding limit, on the WebGPU adapter (Mesa's llvmpipe where there is no GPU), with
 * the limit forced small (`forceBindingLimit`) on a tiny model written in code (hidden 64, intermediate 128): at
 * 16 KiB the MLP linears ([128, 64] and [64, 128], 32 KiB) are held in two row chunks each, the attention linears
 * (16 KiB) whole, the embedding and lm_head in 32 chunks. The forward matches the unchunked forward (the hidden states
 * bit for bit, the logits within float32 rounding: see below); every method and
 * refiner prunes to the masks of the unchunked run (the weights equal, or within float32 summation order for the
 * methods that update them); a method without a chunked form is refused by name; tfjs memory does not grow.
 * The method-level equality on more cases (ties, the Wanda variant, N:M rounds) is in test/prune/rows.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationSet } from '../../lib/data/calibration.js';
import { UnsupportedError } from '../../lib/errors.js';
import { LINEAR_NAMES, linearTensorName } from '../../lib/model/architecture.js';
import { initBackend } from '../../lib/model/backend.js';
import { forceBindingLimit } from '../../lib/model/binding.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearWeightRows } from '../../lib/model/llama.js';
import { loadModel } from '../../lib/model/load.js';
import { adapterLine } from '../../lib/model/webgpu.js';
import type { PruneMethod, PruneOptions } from '../../lib/prune/method.js';
import { owlAllocate } from '../../lib/prune/owl.js';
import { runLayerLoop, type BlockSparsity } from '../../lib/prune/pipeline.js';
import { buildPlan } from '../../lib/prune/plan.js';
import { getMethod, getRefiner } from '../../lib/prune/registry.js';
import { randomCalibration } from '../helpers/newer-layers.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const LIMIT = 16 << 10;
const UNSTRUCTURED: PruneOptions = { sparsity: 0.5, structure: { kind: 'unstructured' } };
const NM24: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };
/** The [in, in] statistics of down_proj's input (128 x 128: 64 KiB) are over the limit: those runs leave it out. */
const NOT_DOWN = ['re:.*down_proj'];

let tmp: string;
let tiny: TinyCheckpoint;
let ckpt: Checkpoint;
let calibration: CalibrationSet;

beforeAll(async () => {
  const info = await initBackend('webgpu');
  process.stderr.write(`chunked-weight tests on: ${adapterLine(info.adapter!)}\n`);
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-chunked-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 9, numKvHeads: 2 });
  ckpt = Checkpoint.open(tiny.dir);
  calibration = randomCalibration(5, 4, 12, tiny.config.vocabSize); // batches of 2 x 12 tokens: MLP outputs of 12 KiB
}, 300_000);

afterAll(async () => {
  forceBindingLimit(null);
  ckpt?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  await initBackend('wasm', { threads: 1 });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('a binding limit forced small: linears held in row chunks', () => {
  test('the forward in chunks gives the unchunked hidden states and logits; too many tokens are refused by name', async () => {
    const ids = [Array.from({ length: 12 }, (_, i) => 5 + 7 * i), Array.from({ length: 12 }, (_, i) => 900 + 3 * i)];
    const run = async (limit: number | null): Promise<{ hidden: Float32Array; logits: Float32Array; parts: number[] }> => {
      forceBindingLimit(limit);
      const m = await loadModel(tiny.dir);
      try {
        const h = m.model.hidden(ids);
        const l = m.model.logits([ids[0]!.slice(0, 2)]); // 2 x 2048 logits: 16 KiB
        const out = { hidden: (await h.data()) as Float32Array, logits: (await l.data()) as Float32Array, parts: LINEAR_NAMES.map((n) => m.model.blocks[0]!.linears[n].parts?.length ?? 1) };
        tf.dispose([h, l]);
        if (limit !== null) {
          const long = [ids[0]!.concat(ids[0]!.slice(0, 8)), ids[1]!.concat(ids[1]!.slice(0, 8))]; // 40 tokens: [40, 128] is 20 KiB
          expect(() => m.model.hidden(long)).toThrow(UnsupportedError);
          const before = tf.memory().numTensors; // (after the model made its RoPE table and mask for 20 positions)
          expect(() => m.model.hidden(long)).toThrow(/the output of model\.layers\.0\.mlp\.gate_proj for 40 tokens \[40, 128\] is 20\.0 KiB, over the 16\.0 KiB this WebGPU adapter binds per tensor .*run fewer tokens per forward/);
          expect(tf.memory().numTensors).toBe(before);
        }
        return out;
      } finally {
        m.dispose();
      }
    };
    try {
      const whole = await run(null);
      const chunked = await run(LIMIT);
      expect(whole.parts).toEqual([1, 1, 1, 1, 1, 1, 1]);
      expect(chunked.parts).toEqual([1, 1, 1, 1, 2, 2, 2]); // q k v o whole (16 KiB), gate up down in two chunks
      process.stderr.write(`chunked forward: hidden max |diff| ${maxAbsDiff(chunked.hidden, whole.hidden)}, logits ${maxAbsDiff(chunked.logits, whole.logits)}\n`);
      expect(maxAbsDiff(chunked.hidden, whole.hidden)).toBe(0);
      // the head's 32 chunks have 2 x 64 outputs each: tfjs-webgpu sums matMuls of <= 128 outputs by a tree reduction
      // (MatMulReduceProgram), the whole head sequentially, so the logits differ by float32 rounding (1.4e-6 measured)
      expect(maxAbsDiff(chunked.logits, whole.logits)).toBeLessThan(1e-5);
    } finally {
      forceBindingLimit(null);
    }
  });
});

interface Run {
  method: string;
  target: PruneOptions;
  methodOptions?: Record<string, unknown>;
  refine?: string;
  refinerOptions?: Record<string, unknown>;
  ignore?: string[];
  updates?: boolean; // the method or refiner updates weights: equal within float32 summation order
}

const RUNS: Record<string, Run> = {
  'magnitude 50%': { method: 'magnitude', target: UNSTRUCTURED },
  'wanda 50%': { method: 'wanda', target: UNSTRUCTURED },
  'wanda 2:4': { method: 'wanda', target: NM24 },
  'wanda --use-variant': { method: 'wanda', target: UNSTRUCTURED, methodOptions: { variant: true } },
  'ria 50%': { method: 'ria', target: UNSTRUCTURED },
  'ria 2:4 --permute': { method: 'ria', target: NM24, methodOptions: { permute: true } },
  'wanda + dsnot 50%': { method: 'wanda', target: UNSTRUCTURED, refine: 'dsnot', refinerOptions: { skipLayer: 'no_skip' } },
  'sparsegpt 50% (blocks of 16 columns)': { method: 'sparsegpt', target: UNSTRUCTURED, methodOptions: { blocksize: 16 }, ignore: NOT_DOWN, updates: true },
  'sparsegpt 2:4': { method: 'sparsegpt', target: NM24, ignore: NOT_DOWN, updates: true },
  'admm 50%': { method: 'admm', target: UNSTRUCTURED, methodOptions: { iters: 6, rounds: 4 }, ignore: NOT_DOWN, updates: true },
  'admm 2:4': { method: 'admm', target: NM24, methodOptions: { iters: 6, rounds: 4 }, ignore: NOT_DOWN, updates: true },
  'wanda + admm update': { method: 'wanda', target: UNSTRUCTURED, refine: 'admm', refinerOptions: { iters: 4 }, ignore: NOT_DOWN, updates: true },
};

/** One pruning run at `limit`: every linear's [out, in] weight after pruning, and the loop's sparsity report. */
async function pruneAt(limit: number | null, r: Run): Promise<{ weights: Map<string, Float32Array>; blocks: BlockSparsity[]; chunked: number }> {
  forceBindingLimit(limit);
  const kept: [string, tf.Tensor2D[]][] = [];
  let chunked = 0;
  const before = tf.memory().numTensors;
  try {
    const plan = buildPlan(ckpt.config, {
      method: getMethod(r.method),
      methodOptions: r.methodOptions,
      target: r.target,
      ...(r.refine ? { refiner: getRefiner(r.refine), refinerOptions: r.refinerOptions } : {}),
      ...(r.ignore ? { ignore: r.ignore } : {}),
    });
    const result = await runLayerLoop({
      checkpoint: ckpt,
      plan,
      calibration,
      batchSize: 2,
      writer: null,
      onBlock: (layer, block) => {
        for (const n of LINEAR_NAMES) {
          if (block.linears[n].parts) chunked++;
          kept.push([linearTensorName(layer, n), linearWeightRows(block, n)]);
        }
      },
    });
    const weights = new Map<string, Float32Array>();
    for (const [name, rows] of kept) {
      const parts: Float32Array[] = [];
      for (const t of rows) parts.push((await t.data()) as Float32Array);
      const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
      weights.set(name, all);
    }
    return { weights, blocks: result.blocks, chunked };
  } finally {
    for (const [, rows] of kept) tf.dispose(rows);
    forceBindingLimit(null);
    expect(tf.memory().numTensors).toBe(before);
  }
}

describe('every method and refiner on chunked linears: the masks of the unchunked run', () => {
  test.each(Object.entries(RUNS))('%s', async (_name, r) => {
    const whole = await pruneAt(null, r);
    const chunked = await pruneAt(LIMIT, r);
    expect([whole.chunked, chunked.chunked]).toEqual([0, 2 * 3]); // gate, up, down of both blocks
    let worst = 0;
    for (const [name, want] of whole.weights) {
      const got = chunked.weights.get(name)!;
      expect([name, Array.from(got, (v) => (v === 0 ? 1 : 0))]).toEqual([name, Array.from(want, (v) => (v === 0 ? 1 : 0))]);
      worst = Math.max(worst, maxAbsDiff(got, want));
    }
    process.stderr.write(`${_name}: weights max |chunked - whole| ${worst}\n`);
    if (r.updates) expect(worst).toBeLessThan(1e-5);
    else expect(worst).toBe(0);
    expect(chunked.blocks.map((b) => b.matrices)).toEqual(whole.blocks.map((b) => b.matrices));
    expect(whole.blocks[0]!.sparsity).toBeGreaterThan(0.2); // something was pruned
  });

  test("OWL's outlier ratios from chunked linears are the unchunked ones", async () => {
    const ratios = async (limit: number | null): Promise<number[]> => {
      forceBindingLimit(limit);
      try {
        return (await owlAllocate(ckpt, calibration, 2, 0.5, { lambda: 0.08, m: 5 })).ratios;
      } finally {
        forceBindingLimit(null);
      }
    };
    expect(await ratios(LIMIT)).toEqual(await ratios(null));
  });

  test('a method without a chunked form is refused naming the method, the linear and the limit; nothing leaks', async () => {
    const wanda = getMethod('wanda');
    const whole: PruneMethod<unknown> = { ...wanda, name: 'whole-only' };
    delete whole.pruneRows; // a method without a chunked form
    forceBindingLimit(LIMIT);
    const before = tf.memory().numTensors;
    try {
      await expect(runLayerLoop({ checkpoint: ckpt, method: whole, prune: UNSTRUCTURED, calibration, batchSize: 2, writer: null })).rejects.toThrow(
        /method whole-only cannot prune model\.layers\.0\.mlp\.gate_proj \[128, 64\] \(32\.0 KiB\): over the 16\.0 KiB this WebGPU adapter binds per tensor, it is held in 2 row chunks/,
      );
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      forceBindingLimit(null);
    }
  });
});
