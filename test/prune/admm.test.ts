/**
 * The ADMM weight update (lib/prune/admm.ts) against the plain-loop float64 port of the reference
 * (test/helpers/reference-admm.ts): one linear, then the whole layer loop on a tiny model, the update after another
 * method's mask (with OWL's per-block sparsities too), options, and tfjs memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CalibrationSet } from '../../lib/data/calibration.js';
import { ConfigError, DataError } from '../../lib/errors.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import type { BlockWeights } from '../../lib/model/llama.js';
import { admm, admmUpdate } from '../../lib/prune/admm.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { type PruneOptions } from '../../lib/prune/method.js';
import { runLayerLoop, type LayerLoopResult } from '../../lib/prune/pipeline.js';
import { buildPlan, type PlanSpec } from '../../lib/prune/plan.js';
import { getMethod, getRefiner, optionFlags } from '../../lib/prune/registry.js';
import { ActivationStats } from '../../lib/prune/stats.js';
import { ownerOptions } from '../../lib/cli/owner-flags.js';
import { useTestBackend } from '../helpers/backend.js';
import { refAdmm, refGram, refInverse, type RefAdmmStructure } from '../helpers/reference-admm.js';
import { referencePipeline, type RefPipelineOptions, type RefPipelineResult } from '../helpers/reference-pipeline.js';
import { TestRng } from '../helpers/reference-prune.js';
import { randomCalibration } from '../helpers/newer-layers.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const SEQ = 32;
const WINDOWS = 4;
let tmp: string;
let tiny: TinyCheckpoint;
let ckpt: Checkpoint;
let calibration: CalibrationSet;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-admm-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 5, numKvHeads: 2 });
  ckpt = Checkpoint.open(tiny.dir);
  calibration = randomCalibration(13, WINDOWS, SEQ, tiny.config.vocabSize);
});

afterAll(() => {
  ckpt?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A random linear ([out, in]) and correlated inputs (2 samples of [seq, in]) with one dead input column. */
function randomLinear(out: number, inF: number, seq = 48, seed = 3): { w: Float32Array; samples: Float32Array[] } {
  const rng = new TestRng(seed);
  const w = rng.normals(out * inF, 0.2);
  const mix = rng.normals(inF * inF, 1 / Math.sqrt(inF));
  const samples = [0, 1].map(() => {
    const z = rng.normals(seq * inF);
    const x = new Float32Array(seq * inF);
    for (let t = 0; t < seq; t++) {
      for (let j = 0; j < inF; j++) {
        let v = z[t * inF + j]! * (1 + (j % 5)); // uneven input scales, as activations have
        for (let k = 0; k < 4; k++) v += 0.5 * z[t * inF + ((j + k + 1) % inF)]! * mix[j * inF + k]!;
        x[t * inF + j] = j === 3 ? 0 : v; // input 3 is dead
      }
    }
    return x;
  });
  return { w, samples };
}

function gramStats(samples: Float32Array[], seq: number, inF: number): ActivationStats {
  const stats = new ActivationStats(inF, ['gram']);
  for (const x of samples) tf.tidy(() => stats.add(tf.tensor3d(x, [1, seq, inF])));
  return stats;
}

function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** max |a - b| over max |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return d / scale;
}

describe('the reference port itself', () => {
  test('Gauss-Jordan inverse: A A^-1 = I', () => {
    const rng = new TestRng(1);
    const n = 7;
    const a = Float64Array.from(rng.normals(n * n), (v, i) => v + (i % (n + 1) === 0 ? 3 : 0));
    const inv = refInverse(a, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += a[i * n + k]! * inv[k * n + j]!;
        expect(s).toBeCloseTo(i === j ? 1 : 0, 10);
      }
    }
  });
});

describe('admm on one linear against the port of fasterprune', () => {
  const out = 24;
  const inF = 32;
  const cases: [string, PruneOptions, RefAdmmStructure, Record<string, number>][] = [
    ['unstructured 50%', { sparsity: 0.5, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.5 }, {}],
    ['unstructured 70%', { sparsity: 0.7, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.7 }, {}],
    ['2:4 (gradual)', { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, { kind: 'nm', n: 2, m: 4 }, {}],
    ['4:8 (the extension)', { sparsity: 0.5, structure: { kind: 'nm', n: 4, m: 8 } }, { kind: 'nm', n: 4, m: 8 }, {}],
    ['1:4 (the extension)', { sparsity: 0.25, structure: { kind: 'nm', n: 1, m: 4 } }, { kind: 'nm', n: 1, m: 4 }, {}],
    ['unstructured, rounds 0 (mask from |W| norm)', { sparsity: 0.6, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.6 }, { rounds: 0 }],
    ['2:4, rounds 0', { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, { kind: 'nm', n: 2, m: 4 }, { rounds: 0 }],
    ['iters 0: the mask alone', { sparsity: 0.5, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.5 }, { iters: 0, rounds: 0 }],
    ['other damp and rho', { sparsity: 0.5, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.5 }, { damp: 0.02, rho: 0.3, iters: 12, rounds: 6 }],
  ];
  test.each(cases)('%s: same mask, weights within 1e-4', async (_label, target, structure, options) => {
    const { w, samples } = randomLinear(out, inF);
    const stats = gramStats(samples, 48, inF);
    const before = tf.memory().numTensors;
    try {
      const weight = tf.tensor2d(w, [out, inF]);
      const r = await admm.prune(weight, stats, target, admm.options.parse(options));
      const got = { weight: r.weight.dataSync(), mask: r.mask.dataSync() };
      tf.dispose([weight, r.weight, r.mask]);
      expect(tf.memory().numTensors).toBe(before);
      const ref = refAdmm(w, refGram(samples, 48, inF), out, inF, { structure, ...options });
      expect(agreement(got.mask, ref.mask)).toBe(1);
      expect(relDiff(got.weight, ref.weight)).toBeLessThan(1e-4);
      // the kept weights are updated (the mask alone when iters = 0)
      const changed = Array.from(got.weight).filter((v, i) => v !== 0 && Math.abs(v - w[i]!) > 1e-5).length;
      if (options['iters'] === 0) expect(changed).toBe(0);
      else expect(changed).toBeGreaterThan(out * inF * 0.2);
      expect(r.reconstruction!.after).toBeLessThanOrEqual(r.reconstruction!.before + 1e-6);
      if (structure.kind === 'nm') {
        // exactly N zeros in every group of M inputs of a row
        for (let i = 0; i < out * inF; i += structure.m) {
          expect(Array.from(got.mask.slice(i, i + structure.m)).reduce((a, b) => a + b, 0)).toBe(structure.n);
        }
      } else {
        expect(Array.from(got.mask).reduce((a, b) => a + b, 0)).toBe(Math.floor(out * inF * structure.sparsity));
      }
    } finally {
      stats.dispose();
    }
  });

  test('the update keeps a given mask and lowers the output error; the refiner takes N:M masks', async () => {
    const { w, samples } = randomLinear(out, inF, 48, 9);
    const stats = gramStats(samples, 48, inF);
    const rng = new TestRng(4);
    const mask = Uint8Array.from({ length: out * inF }, () => (rng.uniform() < 0.5 ? 1 : 0));
    try {
      const weight = tf.tensor2d(w, [out, inF]);
      const m = tf.tensor2d(Float32Array.from(mask), [out, inF]);
      const target: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };
      const r = await admmUpdate.update!(weight, m, stats, target, admmUpdate.options.parse({}));
      const got = { weight: r.weight.dataSync(), mask: r.mask.dataSync() };
      tf.dispose([weight, m, r.weight, r.mask]);
      expect(agreement(got.mask, mask)).toBe(1);
      const ref = refAdmm(w, refGram(samples, 48, inF), out, inF, { structure: { kind: 'unstructured', sparsity: 0.5 }, mask });
      expect(relDiff(got.weight, ref.weight)).toBeLessThan(1e-4);
      expect(r.reconstruction!.after).toBeLessThan(r.reconstruction!.before * 0.9);
    } finally {
      stats.dispose();
    }
  });

  test('non-finite inputs: a DataError, and no tensor left behind', async () => {
    const { w, samples } = randomLinear(out, inF);
    samples[0]![5] = NaN;
    const stats = gramStats(samples, 48, inF);
    const weight = tf.tensor2d(w, [out, inF]);
    const before = tf.memory().numTensors;
    try {
      await expect(admm.prune(weight, stats, { sparsity: 0.5, structure: { kind: 'unstructured' } })).rejects.toThrow(DataError);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      weight.dispose();
      stats.dispose();
    }
  });
});

describe('the Gram statistic', () => {
  test('XX = sum of x x^T over every token; merge sums; no folding from reductions', () => {
    const { samples } = randomLinear(4, 6, 5, 2);
    const a = gramStats([samples[0]!], 5, 6);
    const b = gramStats([samples[1]!], 5, 6);
    const both = gramStats(samples, 5, 6);
    try {
      a.merge(b);
      const want = refGram(samples, 5, 6);
      expect(relDiff(a.gram.dataSync(), want)).toBeLessThan(1e-6);
      expect(relDiff(both.gram.dataSync(), want)).toBeLessThan(1e-6);
      expect(() => both.addReduced([{}], 5)).toThrow(/Gram matrix cannot be folded/);
    } finally {
      [a, b, both].forEach((s) => s.dispose());
    }
  });
});

describe('options', () => {
  test('defaults are the reference values; rounds beyond iters are refused', () => {
    expect(admm.options.parse({})).toEqual({ iters: 20, rounds: 15, damp: 0.1, rho: 1 });
    expect(admmUpdate.options.parse({})).toEqual({ iters: 20, damp: 0.1, rho: 1 });
    const target: PruneOptions = { sparsity: 0.5, structure: { kind: 'unstructured' } };
    expect(() => buildPlan(ckpt.config, { method: getMethod('admm'), methodOptions: { iters: 10 }, target })).toThrow(
      new ConfigError('admm: --admm-rounds 15 is more than --admm-iters 10 (the mask rounds are the first iterations)'),
    );
    expect(() => buildPlan(ckpt.config, { method: getMethod('admm'), methodOptions: { rho: 0 }, target })).toThrow(/method admm: bad options: rho/);
    expect(() => admmUpdate.options.parse({ rounds: 3 })).toThrow();
  });

  test('CLI flags: --admm-iters/--admm-damp/--admm-rho go to the method or the update, --admm-rounds to the method only', () => {
    const flags = optionFlags().filter((f) => f.flag.startsWith('admm-'));
    expect([...new Set(flags.map((f) => f.flag))].sort()).toEqual(['admm-damp', 'admm-iters', 'admm-rho', 'admm-rounds']);
    expect(ownerOptions({ 'admm-iters': 5, 'admm-rounds': 2 }, { method: 'admm' }).method).toEqual({ iters: 5, rounds: 2 });
    const upd = ownerOptions({ 'admm-iters': 5, 'admm-rho': 2 }, { method: 'wanda', refine: 'admm' });
    expect(upd).toEqual({ method: {}, layerwise: {}, refine: { iters: 5, rho: 2 } });
    expect(() => ownerOptions({ 'admm-rounds': 2 }, { method: 'wanda', refine: 'admm' })).toThrow(
      new ConfigError('--admm-rounds: an option of method admm, which this run does not use'),
    );
    expect(() => ownerOptions({ 'admm-iters': 2 }, { method: 'wanda' })).toThrow(/--admm-iters: an option of method admm or --refine admm/);
  });

  test('the update refines N:M masks, not methods that update weights', () => {
    const nm: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };
    const plan = buildPlan(ckpt.config, { method: getMethod('wanda'), target: nm, refiner: getRefiner('admm') });
    expect(plan.blocks[0]!.linears.q_proj!.refine!.refiner.name).toBe('admm');
    expect(() => buildPlan(ckpt.config, { method: getMethod('sparsegpt'), target: nm, refiner: getRefiner('admm') })).toThrow(/sparsegpt updates the weights it keeps/);
    expect(() => buildPlan(ckpt.config, { method: getMethod('wanda'), target: nm, refiner: getRefiner('dsnot') })).toThrow(/unstructured sparsity only/);
  });
});

/** Pruned linear weights ([out, in]) of every block. */
async function runLibrary(spec: Omit<PlanSpec, 'target'>, target: PruneOptions): Promise<{ pruned: Map<string, Float32Array>; result: LayerLoopResult }> {
  const pruned = new Map<string, Float32Array>();
  const before = tf.memory().numTensors;
  const result = await runLayerLoop({
    checkpoint: ckpt,
    plan: buildPlan(ckpt.config, { ...spec, target }),
    calibration,
    batchSize: 3,
    writer: null,
    onBlock: (layer: number, block: BlockWeights) => {
      for (const n of LINEAR_NAMES) {
        const w = tf.transpose(block.linears[n].wT!);
        pruned.set(linearTensorName(layer, n), Float32Array.from(w.dataSync()));
        w.dispose();
      }
    },
  });
  expect(tf.memory().numTensors).toBe(before);
  return { pruned, result };
}

function runReference(o: Omit<RefPipelineOptions, 'windows'>): RefPipelineResult {
  return referencePipeline(tiny.raw, tiny.tensors, { ...o, windows: calibration.windows.map((w) => w.ids) });
}

/** Mask agreement and the worst relative weight difference over every linear. */
function compare(lib: Map<string, Float32Array>, ref: RefPipelineResult): { agree: number; worst: number } {
  let same = 0;
  let total = 0;
  let worst = 0;
  ref.layers.forEach((layer, l) => {
    for (const n of LINEAR_NAMES) {
      const got = lib.get(linearTensorName(l, n))!;
      const removed = Uint8Array.from(got, (v) => (v === 0 ? 1 : 0));
      same += agreement(removed, layer[n].mask) * got.length;
      total += got.length;
      worst = Math.max(worst, relDiff(got, layer[n].weight));
    }
  });
  return { agree: same / total, worst };
}

describe('the layer loop on a tiny model against the reference pipeline with the port', () => {
  test.each([
    ['unstructured 50%', { sparsity: 0.5, structure: { kind: 'unstructured' } }, { kind: 'unstructured', sparsity: 0.5 }],
    ['2:4', { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, { kind: 'nm', n: 2, m: 4 }],
  ] as [string, PruneOptions, RefAdmmStructure][])('--method admm %s', async (_label, target, structure) => {
    const lib = await runLibrary({ method: getMethod('admm') }, target);
    const { agree, worst } = compare(lib.pruned, runReference({ method: 'admm', structure }));
    expect(agree).toBeGreaterThanOrEqual(0.999);
    expect(worst).toBeLessThan(2e-3);
    for (const b of lib.result.blocks) {
      expect(Object.keys(b.reconstruction!).sort()).toEqual([...LINEAR_NAMES].sort());
      for (const e of Object.values(b.reconstruction!)) expect(e.after).toBeLessThan(e.before);
    }
  });

  test('wanda 2:4 then the ADMM update: wanda\'s mask kept, weights as the port', async () => {
    const target: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };
    const lib = await runLibrary({ method: getMethod('wanda'), refiner: getRefiner('admm'), refinerOptions: { iters: 10 } }, target);
    const { agree, worst } = compare(lib.pruned, runReference({ method: 'wanda', structure: { kind: 'nm', n: 2, m: 4 }, admmUpdate: { iters: 10 } }));
    expect(agree).toBeGreaterThanOrEqual(0.999);
    expect(worst).toBeLessThan(2e-3);
    expect(lib.result.blocks.every((b) => b.sparsity === 0.5)).toBe(true);
  });

  test('per-block sparsities (as OWL gives) with magnitude and the update', async () => {
    const target: PruneOptions = { sparsity: 0.5, structure: { kind: 'unstructured' } };
    const lib = await runLibrary({ method: getMethod('magnitude'), refiner: getRefiner('admm'), blockSparsities: [0.4, 0.6] }, target);
    const masked = await runLibrary({ method: getMethod('magnitude'), blockSparsities: [0.4, 0.6] }, target);
    lib.result.blocks.forEach((b, i) => {
      expect(b.sparsity).toBeCloseTo(masked.result.blocks[i]!.sparsity, 12);
      expect(b.sparsity).toBeCloseTo([0.4, 0.6][i]!, 2);
      for (const e of Object.values(b.reconstruction!)) expect(e.after).toBeLessThan(e.before);
    });
    expect(masked.result.blocks[0]!.reconstruction).toBeUndefined();
  });
});
