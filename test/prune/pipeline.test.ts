/**
 * The layer loop (lib/prune/pipeline.ts) on tiny random checkpoints: parity of the whole pipeline with an independent
 * replay of REFERENCE.md section 2 (test/helpers/reference-pipeline.ts: float64 forward, plain-loop methods), batch
 * size independence, exact per-row / per-group sparsity, tfjs memory, and option errors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationSet } from '../../lib/data/calibration.js';
import { CheckpointError, ConfigError } from '../../lib/errors.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearShape, linearTensorName } from '../../lib/model/architecture.js';
import { kernels as activeKernels, type Kernels } from '../../lib/model/backend.js';
import { LlamaModel, type BlockWeights, type Tap } from '../../lib/model/llama.js';
import { type PruneOptions, type Structure } from '../../lib/prune/method.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { runLayerLoop, type LayerLoopOptions, type LayerLoopResult } from '../../lib/prune/pipeline.js';
import { buildPlan } from '../../lib/prune/plan.js';
import { dsnot } from '../../lib/prune/dsnot.js';
import { getMethod, type MethodName } from '../../lib/prune/registry.js';
import { useTestBackend } from '../helpers/backend.js';
import { referencePipeline, unexplainedMaskDiffs, type RefMethod, type RefPipelineResult } from '../helpers/reference-pipeline.js';
import { TestRng, type RefStructure } from '../helpers/reference-prune.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const SEQ = 32; // tokens per calibration window
const WINDOWS = 4; // calibration windows (batch size 3 then gives batches of 3 and 1)

let tmp: string;
let tiny: TinyCheckpoint; // 2 layers, hidden 64, intermediate 128, 4 heads, 2 KV heads (GQA), F32
let ckpt: Checkpoint;
let calibration: CalibrationSet;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-pipeline-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 7, numKvHeads: 2 });
  ckpt = Checkpoint.open(tiny.dir);
  const rng = new TestRng(11);
  const windows = Array.from({ length: WINDOWS }, (_, doc) => ({
    doc,
    offset: 0,
    ids: Array.from({ length: SEQ }, () => Math.floor(rng.uniform() * tiny.config.vocabSize)),
  }));
  calibration = { windows, hash: 'synthetic' };
});

afterAll(() => {
  ckpt?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const UNSTRUCTURED: Structure = { kind: 'unstructured' };
const NM24: Structure = { kind: 'nm', n: 2, m: 4 };
const NM48: Structure = { kind: 'nm', n: 4, m: 8 };

/** A target, and Wanda's variant flag (a method option). */
type TestOptions = PruneOptions & { useVariant?: boolean };

function opts(structure: Structure, sparsity = 0.5, useVariant = false): TestOptions {
  return {
    sparsity: structure.kind === 'nm' ? structure.n / structure.m : sparsity,
    structure,
    ...(useVariant ? { useVariant: true } : {}),
  };
}

function refStructure(p: PruneOptions): RefStructure {
  return p.structure.kind === 'nm' ? { kind: 'nm', n: p.structure.n, m: p.structure.m } : { kind: 'unstructured', sparsity: p.sparsity };
}

/** Pruned linear weights ([out, in] float32, Hugging Face names) of every block, read in `onBlock`. */
type Pruned = Map<string, Float32Array>;

async function runLibrary(
  method: MethodName,
  prune: TestOptions,
  batchSize = 1,
  extra: Partial<LayerLoopOptions> = {}, // kernels, workers
): Promise<{ pruned: Pruned; result: LayerLoopResult }> {
  const pruned: Pruned = new Map();
  const { useVariant, ...target } = prune;
  const result = await runLayerLoop({
    checkpoint: ckpt,
    plan: buildPlan(ckpt.config, { method: getMethod(method), methodOptions: useVariant ? { variant: true } : {}, target }),
    calibration,
    batchSize,
    writer: null,
    ...extra,
    onBlock: (layer: number, block: BlockWeights) => {
      for (const n of LINEAR_NAMES) {
        const w = tf.transpose(block.linears[n].wT!); // [in, out] -> [out, in]
        pruned.set(linearTensorName(layer, n), Float32Array.from(w.dataSync()));
        w.dispose();
      }
    },
  });
  return { pruned, result };
}

function runReference(method: RefMethod, p: TestOptions, fault?: 'stats-after-pruning' | 'propagate-unpruned'): RefPipelineResult {
  return referencePipeline(tiny.raw, tiny.tensors, {
    method,
    structure: refStructure(p),
    ...(p.useVariant ? { useVariant: true } : {}),
    windows: calibration.windows.map((w) => w.ids),
    ...(fault ? { fault } : {}),
  });
}

const removed = (w: Float32Array): Uint8Array => Uint8Array.from(w, (v) => (v === 0 ? 1 : 0));

function maskDiffCount(lib: Pruned, ref: RefPipelineResult): number {
  let diff = 0;
  ref.layers.forEach((layer, l) => {
    for (const n of LINEAR_NAMES) {
      const got = removed(lib.get(linearTensorName(l, n))!);
      got.forEach((v, i) => {
        if (v !== layer[n].mask[i]) diff++;
      });
    }
  });
  return diff;
}

/** Zeros per output row ([out, in] layout). */
function zerosPerRow(w: Float32Array, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let z = 0;
    for (let c = 0; c < cols; c++) if (w[r * cols + c] === 0) z++;
    return z;
  });
}

/** The library's BlockSparsity agrees with the zeros of the weights `onBlock` saw. */
function expectReportedSparsity(lib: { pruned: Pruned; result: LayerLoopResult }): void {
  expect(lib.result.blocks.map((b) => b.layer)).toEqual([0, 1]);
  for (const b of lib.result.blocks) {
    let zeros = 0;
    let params = 0;
    for (const n of LINEAR_NAMES) {
      const w = lib.pruned.get(linearTensorName(b.layer, n))!;
      const z = w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
      expect(b.matrices[n]).toBe(z / w.length);
      zeros += z;
      params += w.length;
    }
    expect(b.zeros).toBe(zeros);
    expect(b.params).toBe(params);
    expect(b.sparsity).toBe(zeros / params);
  }
}

describe('whole-pipeline parity with the independent reference replay (float64 forward, plain-loop methods)', () => {
  // Masks must match exactly. For the per-row methods the comparison would also accept swaps of two scores that are
  // equal within 1e-4 (float32 vs float64 activations can order those differently); on these seeds there are none.
  test.each([
    ['wanda', 'unstructured 0.5', opts(UNSTRUCTURED)],
    ['wanda', '2:4', opts(NM24)],
    ['wanda', '4:8', opts(NM48)],
  ] as [MethodName & RefMethod, string, TestOptions][])('%s %s: identical masks, kept weights untouched', async (method, _label, p) => {
    const lib = await runLibrary(method, p);
    const ref = runReference(method, p);
    let nearTies = 0;
    ref.layers.forEach((layer, l) => {
      for (const n of LINEAR_NAMES) {
        const name = linearTensorName(l, n);
        const got = lib.pruned.get(name)!;
        const d = unexplainedMaskDiffs(removed(got), layer[n], refStructure(p), 1e-4);
        expect({ name, unexplained: d.unexplained }).toEqual({ name, unexplained: 0 });
        nearTies += d.nearTies;
        // Wanda does not update weights: kept entries are the stored ones, bit for bit
        const stored = tiny.tensors.get(name)!;
        expect({ name, changed: got.reduce((a, v, i) => a + (v !== 0 && v !== stored[i] ? 1 : 0), 0) }).toEqual({ name, changed: 0 });
      }
    });
    expect(nearTies).toBe(0);
    expectReportedSparsity(lib);
  });

  test('wanda variant (alpha bisection per layer): identical masks', async () => {
    const p = opts(UNSTRUCTURED, 0.5, true);
    const lib = await runLibrary('wanda', p);
    expect(maskDiffCount(lib.pruned, runReference('wanda', p))).toBe(0);
    // rows end with different sparsities, the layer within 0.001 of the target
    const q = lib.pruned.get(linearTensorName(1, 'q_proj'))!;
    const [out, inp] = linearShape(tiny.config, 'q_proj');
    expect(new Set(zerosPerRow(q, out, inp)).size).toBeGreaterThan(1);
    for (const b of lib.result.blocks) for (const n of LINEAR_NAMES) expect(Math.abs(b.matrices[n] - 0.5)).toBeLessThanOrEqual(0.001 + 1e-7);
  });

  test.each([
    ['unstructured 0.5', opts(UNSTRUCTURED)],
    ['2:4', opts(NM24)],
  ] as [string, PruneOptions][])('magnitude %s: identical masks (no calibration data involved)', async (_label, p) => {
    const lib = await runLibrary('magnitude', p);
    expect(maskDiffCount(lib.pruned, runReference('magnitude', p))).toBe(0);
    expectReportedSparsity(lib);
  });

  test.each([
    ['unstructured 0.5', opts(UNSTRUCTURED)],
    ['2:4', opts(NM24)],
  ] as [string, PruneOptions][])('sparsegpt %s: identical masks, updated weights within 3e-5', async (_label, p) => {
    const lib = await runLibrary('sparsegpt', p);
    const ref = runReference('sparsegpt', p);
    expect(maskDiffCount(lib.pruned, ref)).toBe(0);
    let worst = 0;
    let changed = 0;
    ref.layers.forEach((layer, l) => {
      for (const n of LINEAR_NAMES) {
        const name = linearTensorName(l, n);
        const got = lib.pruned.get(name)!;
        const stored = tiny.tensors.get(name)!;
        got.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - (layer[n].weight[i] as number)));
          if (v !== 0 && v !== stored[i]) changed++;
        });
      }
    });
    expect(worst).toBeLessThanOrEqual(3e-5); // weights are O(0.1..0.5); measured ~3e-6 on wasm
    expect(changed).toBeGreaterThan(0); // SparseGPT updates the weights it keeps
    expectReportedSparsity(lib);
  });

  test.each([['wanda' as const], ['sparsegpt' as const]])(
    '%s: the comparison tells apart the wrong orders (o/down statistics after pruning q/k/v/gate/up; next block fed unpruned outputs)',
    async (method) => {
      const p = opts(UNSTRUCTURED);
      const lib = await runLibrary(method, p);
      const afterPruning = runReference(method, p, 'stats-after-pruning');
      const unprunedNext = runReference(method, p, 'propagate-unpruned');
      // hundreds of mask entries differ from what a correct pipeline gives (the correct one differs in none)
      expect(maskDiffCount(lib.pruned, afterPruning)).toBeGreaterThan(200);
      expect(maskDiffCount(lib.pruned, unprunedNext)).toBeGreaterThan(200);
      // and where they differ: block 0's q/k/v see the same inputs in every order; o_proj and down_proj do not
      const block0 = (r: RefPipelineResult, n: (typeof LINEAR_NAMES)[number]): number => {
        const got = removed(lib.pruned.get(linearTensorName(0, n))!);
        return r.layers[0]![n].mask.reduce((a, v, i) => a + (v !== got[i] ? 1 : 0), 0);
      };
      for (const n of ['q_proj', 'k_proj', 'v_proj'] as const) expect(block0(afterPruning, n)).toBe(0);
      expect(block0(afterPruning, 'o_proj')).toBeGreaterThan(0);
      expect(block0(afterPruning, 'down_proj')).toBeGreaterThan(0);
      for (const n of LINEAR_NAMES) expect(block0(unprunedNext, n)).toBe(0);
    },
  );
});

describe('parking in JS memory (Kernels.park)', () => {
  // wasm parks each block's linears and the activations in JS memory (its 4 GB heap); other backends keep them on
  // the backend. The two routes must give bit-identical weights, statistics and reports.
  test.each([
    ['wanda', opts(UNSTRUCTURED)],
    ['sparsegpt', opts(NM24)],
    ['ria', opts(NM24)],
  ] as [MethodName, TestOptions][])('%s %j: park js-memory and none give bit-identical pruned weights', async (method, p) => {
    const base = activeKernels();
    const before = tf.memory().numTensors;
    const parked = await runLibrary(method, p, 3, { kernels: { ...base, park: 'js-memory' } });
    const kept = await runLibrary(method, p, 3, { kernels: { ...base, park: 'none' } });
    expect(tf.memory().numTensors).toBe(before);
    expect([...kept.pruned.keys()]).toEqual([...parked.pruned.keys()]);
    for (const [name, w] of parked.pruned) {
      const other = kept.pruned.get(name)!;
      let diff = 0;
      w.forEach((v, i) => {
        if (!Object.is(v, other[i])) diff++;
      });
      expect({ name, diff }).toEqual({ name, diff: 0 });
    }
    expect(kept.result.blocks).toEqual(parked.result.blocks);
    expect(kept.result.permutations).toEqual(parked.result.permutations);
  });

  test('park none reads nothing back but the zero counts (one read per block); js-memory also reads each linear twice and each input batch', async () => {
    const reads = async (park: Kernels['park']): Promise<number> => {
      const proto = tf.Tensor.prototype as { data: (...a: unknown[]) => unknown };
      const data = proto.data;
      let count = 0;
      proto.data = function (this: unknown, ...a: unknown[]) {
        count++;
        return data.apply(this, a);
      };
      try {
        await runLibrary('wanda', opts(NM24), 3, { kernels: { ...activeKernels(), park } });
        return count;
      } finally {
        proto.data = data;
      }
    };
    const layers = tiny.config.numLayers;
    const batches = Math.ceil(WINDOWS / 3);
    expect(await reads('none')).toBe(layers); // on a GPU: no device-to-host round trip per linear
    expect(await reads('js-memory')).toBe(layers * (1 + batches + 2 * LINEAR_NAMES.length));
  });

  test('park none: tfjs memory unchanged when a method throws mid-block', async () => {
    const before = tf.memory().numTensors;
    const wanda = getMethod('wanda');
    let calls = 0;
    const failing = { ...wanda, prune: (...a: Parameters<typeof wanda.prune>) => (++calls === 3 ? (() => { throw new Error('boom'); })() : wanda.prune(...a)) };
    await expect(
      runLayerLoop({
        checkpoint: ckpt,
        plan: buildPlan(ckpt.config, { method: failing, target: opts(UNSTRUCTURED) }),
        calibration,
        batchSize: 2,
        writer: null,
        kernels: { ...activeKernels(), park: 'none' },
      }),
    ).rejects.toThrow('boom');
    expect(calls).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('batch size', () => {
  test.each([
    ['wanda', opts(UNSTRUCTURED)],
    ['wanda', opts(NM24)],
    ['sparsegpt', opts(UNSTRUCTURED)],
  ] as [MethodName, TestOptions][])('%s %j: batchSize 1 and 3 give bit-identical pruned weights', async (method, p) => {
    const one = await runLibrary(method, p, 1);
    const three = await runLibrary(method, p, 3);
    expect([...three.pruned.keys()]).toEqual([...one.pruned.keys()]);
    for (const [name, w] of one.pruned) {
      const other = three.pruned.get(name)!;
      let diff = 0;
      w.forEach((v, i) => {
        if (!Object.is(v, other[i])) diff++;
      });
      expect({ name, diff }).toEqual({ name, diff: 0 });
    }
    expect(three.result.blocks).toEqual(one.result.blocks);
  });
});

/** Positions where two runs' pruned weights differ (Object.is), per tensor name. */
function weightDiffs(a: Pruned, b: Pruned): { name: string; diff: number }[] {
  expect([...b.keys()]).toEqual([...a.keys()]);
  return [...a].map(([name, w]) => ({ name, diff: w.reduce((n, v, i) => n + (Object.is(v, b.get(name)![i]) ? 0 : 1), 0) }));
}

describe('calibration forwards over a worker pool (lib/model/forward-pool.ts)', () => {
  test.each([
    ['wanda', opts(UNSTRUCTURED), 1],
    ['wanda', opts(NM24), 3],
  ] as [MethodName, TestOptions, number][])('%s %j batch %d: 2 workers give bit-identical pruned weights', async (method, p, batchSize) => {
    const one = await runLibrary(method, p, batchSize, { workers: 1 });
    const two = await runLibrary(method, p, batchSize, { workers: 2 });
    for (const d of weightDiffs(one.pruned, two.pruned)) expect(d).toEqual({ name: d.name, diff: 0 });
    expect(two.result.blocks).toEqual(one.result.blocks);
  });

  test('Wanda + DSnoT (statistics scaler, sum, variance folded from the workers): bit-identical; no tensor left behind', async () => {
    const run = async (workers: number): Promise<Pruned> => {
      const pruned: Pruned = new Map();
      await runLayerLoop({
        checkpoint: ckpt,
        plan: buildPlan(ckpt.config, { method: getMethod('wanda'), target: opts(UNSTRUCTURED), refiner: dsnot }),
        calibration,
        batchSize: 1,
        writer: null,
        workers,
        onBlock: (layer, block) => {
          for (const n of LINEAR_NAMES) pruned.set(linearTensorName(layer, n), Float32Array.from(block.linears[n].wT!.dataSync()));
        },
      });
      return pruned;
    };
    const one = await run(1);
    const before = tf.memory().numTensors;
    const two = await run(2);
    expect(tf.memory().numTensors).toBe(before);
    for (const d of weightDiffs(one, two)) expect(d).toEqual({ name: d.name, diff: 0 });
  });

  test('SparseGPT (a Hessian cannot be folded from reductions) runs in-process, with the same result', async () => {
    const one = await runLibrary('sparsegpt', opts(UNSTRUCTURED), 1, { workers: 1 });
    const two = await runLibrary('sparsegpt', opts(UNSTRUCTURED), 1, { workers: 2 });
    for (const d of weightDiffs(one.pruned, two.pruned)) expect(d).toEqual({ name: d.name, diff: 0 });
  });
});

describe('exact sparsity as reported', () => {
  test('wanda unstructured: floor(in * p) zeros in every row of every matrix', async () => {
    const p = opts(UNSTRUCTURED, 0.3); // floor(64 * 0.3) = 19, floor(128 * 0.3) = 38: not a multiple of anything
    const lib = await runLibrary('wanda', p);
    for (const b of lib.result.blocks) {
      for (const n of LINEAR_NAMES) {
        const [out, inp] = linearShape(tiny.config, n);
        const k = Math.floor(inp * 0.3);
        expect(new Set(zerosPerRow(lib.pruned.get(linearTensorName(b.layer, n))!, out, inp))).toEqual(new Set([k]));
        expect(b.matrices[n]).toBe((k * out) / (out * inp));
      }
    }
    expectReportedSparsity(lib);
  });

  test.each([
    ['wanda', NM24],
    ['wanda', NM48],
    ['sparsegpt', NM24],
    ['magnitude', NM48],
  ] as [MethodName, Structure & { kind: 'nm' }][])('%s %j: exactly N zeros in every group of M', async (method, s) => {
    const lib = await runLibrary(method, opts(s));
    for (const b of lib.result.blocks) {
      for (const n of LINEAR_NAMES) {
        const [out, inp] = linearShape(tiny.config, n);
        const w = lib.pruned.get(linearTensorName(b.layer, n))!;
        for (let r = 0; r < out; r++) {
          for (let g = 0; g < inp; g += s.m) {
            let z = 0;
            for (let j = 0; j < s.m; j++) if (w[r * inp + g + j] === 0) z++;
            if (z !== s.n) throw new Error(`block ${b.layer} ${n} row ${r} group at ${g}: ${z} zeros, want ${s.n}`);
          }
        }
        expect(b.matrices[n]).toBe(s.n / s.m);
      }
      expect(b.sparsity).toBe(s.n / s.m);
    }
    expectReportedSparsity(lib);
  });
});

describe('tfjs memory', () => {
  test('numTensors is the same before and after runLayerLoop, and after two runs, for every method', async () => {
    await runLibrary('wanda', opts(UNSTRUCTURED)); // warm-up: backend kernels, caches
    const before = tf.memory().numTensors;
    await runLibrary('wanda', opts(UNSTRUCTURED));
    expect(tf.memory().numTensors).toBe(before);
    await runLibrary('wanda', opts(NM24), 3);
    await runLibrary('sparsegpt', opts(UNSTRUCTURED), 2);
    expect(tf.memory().numTensors).toBe(before);
    await runLibrary('magnitude', opts(UNSTRUCTURED));
    await runLibrary('wanda', opts(UNSTRUCTURED, 0.5, true));
    expect(tf.memory().numTensors).toBe(before);
  });

  test('numTensors is unchanged when the loop throws: in a callback, in the method, in the calibration forward', async () => {
    const before = tf.memory().numTensors;
    // onBlock throwing after block 0
    await expect(
      runLayerLoop({
        ...baseOptions('wanda'),
        onBlock: (layer) => {
          if (layer === 0) throw new Error('stop after block 0');
        },
      }),
    ).rejects.toThrow('stop after block 0');
    expect(tf.memory().numTensors).toBe(before);
    // the method throwing after the statistics were collected (SparseGPT fed statistics without its Hessian)
    const noHessian = { ...getMethod('sparsegpt'), stats: ['scaler'] as const };
    await expect(runLayerLoop({ ...baseOptions('sparsegpt'), method: noHessian })).rejects.toThrow(/'hessian' was not collected/);
    // the refiner throwing after the method pruned
    const failing = { ...dsnot, refine: () => { throw new ConfigError('refiner failed'); } };
    await expect(
      runLayerLoop({ ...baseOptions('wanda'), plan: buildPlan(ckpt.config, { method: getMethod('wanda'), target: opts(UNSTRUCTURED), refiner: failing }) }),
    ).rejects.toThrow('refiner failed');
    expect(tf.memory().numTensors).toBe(before);
    // the block forward throwing mid-block (after q/k/v's statistics were collected, at o_proj's input)
    const original = LlamaModel.prototype.block;
    LlamaModel.prototype.block = function (this: LlamaModel, layer, x, tap, ...rest) {
      const failing: Tap = (name, input) => {
        tap?.(name, input);
        if (name === 'o_proj') throw new CheckpointError('block refused mid-way');
      };
      return original.call(this, layer, x, failing, ...rest);
    };
    try {
      await expect(runLayerLoop(baseOptions('wanda'))).rejects.toThrow('block refused mid-way');
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      LlamaModel.prototype.block = original;
    }
  });
});

function baseOptions(method: MethodName): LayerLoopOptions {
  return { checkpoint: ckpt, method: getMethod(method), prune: opts(UNSTRUCTURED), calibration, batchSize: 1, writer: null };
}

describe('errors', () => {
  test('N:M whose M does not divide a layer input size: ConfigError naming the layer and sizes, before any work', async () => {
    const dir = join(tmp, 'inter100');
    writeTinyCheckpoint(dir, { intermediateSize: 100, seed: 5 }); // hidden 64 = 8 * 8, intermediate 100 = 8 * 12 + 4
    const c = Checkpoint.open(dir);
    try {
      const run = (): Promise<LayerLoopResult> => runLayerLoop({ ...baseOptions('wanda'), checkpoint: c, prune: opts({ kind: 'nm', n: 2, m: 8 }) });
      await expect(run()).rejects.toThrow(ConfigError);
      await expect(run()).rejects.toThrow(new ConfigError('structure 2:8: down_proj has 100 inputs, not a multiple of 8'));
      await expect(runLayerLoop({ ...baseOptions('magnitude'), checkpoint: c, prune: opts({ kind: 'nm', n: 1, m: 3 }) })).rejects.toThrow(
        new ConfigError('structure 1:3: q_proj has 64 inputs, not a multiple of 3'),
      );
    } finally {
      c.close();
    }
  });

  test('wanda and sparsegpt without calibration data; magnitude needs none', async () => {
    for (const m of ['wanda', 'sparsegpt'] as const) {
      await expect(runLayerLoop({ ...baseOptions(m), calibration: null })).rejects.toThrow(ConfigError);
      await expect(runLayerLoop({ ...baseOptions(m), calibration: null })).rejects.toThrow(`method ${m} needs calibration data`);
    }
    expect((await runLayerLoop({ ...baseOptions('magnitude'), calibration: null })).blocks).toHaveLength(2);
  });

  test.each([0, -1, 1.5, Number.NaN])('batch size %p: ConfigError naming batchSize', async (batchSize) => {
    await expect(runLayerLoop({ ...baseOptions('wanda'), batchSize })).rejects.toThrow(ConfigError);
    await expect(runLayerLoop({ ...baseOptions('wanda'), batchSize })).rejects.toThrow(
      new ConfigError(`batchSize must be a positive integer, got ${batchSize}`),
    );
  });

  test('bad sparsity and N:M with a different sparsity are refused before any work', async () => {
    await expect(runLayerLoop({ ...baseOptions('wanda'), prune: opts(UNSTRUCTURED, 1) })).rejects.toThrow('sparsity: 1 is not a number in [0, 1)');
    await expect(runLayerLoop({ ...baseOptions('wanda'), prune: { sparsity: 0.6, structure: NM24 } })).rejects.toThrow(
      'structure 2:4 fixes sparsity at 0.5; got sparsity 0.6',
    );
  });
});
