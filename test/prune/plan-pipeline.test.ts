/**
 * The methods after Wanda through THE layer loop, against the independent float64 replay of the reference
 * pipeline (test/helpers/reference-pipeline.ts): RIA (unstructured, 2:4, 2:4 with channel permutation), Wanda + OWL
 * (pass 1 on the dense model, then per-block sparsities), Wanda + DSnoT (attention linears refined); then prune()
 * end to end on a tiny checkpoint: report.json's plan, per-block sparsities as allocated and achieved, permutations,
 * targets / ignore, and a reloadable output.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationSet } from '../../lib/data/calibration.js';
import { ConfigError } from '../../lib/errors.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import type { BlockWeights } from '../../lib/model/llama.js';
import { dsnot } from '../../lib/prune/dsnot.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { owlAllocate } from '../../lib/prune/owl.js';
import { runLayerLoop } from '../../lib/prune/pipeline.js';
import { buildPlan, type PlanSpec } from '../../lib/prune/plan.js';
import { prune, type PruneReport } from '../../lib/prune/prune.js';
import { getMethod } from '../../lib/prune/registry.js';
import { useTestBackend } from '../helpers/backend.js';
import { referencePipeline, type RefPipelineOptions, type RefPipelineResult } from '../helpers/reference-pipeline.js';
import { refDsnot, refDsnotInitial } from '../helpers/reference-newer.js';
import { randomCalibration } from '../helpers/newer-layers.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const SEQ = 24;
const WINDOWS = 3;

let tmp: string;
let tiny: TinyCheckpoint; // 2 layers, hidden 64, intermediate 64 (so 2:4 groups are <= 16 per row for the exact reference LSA)
let ckpt: Checkpoint;
let calibration: CalibrationSet;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-newer-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 13, numKvHeads: 2, intermediateSize: 64 });
  ckpt = Checkpoint.open(tiny.dir);
  calibration = randomCalibration(17, WINDOWS, SEQ, tiny.config.vocabSize);
});

afterAll(() => {
  ckpt?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

type Pruned = Map<string, Uint8Array>; // removed positions per linear weight ([out, in])

async function runLibrary(spec: Omit<PlanSpec, 'method'> & { method: string }): Promise<{ masks: Pruned; permutations: Record<string, number[]>; allocated: number[] }> {
  const masks: Pruned = new Map();
  const { method, ...rest } = spec;
  const result = await runLayerLoop({
    checkpoint: ckpt,
    plan: buildPlan(ckpt.config, { ...rest, method: getMethod(method) }),
    calibration,
    batchSize: 2,
    writer: null,
    onBlock: (layer: number, block: BlockWeights) => {
      for (const n of LINEAR_NAMES) {
        const w = tf.transpose(block.linears[n].wT!);
        masks.set(linearTensorName(layer, n), Uint8Array.from(w.dataSync(), (v) => (v === 0 ? 1 : 0)));
        w.dispose();
      }
    },
  });
  return { masks, permutations: result.permutations, allocated: result.blocks.map((b) => b.allocated) };
}

function runReference(o: Omit<RefPipelineOptions, 'windows'>): RefPipelineResult {
  return referencePipeline(tiny.raw, tiny.tensors, { ...o, windows: calibration.windows.map((w) => w.ids) });
}

/** Mask positions that differ, per linear (only the nonzero ones are listed). */
function diffs(lib: Pruned, ref: RefPipelineResult): Record<string, number> {
  const out: Record<string, number> = {};
  ref.layers.forEach((layer, l) => {
    for (const n of LINEAR_NAMES) {
      const name = linearTensorName(l, n);
      const got = lib.get(name)!;
      const d = got.reduce((a, v, i) => a + (v !== layer[n].mask[i] ? 1 : 0), 0);
      if (d > 0) out[name] = d;
    }
  });
  return out;
}

describe('whole-pipeline parity with the reference replay', () => {
  test.each([
    ['unstructured 0.5', { kind: 'unstructured', sparsity: 0.5 } as const],
    ['unstructured 0.7', { kind: 'unstructured', sparsity: 0.7 } as const],
    ['2:4', { kind: 'nm', n: 2, m: 4 } as const],
  ])('ria %s: identical masks', async (_label, structure) => {
    const target = structure.kind === 'nm' ? { sparsity: 0.5, structure } : { sparsity: structure.sparsity, structure: { kind: 'unstructured' as const } };
    const lib = await runLibrary({ method: 'ria', target });
    expect(diffs(lib.masks, runReference({ method: 'ria', structure }))).toEqual({});
  });

  test('ria 2:4 --permute: identical masks and permutations; N:M in the permuted order', async () => {
    const structure = { kind: 'nm', n: 2, m: 4 } as const;
    const lib = await runLibrary({ method: 'ria', methodOptions: { permute: true }, target: { sparsity: 0.5, structure } });
    const ref = runReference({ method: 'ria', structure, riaPermute: true });
    expect(diffs(lib.masks, ref)).toEqual({});
    expect(lib.permutations).toEqual(ref.permutations);
    expect(Object.keys(lib.permutations)).toHaveLength(14);
    const name = 'model.layers.1.mlp.down_proj';
    const mask = lib.masks.get(`${name}.weight`)!;
    const perm = lib.permutations[name]!;
    const cols = perm.length;
    for (let r = 0; r < mask.length / cols; r++) {
      for (let g = 0; g < cols; g += 4) expect(perm.slice(g, g + 4).reduce((a, c) => a + (mask[r * cols + c] as number), 0)).toBe(2);
    }
  });

  test('wanda + owl at 0.6 (lambda 0.08, M 5): outlier ratios, block sparsities (mean 0.6) and masks equal the reference', async () => {
    const ref = runReference({ method: 'wanda', structure: { kind: 'unstructured', sparsity: 0.6 }, owl: { lamda: 0.08, M: 5 } });
    const alloc = await owlAllocate(ckpt, calibration, 2, 0.6, { lambda: 0.08, m: 5 });
    expect(alloc.ratios).toEqual(ref.owl!.ratios);
    alloc.sparsities.forEach((s, i) => expect(s).toBeCloseTo(ref.owl!.sparsities[i]!, 12));
    expect(alloc.sparsities.reduce((a, b) => a + b, 0) / 2).toBeCloseTo(0.6, 12);
    expect(Math.abs(alloc.sparsities[0]! - alloc.sparsities[1]!)).toBeCloseTo(0.16, 12);
    const lib = await runLibrary({ method: 'wanda', target: { sparsity: 0.6, structure: { kind: 'unstructured' } }, blockSparsities: alloc.sparsities });
    expect(lib.allocated).toEqual(alloc.sparsities);
    expect(diffs(lib.masks, ref)).toEqual({});
  });

  test('wanda + dsnot at 0.6: the loop refines attention masks from the same taps exactly as the reference cycle', async () => {
    // On the library's own block inputs: the statistics the loop collected, the unpruned weights, Wanda's initial
    // mask, then the reference cycle (the next test compares with the float64 replay end to end).
    const want = new Map<string, Uint8Array>();
    const masks: Pruned = new Map();
    await runLayerLoop({
      checkpoint: ckpt,
      plan: buildPlan(ckpt.config, { method: getMethod('wanda'), target: { sparsity: 0.6, structure: { kind: 'unstructured' } }, refiner: dsnot }),
      calibration,
      batchSize: 2,
      writer: null,
      inspect: {
        needs: [],
        fn: (layer, block, stats) => {
          for (const n of LINEAR_NAMES) {
            const st = stats(n);
            const w = tf.transpose(block.linears[n].wT!);
            const [rows, cols] = w.shape as [number, number];
            const wv = Float32Array.from(w.dataSync());
            w.dispose();
            const scaler = Float32Array.from(st.scalerRow.dataSync());
            const initial = refDsnotInitial(wv, scaler, rows, cols, 0.6);
            const attention = !['gate_proj', 'up_proj', 'down_proj'].includes(n);
            want.set(
              linearTensorName(layer, n),
              attention
                ? refDsnot({ rows, cols, w: wv, initialMask: initial, scaler, sum: Float32Array.from(st.sumRow.dataSync()), variance: Float32Array.from(st.variance.dataSync()), maxCycle: 50, threshold: 0.1 })
                : initial,
            );
          }
        },
      },
      onBlock: (layer: number, block: BlockWeights) => {
        for (const n of LINEAR_NAMES) {
          const w = tf.transpose(block.linears[n].wT!);
          masks.set(linearTensorName(layer, n), Uint8Array.from(w.dataSync(), (v) => (v === 0 ? 1 : 0)));
          w.dispose();
        }
      },
    });
    let refined = 0;
    for (const [name, m] of want) {
      expect({ name, diff: m.reduce((a, v, i) => a + (v !== masks.get(name)![i] ? 1 : 0), 0) }).toEqual({ name, diff: 0 });
    }
    // DSnoT changed the attention masks of block 0 against plain Wanda (same inputs there), not the MLP ones
    const plain = runReference({ method: 'wanda', structure: { kind: 'unstructured', sparsity: 0.6 } });
    for (const n of LINEAR_NAMES) {
      const name = linearTensorName(0, n);
      const d = plain.layers[0]![n].mask.reduce((a, v, i) => a + (v !== masks.get(name)![i] ? 1 : 0), 0);
      if (n.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(n)) expect({ name, d }).toEqual({ name, d: 0 });
      else refined += d;
    }
    expect(refined).toBeGreaterThan(0);
  });

  test('wanda + dsnot at 0.6: identical masks to the float64 replay, both blocks', async () => {
    const ref = runReference({ method: 'wanda', structure: { kind: 'unstructured', sparsity: 0.6 }, dsnot: { maxCycle: 50, threshold: 0.1 } });
    const lib = await runLibrary({ method: 'wanda', target: { sparsity: 0.6, structure: { kind: 'unstructured' } }, refiner: dsnot });
    expect(diffs(lib.masks, ref)).toEqual({});
  });
});

describe('prune() with a plan, end to end', () => {
  const read = (dir: string): PruneReport => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as PruneReport;
  const calibFile = (): string => {
    const p = join(tmp, 'calib.txt');
    writeFileSync(p, 'Once upon a time there was a little cat who liked to play in the sun all day long. '.repeat(40));
    return p;
  };

  test('wanda + owl: report.json holds the ratios, allocated and achieved block sparsities; the output reloads', async () => {
    const out = join(tmp, 'owl');
    const report = await prune({ model: tiny.dir, out, method: 'wanda', sparsity: 0.6, layerwise: 'owl', layerwiseOptions: { lambda: 0.1 }, calibration: calibFile(), nsamples: 2, seqlen: 32 });
    const r = read(out);
    expect(r.plan.layerwise).toMatchObject({ name: 'owl', options: { lambda: 0.1, m: 5 } });
    expect(r.plan.layerwise!.sparsities.reduce((a, b) => a + b, 0) / 2).toBeCloseTo(0.6, 12);
    expect(r.sparsity.blocks.map((b) => b.allocated)).toEqual(r.plan.layerwise!.sparsities);
    // achieved: floor(in * s_i) per row, so within 1/64 (the smallest input size here) below the allocation
    r.sparsity.blocks.forEach((b) => expect(b.allocated - b.sparsity).toBeGreaterThanOrEqual(0));
    r.sparsity.blocks.forEach((b) => expect(b.allocated - b.sparsity).toBeLessThan(1 / 64));
    expect(report.plan.methodOptions).toEqual({ variant: false });
    const reloaded = readSafetensorsFolder(out);
    expect(reloaded.get('model.layers.0.self_attn.q_proj.weight')).toBeDefined();
  });

  test('owl with magnitude, sparsegpt and ria: the same Wanda-metric allocation; each method prunes every block to it', async () => {
    const allocations: number[][] = [];
    for (const method of ['magnitude', 'sparsegpt', 'ria'] as const) {
      const out = join(tmp, `owl-${method}`);
      await prune({ model: tiny.dir, out, method, sparsity: 0.6, layerwise: 'owl', calibration: calibFile(), nsamples: 2, seqlen: 32 });
      const r = read(out);
      allocations.push(r.plan.layerwise!.sparsities);
      expect(r.sparsity.blocks.map((b) => b.allocated)).toEqual(r.plan.layerwise!.sparsities);
      // magnitude and RIA use one threshold per matrix (<=, a little more than s); SparseGPT one per block of columns
      r.sparsity.blocks.forEach((b) => expect(Math.abs(b.sparsity - b.allocated)).toBeLessThan(0.02));
    }
    expect(allocations[1]).toEqual(allocations[0]);
    expect(allocations[2]).toEqual(allocations[0]);
    expect(new Set(allocations[0]).size).toBe(2); // two blocks, two different sparsities
  });

  test('ria 2:4 --permute with --ignore: permutations in report.json for the pruned linears only; ignored ones untouched', async () => {
    const out = join(tmp, 'ria');
    await prune({
      model: tiny.dir,
      out,
      method: 'ria',
      sparsity: 0.5,
      structure: { kind: 'nm', n: 2, m: 4 },
      methodOptions: { permute: true },
      ignore: ['re:.*down_proj', 'model.layers.0.self_attn.q_proj'],
      calibration: calibFile(),
      nsamples: 2,
      seqlen: 32,
    });
    const r = read(out);
    expect(r.plan.skipped).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
    expect(r.plan.ignore).toEqual(['re:.*down_proj', 'model.layers.0.self_attn.q_proj']);
    expect(Object.keys(r.permutations!)).toHaveLength(14 - 3);
    expect(r.permutations!['model.layers.0.self_attn.q_proj']).toBeUndefined();
    const w = readSafetensorsFolder(out);
    for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight']) {
      expect(Array.from(w.get(name)!)).toEqual(Array.from(tiny.tensors.get(name)!));
    }
    expect(r.sparsity.blocks[0]!.matrices.q_proj).toBe(0);
    expect(r.sparsity.blocks[0]!.matrices.k_proj).toBe(0.5);
  });

  test('bad plans fail before any data is read, naming the option', async () => {
    const base = { model: tiny.dir, out: join(tmp, 'bad'), calibration: join(tmp, 'missing.txt'), nsamples: 2, seqlen: 32 };
    await expect(prune({ ...base, method: 'sparsegpt', sparsity: 0.5, refine: 'dsnot' })).rejects.toThrow(/sparsegpt updates the weights/);
    await expect(prune({ ...base, method: 'wanda', sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 }, layerwise: 'owl' })).rejects.toThrow(/^layerwise owl: allocates unstructured/);
    await expect(prune({ ...base, method: 'wanda', sparsity: 0.5, ignore: ['model.layer.0'] })).rejects.toThrow(ConfigError);
    await expect(prune({ ...base, method: 'ria', sparsity: 0.5, methodOptions: { alpha: 'x' } })).rejects.toThrow(/method ria: bad options: alpha/);
    await expect(prune({ ...base, method: 'magnitude', sparsity: 0.5, refine: 'dsnot' })).rejects.toThrow(/^refine dsnot needs a calibration data file|missing\.txt/);
  });
});
