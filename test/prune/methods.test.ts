import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import { magnitude } from '../../lib/prune/magnitude.js';
import type { LayerStats, PruneMethod, PruneOptions, Structure } from '../../lib/prune/method.js';
import { createStats } from '../../lib/prune/stats.js';
import { METHOD_NAMES, getMethod } from '../../lib/prune/registry.js';
import { SparseGptStats, prepareHinv, sparsegpt, upperCholeskyOfInverse } from '../../lib/prune/sparsegpt.js';
import { WandaStats, wanda, wandaMetric, wandaVariantMask } from '../../lib/prune/wanda.js';
import { useTestBackend } from '../helpers/backend.js';
import {
  type RefStructure,
  TestRng,
  refHessian,
  refMagnitudeMask,
  refSparseGpt,
  refUpperCholeskyOfInverse,
  refWandaMask,
  refWandaMetric,
  refWandaScaler,
  refWandaVariant,
} from '../helpers/reference-prune.js';

beforeAll(async () => {
  await useTestBackend();
});

const UNSTRUCTURED: Structure = { kind: 'unstructured' };
const NM24: Structure = { kind: 'nm', n: 2, m: 4 };
const NM48: Structure = { kind: 'nm', n: 4, m: 8 };

function options(structure: Structure, sparsity = 0.5): PruneOptions {
  return { sparsity: structure.kind === 'nm' ? structure.n / structure.m : sparsity, structure };
}

function refStructure(o: PruneOptions): RefStructure {
  return o.structure.kind === 'nm'
    ? { kind: 'nm', n: o.structure.n, m: o.structure.m }
    : { kind: 'unstructured', sparsity: o.sparsity };
}

function maskOf(t: tf.Tensor): Uint8Array {
  return Uint8Array.from(t.dataSync(), (v) => {
    if (v !== 0 && v !== 1) throw new Error(`mask value ${v} is not 0 or 1`);
    return v;
  });
}

/** A layer: weight [out, in] and calibration samples [seq, in] each, with per-feature scales so that s_j vary. */
interface Layer {
  out: number;
  inF: number;
  seq: number;
  w: Float32Array;
  samples: Float32Array[];
}

function makeLayer(seed: number, out: number, inF: number, nSamples: number, seq: number): Layer {
  const rng = new TestRng(seed);
  const w = rng.normals(out * inF);
  const scale = Float32Array.from({ length: inF }, () => 0.2 + 2 * rng.uniform());
  const samples = Array.from({ length: nSamples }, () => {
    const x = rng.normals(seq * inF);
    for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * (scale[i % inF] as number);
    return x;
  });
  return { out, inF, seq, w, samples };
}

/** Feed the samples to fresh statistics, `perBatch` samples per add call. */
function collect(method: Pick<PruneMethod<unknown>, 'name' | 'stats'>, layer: Layer, perBatch: number): LayerStats {
  const stats = createStats(method, layer.inF);
  if (!stats) throw new Error(`${method.name} has no statistics`);
  for (let s = 0; s < layer.samples.length; s += perBatch) {
    const chunk = layer.samples.slice(s, s + perBatch);
    const data = new Float32Array(chunk.length * layer.seq * layer.inF);
    chunk.forEach((x, i) => data.set(x, i * layer.seq * layer.inF));
    const x = tf.tensor3d(data, [chunk.length, layer.seq, layer.inF]);
    stats.add(x);
    x.dispose();
  }
  expect(stats.samples).toBe(layer.samples.length);
  return stats;
}

function rowCounts(mask: Uint8Array, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, r) => mask.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0));
}

function expectZeroedWhereMasked(weight: tf.Tensor, mask: Uint8Array, original?: Float32Array): void {
  const w = weight.dataSync();
  mask.forEach((m, i) => {
    if (m === 1) expect(w[i]).toBe(0);
    else if (original) expect(w[i]).toBe(original[i]);
  });
}

describe('Wanda', () => {
  it('statistics follow the running mean of per-sample sums of squares', async () => {
    const layer = makeLayer(1, 8, 48, 5, 12);
    const stats = collect(wanda, layer, 1) as WandaStats;
    const got = stats.scalerRow.dataSync();
    const want = refWandaScaler(layer.samples, layer.seq, layer.inF);
    want.forEach((v, j) => expect(Math.abs((got[j] as number) - v)).toBeLessThanOrEqual(2e-6 * v));
    stats.dispose();
  });

  it('statistics are batch-invariant: one [k, seq, in] add equals k single adds, bit for bit', async () => {
    const layer = makeLayer(2, 8, 40, 6, 10);
    const one = collect(wanda, layer, 1) as WandaStats;
    const two = collect(wanda, layer, 2) as WandaStats;
    const all = collect(wanda, layer, 6) as WandaStats;
    const ref = Array.from(one.scalerRow.dataSync());
    expect(Array.from(two.scalerRow.dataSync())).toEqual(ref);
    expect(Array.from(all.scalerRow.dataSync())).toEqual(ref);
    [one, two, all].forEach((s) => s.dispose());
  });

  it.each([
    [16, 64, options(UNSTRUCTURED, 0.5)],
    [24, 100, options(UNSTRUCTURED, 0.3)],
    [32, 256, options(UNSTRUCTURED, 0.7)],
    [16, 64, options(NM24)],
    [24, 128, options(NM48)],
  ])('mask on %i x %i (%j) matches the reference; exact counts per row/group', async (out, inF, o) => {
    const layer = makeLayer(out * 7 + inF, out, inF, 4, 16);
    const stats = collect(wanda, layer, 2) as WandaStats;
    const weight = tf.tensor2d(layer.w, [out, inF]);
    const before = tf.memory().numTensors;
    const res = await wanda.prune(weight, stats, o);
    expect(tf.memory().numTensors).toBe(before + 2);
    const mask = maskOf(res.mask);
    const metric = refWandaMetric(layer.w, stats.scalerRow.dataSync() as Float32Array, out, inF);
    expect(mask).toEqual(refWandaMask(metric, out, inF, refStructure(o)));
    if (o.structure.kind === 'unstructured') {
      expect(rowCounts(mask, out, inF)).toEqual(new Array(out).fill(Math.floor(inF * o.sparsity)));
    } else {
      const { n, m } = o.structure;
      for (let g = 0; g < mask.length; g += m) expect(mask.subarray(g, g + m).reduce((a, b) => a + b, 0)).toBe(n);
    }
    expectZeroedWhereMasked(res.weight, mask, layer.w);
    tf.dispose([weight, res.weight, res.mask]);
    stats.dispose();
  });

  it.each([0.5, 0.6, 0.3])('variant at %f matches the reference bisection and reaches the target', async (target) => {
    const out = 32;
    const inF = 128;
    const layer = makeLayer(Math.round(target * 100), out, inF, 3, 16);
    const stats = collect(wanda, layer, 1) as WandaStats;
    const weight = tf.tensor2d(layer.w, [out, inF]);
    const metricT = wandaMetric(weight, stats.scalerRow);
    const metric = metricT.dataSync() as Float32Array;
    expect(Array.from(metric)).toEqual(Array.from(refWandaMetric(layer.w, stats.scalerRow.dataSync() as Float32Array, out, inF)));
    const before = tf.memory().numTensors;
    const variant = await wandaVariantMask(metricT, target);
    expect(tf.memory().numTensors).toBe(before + 1);
    const ref = refWandaVariant(metric, out, inF, target);
    expect(variant.alpha).toBe(ref.alpha);
    expect(variant.sparsity).toBe(ref.sparsity);
    expect(maskOf(variant.mask)).toEqual(ref.mask);
    expect(Math.abs(variant.sparsity - target)).toBeLessThanOrEqual(0.001 + 1e-7);
    const counts = rowCounts(ref.mask, out, inF);
    expect(new Set(counts).size).toBeGreaterThan(1); // rows end with different sparsities
    const res = await wanda.prune(weight, stats, { sparsity: target, structure: UNSTRUCTURED }, { variant: true });
    expect(maskOf(res.mask)).toEqual(ref.mask);
    expectZeroedWhereMasked(res.weight, ref.mask, layer.w);
    tf.dispose([weight, metricT, variant.mask, res.weight, res.mask]);
    stats.dispose();
  });

  it('variant by hand: bisection 0.4 -> 0.2 -> 0.1; a row whose first cumulative sum exceeds the limit keeps all', async () => {
    // alpha 0.4: row 0 limit 4 -> 2 removed, row 1 limit 10.4 -> 1 removed: 3/8 > 1/8
    // alpha 0.2: limits 2 and 5.2 -> 1 + 1 removed: 2/8 > 1/8
    // alpha 0.1: limits 1 and 2.6 -> row 0 removes its 1, row 1 has count 0 and keeps everything: 1/8, done
    const metric = tf.tensor2d([
      [3, 1, 4, 2],
      [6, 8, 5, 7],
    ]);
    const res = await wandaVariantMask(metric, 0.125);
    expect(res.alpha).toBe(0.1);
    expect(res.sparsity).toBe(0.125);
    expect(res.mask.arraySync()).toEqual([
      [0, 1, 0, 0],
      [0, 0, 0, 0],
    ]);
    const ref = refWandaVariant(metric.dataSync() as Float32Array, 2, 4, 0.125);
    expect(maskOf(res.mask)).toEqual(ref.mask);
    expect(ref.alpha).toBe(0.1);
    tf.dispose([metric, res.mask]);
  });

  it('rejects statistics of another method, of another size, or with no sample', async () => {
    const weight = tf.zeros([4, 8]) as tf.Tensor2D;
    const o = options(UNSTRUCTURED);
    const other = createStats(sparsegpt, 8);
    const wrongSize = createStats(wanda, 16);
    const empty = createStats(wanda, 8);
    other?.add(tf.ones([1, 2, 8]) as tf.Tensor3D);
    await expect(async () => wanda.prune(weight, other, o)).rejects.toThrow(
      new ConfigError("statistics: 'scaler' was not collected (collected: hessian)"),
    );
    await expect(async () => wanda.prune(weight, null, o)).rejects.toThrow(ConfigError);
    await expect(async () => wanda.prune(weight, wrongSize, o)).rejects.toThrow(
      new ConfigError('wanda.prune: weight [4, 8] does not match statistics of 16 inputs'),
    );
    await expect(async () => wanda.prune(weight, empty, o)).rejects.toThrow(
      new ConfigError('wanda.prune: the statistics have seen no calibration sample'),
    );
    const x = tf.zeros([1, 3, 7]) as tf.Tensor3D;
    expect(() => empty?.add(x)).toThrow(new ConfigError('statistics.add: expected a layer input [batch, seq, 8], got [1, 3, 7]'));
    tf.dispose([weight, x]);
    [other, wrongSize, empty].forEach((s) => s?.dispose());
  });
});

describe('magnitude', () => {
  it('needs no calibration', async () => {
    expect(magnitude.stats).toEqual([]);
    expect(createStats(magnitude, 16)).toBeNull();
  });

  it.each([
    [16, 64, options(UNSTRUCTURED, 0.5)],
    [20, 96, options(UNSTRUCTURED, 0.37)],
    [16, 64, options(NM24)],
    [8, 128, options(NM48)],
  ])('mask on %i x %i (%j) matches the reference', async (out, inF, o) => {
    const rng = new TestRng(out + inF);
    const w = rng.normals(out * inF);
    const weight = tf.tensor2d(w, [out, inF]);
    const before = tf.memory().numTensors;
    const res = await magnitude.prune(weight, null, o);
    expect(tf.memory().numTensors).toBe(before + 2);
    const mask = maskOf(res.mask);
    expect(mask).toEqual(refMagnitudeMask(w, out, inF, refStructure(o)));
    if (o.structure.kind === 'unstructured') {
      // one threshold for the whole matrix: rows differ, the total is floor(numel p) + 1 without ties
      expect(mask.reduce((a, b) => a + b, 0)).toBe(Math.floor(out * inF * o.sparsity) + 1);
    }
    expectZeroedWhereMasked(res.weight, mask, w);
    tf.dispose([weight, res.weight, res.mask]);
  });

  it('keeps the reference <=: ties at the threshold are all removed', async () => {
    const weight = tf.tensor2d([
      [1, -1, 1, 2],
      [3, 1, -4, 1],
    ]);
    const res = await magnitude.prune(weight, null, options(UNSTRUCTURED, 0.25)); // sorted[2] = 1, six values <= 1
    expect(res.mask.arraySync()).toEqual([
      [1, 1, 1, 0],
      [0, 1, 0, 1],
    ]);
    tf.dispose([weight, res.weight, res.mask]);
  });
});

describe('SparseGPT', () => {
  it('H = (2/n) sum x x^T, batch-invariant bit for bit', async () => {
    const layer = makeLayer(3, 4, 24, 5, 9);
    const one = collect(sparsegpt, layer, 1) as SparseGptStats;
    const batched = collect(sparsegpt, layer, 3) as SparseGptStats;
    const got = one.hessian.dataSync();
    expect(Array.from(batched.hessian.dataSync())).toEqual(Array.from(got));
    const want = refHessian(layer.samples, layer.seq, layer.inF);
    let scale = 0;
    want.forEach((v) => (scale = Math.max(scale, Math.abs(v))));
    want.forEach((v, i) => expect(Math.abs((got[i] as number) - v)).toBeLessThanOrEqual(1e-5 * scale));
    one.dispose();
    batched.dispose();
  });

  it('upper Cholesky factor of H^-1 matches the three-step reference', async () => {
    const layer = makeLayer(4, 4, 48, 2, 40);
    const h = refHessian(layer.samples, layer.seq, layer.inF);
    const n = layer.inF;
    for (let j = 0; j < n; j++) h[j * n + j] = (h[j * n + j] as number) + 0.1;
    const got = upperCholeskyOfInverse(h, n);
    const want = refUpperCholeskyOfInverse(h, n);
    let scale = 0;
    want.forEach((v) => (scale = Math.max(scale, Math.abs(v))));
    want.forEach((v, i) => expect(Math.abs((got[i] as number) - v)).toBeLessThanOrEqual(1e-10 * scale));
    for (let i = 1; i < n; i++) expect(got[i * n]).toBe(0); // upper triangular
  });

  it.each([
    [0.05, 64, options(UNSTRUCTURED, 0.5)],
    [0.01, 32, options(NM24)],
    [0.2, 100, options(UNSTRUCTURED, 0.7)],
  ])('damp %f, blocksize %i (%j): mask and updated weights match the float64 reference with the same settings', async (damp, blocksize, o) => {
    const layer = makeLayer(Math.round(damp * 1000) + blocksize, 12, 160, 3, 64);
    const stats = collect(sparsegpt, layer, 3) as SparseGptStats;
    const weight = tf.tensor2d(layer.w, [12, 160]);
    const res = await sparsegpt.prune(weight, stats, o, { damp, blocksize });
    const ref = refSparseGpt(layer.w, Float64Array.from(stats.hessian.dataSync()), 12, 160, refStructure(o), { damp, blocksize });
    expect(maskOf(res.mask)).toEqual(ref.mask);
    const got = res.weight.dataSync();
    let scale = 0;
    let worst = 0;
    ref.weight.forEach((v, i) => {
      scale = Math.max(scale, Math.abs(v));
      worst = Math.max(worst, Math.abs((got[i] as number) - v));
    });
    expect(worst).toBeLessThanOrEqual(1e-4 * scale);
    // the defaults differ from these settings: another mask or other weights
    const plain = await sparsegpt.prune(weight, stats, o);
    expect(Array.from(plain.weight.dataSync())).not.toEqual(Array.from(got));
    tf.dispose([weight, res.weight, res.mask, plain.weight, plain.mask]);
    stats.dispose();
  });

  it.each([
    [16, 64, options(UNSTRUCTURED, 0.5)],
    [24, 200, options(UNSTRUCTURED, 0.6)], // two blocks, the second partial
    [32, 256, options(NM24)],
    [16, 256, options(NM48)],
  ])('%i x %i (%j): mask and updated weights match the float64 reference', async (out, inF, o) => {
    const layer = makeLayer(out * 13 + inF, out, inF, 4, 96);
    const stats = collect(sparsegpt, layer, 2) as SparseGptStats;
    const weight = tf.tensor2d(layer.w, [out, inF]);
    const before = tf.memory().numTensors;
    const res = await sparsegpt.prune(weight, stats, o);
    expect(tf.memory().numTensors).toBe(before + 2);
    const ref = refSparseGpt(layer.w, Float64Array.from(stats.hessian.dataSync()), out, inF, refStructure(o));
    const mask = maskOf(res.mask);
    expect(mask).toEqual(ref.mask);
    if (o.structure.kind === 'nm') {
      const { n, m } = o.structure;
      for (let g = 0; g < mask.length; g += m) expect(mask.subarray(g, g + m).reduce((a, b) => a + b, 0)).toBe(n);
    }
    const got = res.weight.dataSync();
    let scale = 0;
    ref.weight.forEach((v) => (scale = Math.max(scale, Math.abs(v))));
    let worst = 0;
    ref.weight.forEach((v, i) => (worst = Math.max(worst, Math.abs((got[i] as number) - v))));
    expect(worst).toBeLessThanOrEqual(1e-4 * scale);
    expectZeroedWhereMasked(res.weight, mask);
    // the kept weights were updated (this is not a pure mask)
    let changed = 0;
    mask.forEach((m, i) => (changed += m === 0 && got[i] !== layer.w[i] ? 1 : 0));
    expect(changed).toBeGreaterThan(mask.length / 4);
    tf.dispose([weight, res.weight, res.mask]);
    stats.dispose();
  });

  it('dead inputs (H_jj = 0) get H_jj = 1 and their weights zeroed', async () => {
    const layer = makeLayer(5, 8, 32, 3, 64);
    const deadCols = [3, 17];
    for (const x of layer.samples) for (let t = 0; t < layer.seq; t++) for (const j of deadCols) x[t * 32 + j] = 0;
    const stats = collect(sparsegpt, layer, 3) as SparseGptStats;
    const { dead } = prepareHinv(stats.hessian.dataSync() as Float32Array, 32);
    expect(dead.flatMap((d, j) => (d ? [j] : []))).toEqual(deadCols);
    const weight = tf.tensor2d(layer.w, [8, 32]);
    const o = options(UNSTRUCTURED, 0.25);
    const res = await sparsegpt.prune(weight, stats, o);
    const ref = refSparseGpt(layer.w, Float64Array.from(stats.hessian.dataSync()), 8, 32, refStructure(o));
    expect(maskOf(res.mask)).toEqual(ref.mask);
    const got = res.weight.dataSync();
    for (let r = 0; r < 8; r++) for (const j of deadCols) expect(got[r * 32 + j]).toBe(0);
    ref.weight.forEach((v, i) => expect(Math.abs((got[i] as number) - v)).toBeLessThanOrEqual(1e-4 * 4));
    tf.dispose([weight, res.weight, res.mask]);
    stats.dispose();
  });

  it('rejects an M that does not divide the block of 128 columns, and statistics of another method', async () => {
    const stats = createStats(sparsegpt, 96);
    const x = tf.ones([1, 4, 96]) as tf.Tensor3D;
    stats?.add(x);
    const weight = tf.ones([4, 96]) as tf.Tensor2D;
    await expect(async () => sparsegpt.prune(weight, stats, { sparsity: 1 / 3, structure: { kind: 'nm', n: 1, m: 3 } })).rejects.toThrow(
      new ConfigError('structure 1:3: SparseGPT forms N:M groups inside blocks of 128 columns, so M must divide 128'),
    );
    const w = createStats(wanda, 96);
    w?.add(x);
    await expect(async () => sparsegpt.prune(weight, w, options(UNSTRUCTURED))).rejects.toThrow(
      new ConfigError("statistics: 'hessian' was not collected (collected: scaler)"),
    );
    tf.dispose([x, weight]);
    stats?.dispose();
    w?.dispose();
  });
});

describe('all methods', () => {
  it('the registry lists every method and rejects unknown names', async () => {
    expect(METHOD_NAMES).toEqual(['magnitude', 'wanda', 'sparsegpt', 'ria']);
    for (const name of METHOD_NAMES) expect(getMethod(name).name).toBe(name);
    expect(() => getMethod('sparsgpt')).toThrow(
      new ConfigError("method: 'sparsgpt' is not one of magnitude, wanda, sparsegpt, ria"),
    );
    expect(() => getMethod('toString')).toThrow(ConfigError);
  });

  it.each(METHOD_NAMES)('%s rejects in %% M != 0, N >= M and sparsity out of range', async (name) => {
    const method = getMethod(name);
    const layer = makeLayer(9, 4, 30, 1, 4);
    const stats = method.stats.length > 0 ? collect(method, layer, 1) : null;
    const weight = tf.tensor2d(layer.w, [4, 30]);
    await expect(async () => method.prune(weight, stats, options(NM24))).rejects.toThrow(
      new ConfigError(
        "structure 2:4 needs the input size to be a multiple of 4; this layer's weight is [out, in] = [4, 30] and 30 % 4 = 2",
      ),
    );
    await expect(async () => method.prune(weight, stats, { sparsity: 0.5, structure: { kind: 'nm', n: 4, m: 4 } })).rejects.toThrow(
      new ConfigError('structure 4:4: N must be smaller than M'),
    );
    await expect(async () => method.prune(weight, stats, options(UNSTRUCTURED, 1))).rejects.toThrow(
      new ConfigError('sparsity: 1 is not a number in [0, 1)'),
    );
    await expect(async () => method.prune(weight, stats, options(UNSTRUCTURED, -0.5))).rejects.toThrow(ConfigError);
    if (name !== 'wanda') await expect(async () => method.prune(weight, stats, options(UNSTRUCTURED), { variant: true })).rejects.toThrow(ConfigError);
    weight.dispose();
    stats?.dispose();
  });

  it.each(METHOD_NAMES)('%s: statistics, prune and dispose leave no tensors behind', async (name) => {
    const method = getMethod(name);
    const layer = makeLayer(10, 8, 64, 3, 8);
    const weight = tf.tensor2d(layer.w, [8, 64]);
    const before = tf.memory().numTensors;
    for (let round = 0; round < 2; round++) {
      const stats = method.stats.length > 0 ? collect(method, layer, 2) : null;
      for (const o of [options(UNSTRUCTURED, 0.5), options(NM24)]) {
        const res = await method.prune(weight, stats, o);
        tf.dispose([res.weight, res.mask]);
      }
      if (name === 'wanda') {
        const res = await method.prune(weight, stats, { sparsity: 0.5, structure: UNSTRUCTURED }, { variant: true });
        tf.dispose([res.weight, res.mask]);
      }
      stats?.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    weight.dispose();
  });
});
