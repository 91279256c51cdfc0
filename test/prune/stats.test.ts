/**
 * Shared calibration statistics (lib/prune/stats.ts): merge of halves equals one pass; DSnoT's sum and pooled variance.
 */
import { ConfigError } from '../../lib/errors.js';
import { ActivationStats } from '../../lib/prune/stats.js';
import { refDsnotStats } from '../helpers/reference-newer.js';
import { refWandaScaler } from '../helpers/reference-prune.js';
import { makeLayer, collect } from '../helpers/newer-layers.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('statistics', () => {
  it('merge of two halves equals one pass over all samples (every statistic)', () => {
    const layer = makeLayer(3, 4, 24, 7, 9);
    const needs = ['scaler', 'sum', 'variance', 'hessian'] as const;
    const all = collect(layer, [...needs]);
    const a = collect(layer, [...needs], 0, 3);
    const b = collect(layer, [...needs], 3, 7);
    a.merge(b);
    expect(a.samples).toBe(7);
    expect(a.tokens).toBe(7 * 9);
    for (const [got, want] of [
      [a.scalerRow, all.scalerRow],
      [a.sumRow, all.sumRow],
      [a.variance, all.variance],
      [a.hessian, all.hessian],
    ] as const) {
      const g = got.dataSync();
      want.dataSync().forEach((v, i) => expect(Math.abs((g[i] as number) - v)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(v))));
    }
    // merging into empty statistics gives the other's values; merging mismatched statistics is refused
    const empty = new ActivationStats(24, [...needs]);
    empty.merge(all);
    expect(Array.from(empty.scalerRow.dataSync())).toEqual(Array.from(all.scalerRow.dataSync()));
    const other = new ActivationStats(24, ['scaler']);
    expect(() => other.merge(all)).toThrow(ConfigError);
    expect(() => new ActivationStats(12, ['scaler']).merge(other)).toThrow(ConfigError);
    [all, a, b, empty, other].forEach((s) => s.dispose());
  });

  it("DSnoT's sum and pooled variance follow the reference's running forms", () => {
    const layer = makeLayer(4, 4, 16, 5, 11);
    const stats = collect(layer, ['sum', 'variance', 'scaler']);
    const ref = refDsnotStats(layer.samples, layer.seq, layer.inF);
    const sum = stats.sumRow.dataSync();
    const variance = stats.variance.dataSync();
    ref.sum.forEach((v, j) => expect(Math.abs((sum[j] as number) - v)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(v))));
    ref.variance.forEach((v, j) => expect(Math.abs((variance[j] as number) - v)).toBeLessThanOrEqual(1e-5 * Math.max(1, v)));
    const scaler = stats.scalerRow.dataSync();
    refWandaScaler(layer.samples, layer.seq, layer.inF).forEach((v, j) => expect(Math.abs((scaler[j] as number) - v)).toBeLessThanOrEqual(2e-6 * v));
    stats.dispose();
  });
});
