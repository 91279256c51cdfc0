/**
 * OWL (lib/prune/owl.ts, REFERENCE.md 7.1): outlier ratios and block sparsities against the reference formulas.
 */
import { outlierRatio, owlSparsities } from '../../lib/prune/owl.js';
import { refOutlierRatio, refOwlSparsities } from '../helpers/reference-newer.js';
import { TestRng } from '../helpers/reference-prune.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('OWL', () => {
  it('outlier ratio: strict > M * mean over the whole block, in percent', () => {
    const rng = new TestRng(9);
    const parts = [Float32Array.from({ length: 300 }, () => Math.abs(rng.normal()) ** 3), Float32Array.from({ length: 77 }, () => Math.abs(rng.normal()))];
    for (const M of [3, 5, 7]) expect(outlierRatio(parts, M)).toBe(refOutlierRatio(parts, M));
    // by hand: mean 1, M = 2 -> values > 2 count: [0, 0, 0, 4] -> 25%
    expect(outlierRatio([Float32Array.from([0, 0, 0, 4])], 2)).toBe(25);
    expect(outlierRatio([Float32Array.from([0, 0, 2, 2])], 2)).toBe(0); // 2 is not > 2
  });

  it.each([
    [[1, 2, 3, 4, 5, 6], 0.7, 0.08],
    [[4.2, 0.3, 1.7, 9.9], 0.5, 0.08],
    [[0.5, 0.1, 0.9, 0.2, 0.7, 0.3, 0.4, 0.8], 0.6, 0.2],
  ])('sparsities from ratios %j at %f, lambda %f: the reference, mean = target, span = 2 lambda, more outliers -> less pruning', (ratios, s, lamda) => {
    const got = owlSparsities(ratios, s, lamda);
    expect(got).toEqual(refOwlSparsities(ratios, s, lamda));
    expect(got.reduce((a, b) => a + b, 0) / got.length).toBeCloseTo(s, 12);
    expect(Math.max(...got) - Math.min(...got)).toBeCloseTo(2 * lamda, 12);
    const iMax = ratios.indexOf(Math.max(...ratios));
    expect(got[iMax]).toBe(Math.min(...got));
  });

  it('a block whose sparsity would be <= 0 gets 0.01 (no upper clamp); equal ratios give the target everywhere', () => {
    expect(owlSparsities([0, 10], 0.05, 0.1)).toEqual(refOwlSparsities([0, 10], 0.05, 0.1)); // 0.15 and -0.05 -> 0.01
    expect(owlSparsities([0, 10], 0.05, 0.1)[1]).toBe(0.01);
    expect(owlSparsities([3, 3, 3], 0.6, 0.08)).toEqual([0.6, 0.6, 0.6]);
  });
});
