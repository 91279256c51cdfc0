/**
 * RIA (lib/prune/ria.ts, REFERENCE.md 7.2) against plain-loop ports of the reference: metric, per-matrix and per-row
 * unstructured masks, N:M, and the channel permutation (reallocation + linear-sum-assignment rounds).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import { ria, riaMetric } from '../../lib/prune/ria.js';
import { refRiaMetric, refRiaPermutedMask, refRiaUnstructured } from '../helpers/reference-newer.js';
import { refNmMask, refRowMask } from '../helpers/reference-prune.js';
import { makeLayer, collect, maskOf } from '../helpers/newer-layers.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

const UNSTRUCTURED = { kind: 'unstructured' } as const;

describe('RIA', () => {
  function riaCase(seed: number, out: number, inF: number) {
    const layer = makeLayer(seed, out, inF, 3, 8);
    const stats = collect(layer, ['scaler']);
    const scaler = Float32Array.from(stats.scalerRow.dataSync());
    const weight = tf.tensor2d(layer.w, [out, inF]);
    return { layer, stats, scaler, weight };
  }

  it.each([0.5, 0.3, 1])('metric (a = %f) equals the reference within float32 rounding', async (a) => {
    const { layer, stats, scaler, weight } = riaCase(11, 12, 40);
    const got = riaMetric(weight, stats.scalerRow, a);
    const want = refRiaMetric(layer.w, scaler, 12, 40, a);
    const g = got.dataSync();
    want.forEach((v, i) => expect(Math.abs((g[i] as number) - v)).toBeLessThanOrEqual(4e-7 * Math.abs(v)));
    tf.dispose([got, weight]);
    stats.dispose();
  });

  it.each([
    [16, 64, 0.5],
    [24, 100, 0.3],
    [32, 96, 0.7],
  ])('unstructured on %i x %i at %f: ONE threshold per matrix, int(R*C*s)+1 removed (no ties)', async (out, inF, s) => {
    const { stats, weight } = riaCase(out + inF, out, inF);
    const metric = riaMetric(weight, stats.scalerRow, 0.5);
    const m = Float32Array.from(metric.dataSync());
    const res = await ria.prune(weight, stats, { sparsity: s, structure: UNSTRUCTURED });
    const want = refRiaUnstructured(m, s);
    expect(maskOf(res.mask)).toEqual(want);
    expect(want.reduce((x, y) => x + y, 0)).toBe(Math.floor(out * inF * s) + 1);
    // rows differ in their counts: the comparison group is the matrix
    const counts = Array.from({ length: out }, (_, r) => want.subarray(r * inF, (r + 1) * inF).reduce((x, y) => x + y, 0));
    expect(new Set(counts).size).toBeGreaterThan(1);
    const w = res.weight.dataSync();
    want.forEach((v, i) => expect(w[i]).toBe(v ? 0 : (weight.dataSync()[i] as number)));
    // per_outneuron: Wanda-style rows
    const perRow = await ria.prune(weight, stats, { sparsity: s, structure: UNSTRUCTURED }, { alpha: 0.5, permute: false, perOutneuron: true });
    expect(maskOf(perRow.mask)).toEqual(refRowMask(m, out, inF, Math.floor(inF * s)));
    tf.dispose([metric, res.weight, res.mask, perRow.weight, perRow.mask, weight]);
    stats.dispose();
  });

  it.each([
    [2, 4],
    [4, 8],
    [1, 4],
  ])('%i:%i without permutation: N smallest of each M columns per row', async (n, m) => {
    const { stats, weight } = riaCase(7 * n + m, 16, 64);
    const metric = riaMetric(weight, stats.scalerRow, 0.5);
    const res = await ria.prune(weight, stats, { sparsity: n / m, structure: { kind: 'nm', n, m } });
    expect(maskOf(res.mask)).toEqual(refNmMask(metric.dataSync(), 16, 64, n, m));
    expect(res.permutation).toBeUndefined();
    tf.dispose([metric, res.weight, res.mask, weight]);
    stats.dispose();
  });

  it.each([
    [2, 4, 16, 32],
    [2, 4, 24, 48],
    [4, 8, 16, 64],
    [1, 4, 8, 40],
  ])('%i:%i --permute on %i x %i: reallocation + LSA rounds equal the reference; N:M in the permuted order only', async (n, m, out, inF) => {
    const { stats, weight } = riaCase(31 * out + inF, out, inF);
    const metric = riaMetric(weight, stats.scalerRow, 0.5);
    const values = Float32Array.from(metric.dataSync());
    const res = await ria.prune(weight, stats, { sparsity: n / m, structure: { kind: 'nm', n, m } }, { alpha: 0.5, permute: true, perOutneuron: false });
    const ref = refRiaPermutedMask(values, out, inF, n, m);
    expect(res.permutation).toEqual(ref.index);
    const mask = maskOf(res.mask);
    expect(mask).toEqual(ref.mask);
    // exactly n/m overall; N:M holds in the permuted column order
    expect(mask.reduce((x, y) => x + y, 0)).toBe((out * inF * n) / m);
    for (let r = 0; r < out; r++) {
      for (let g = 0; g < inF; g += m) {
        let z = 0;
        for (let k = g; k < g + m; k++) z += mask[r * inF + (res.permutation![k] as number)] as number;
        expect(z).toBe(n);
      }
    }
    // kept metric is at least that of plain N:M (the permutation's purpose), and the stored order is not N:M
    const plain = refNmMask(values, out, inF, n, m);
    const kept = (mk: Uint8Array): number => values.reduce((t, v, i) => t + (mk[i] ? 0 : v), 0);
    expect(kept(mask)).toBeGreaterThanOrEqual(kept(plain) - 1e-3);
    tf.dispose([metric, res.weight, res.mask, weight]);
    stats.dispose();
  });

  it('option checks: --permute needs N:M, per-outneuron needs unstructured, unknown keys refused', async () => {
    const { stats, weight } = riaCase(1, 4, 16);
    await expect(async () => ria.prune(weight, stats, { sparsity: 0.5, structure: UNSTRUCTURED }, { alpha: 0.5, permute: true, perOutneuron: false })).rejects.toThrow(
      new ConfigError('ria: --permute applies to N:M structures only'),
    );
    await expect(async () => ria.prune(weight, stats, { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, { alpha: 0.5, permute: false, perOutneuron: true })).rejects.toThrow(ConfigError);
    await expect(async () => ria.prune(weight, stats, { sparsity: 0.5, structure: UNSTRUCTURED }, { permut: true } as never)).rejects.toThrow(/ria: bad options/);
    weight.dispose();
    stats.dispose();
  });
});
