/**
 * DSnoT (lib/prune/dsnot.ts, REFERENCE.md 7.3): the prune-and-grow cycle against a row-vectorised port of the reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import { dsnot, dsnotCycle } from '../../lib/prune/dsnot.js';
import { refDsnot, refDsnotInitial } from '../helpers/reference-newer.js';
import { makeLayer, collect, maskOf } from '../helpers/newer-layers.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

const UNSTRUCTURED = { kind: 'unstructured' } as const;

describe('DSnoT', () => {
  function dsnotCase(seed: number, out: number, inF: number, s: number) {
    const layer = makeLayer(seed, out, inF, 4, 10);
    const stats = collect(layer, ['scaler', 'sum', 'variance']);
    const scaler = Float32Array.from(stats.scalerRow.dataSync());
    const sum = Float32Array.from(stats.sumRow.dataSync());
    const variance = Float32Array.from(stats.variance.dataSync());
    const initialMask = refDsnotInitial(layer.w, scaler, out, inF, s);
    return { layer, stats, scaler, sum, variance, initialMask };
  }

  it.each([
    [8, 128, 0.5, 50, 0.1],
    [12, 200, 0.6, 50, 0.1],
    [6, 256, 0.7, 50, 0.1],
    [8, 128, 0.5, 10, 0.01],
    [8, 160, 0.5, 50, 5],
  ])('cycle on %i x %i at %f (%i cycles, threshold %f) equals the reference', (out, inF, s, cycles, threshold) => {
    const c = dsnotCase(out * inF + cycles, out, inF, s);
    const want = refDsnot({ rows: out, cols: inF, w: c.layer.w, initialMask: c.initialMask, scaler: c.scaler, sum: c.sum, variance: c.variance, maxCycle: cycles, threshold });
    const got = dsnotCycle(
      { rows: out, cols: inF, weight: c.layer.w, mask: c.initialMask, scaler: c.scaler, sum: c.sum, variance: c.variance },
      { cycles, threshold, skipLayer: 'mlp', powVar: 1 },
    );
    expect(got).toEqual(want);
    // swaps happen (the reference's quirks can also change a row's count: see REFERENCE.md 7.3)
    let changed = 0;
    got.forEach((v, i) => (changed += v !== c.initialMask[i] ? 1 : 0));
    if (threshold < 1) expect(changed).toBeGreaterThan(0);
    c.stats.dispose();
  });

  it('refine: the tensor path equals the cycle; N:M refused; attention only by default', async () => {
    const c = dsnotCase(77, 8, 128, 0.5);
    const weight = tf.tensor2d(c.layer.w, [8, 128]);
    const mask = tf.tensor2d(Float32Array.from(c.initialMask), [8, 128]);
    const o = dsnot.options.parse({}) as { cycles: number; threshold: number; skipLayer: 'mlp'; powVar: number };
    expect(o).toEqual({ cycles: 50, threshold: 0.1, skipLayer: 'mlp', powVar: 1 });
    const before = tf.memory().numTensors;
    const refined = await dsnot.refine(weight, mask, c.stats, { sparsity: 0.5, structure: UNSTRUCTURED }, o);
    expect(tf.memory().numTensors).toBe(before + 1);
    const want = refDsnot({ rows: 8, cols: 128, w: c.layer.w, initialMask: c.initialMask, scaler: c.scaler, sum: c.sum, variance: c.variance, maxCycle: 50, threshold: 0.1 });
    expect(maskOf(refined)).toEqual(want);
    await expect(async () => dsnot.refine(weight, mask, c.stats, { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } }, o)).rejects.toThrow(ConfigError);
    const ref = (linear: 'q_proj' | 'o_proj' | 'down_proj' | 'gate_proj') => ({ layer: 0, linear, name: `model.layers.0.x.${linear}` });
    expect([dsnot.applies(ref('q_proj'), o), dsnot.applies(ref('o_proj'), o), dsnot.applies(ref('gate_proj'), o), dsnot.applies(ref('down_proj'), o)]).toEqual([true, true, false, false]);
    expect(dsnot.applies(ref('down_proj'), { ...o, skipLayer: 'no_skip' })).toBe(true);
    tf.dispose([weight, mask, refined]);
    c.stats.dispose();
  });
});
