/**
 * Pruning a weight held in row chunks (`PruneMethod.pruneRows`, `MaskRefiner.refineRows` / `updateRows`): on webgpu
 * a linear over the binding limit is pruned in its row chunks (lib/prune/pipeline.ts). Here, on the test backend, each
 * method and refiner prunes one weight whole and in three uneven row chunks: the masks and the weights must be
 * identical (also those SparseGPT and ADMM update: a matMul over a chunk of output columns sums each output in the
 * same order here; a GPU may choose another kernel for another width, webgpu-chunked.acceptance.test.ts allows float32
 * rounding there). tfjs memory does not grow, also when a chunked call throws. The whole path (the model holding the
 * chunks, the forward, the layer loop) runs on the WebGPU software adapter in test/model/webgpu-chunked.acceptance.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import type { MaskRefiner, PruneMethod, PruneOptions } from '../../lib/prune/method.js';
import { getMethod, getRefiner } from '../../lib/prune/registry.js';
import { ActivationStats } from '../../lib/prune/stats.js';
import { useTestBackend } from '../helpers/backend.js';
import { TestRng } from '../helpers/reference-prune.js';

const OUT = 40;
const IN = 32;
const CHUNKS = [15, 15, 10]; // rows per chunk
const UNSTRUCTURED: PruneOptions = { sparsity: 0.5, structure: { kind: 'unstructured' } };
const NM24: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };

let weight: tf.Tensor2D; // [OUT, IN]
let tied: tf.Tensor2D; // the same with values rounded to 1/8: many equal magnitudes
let stats: ActivationStats;

beforeAll(async () => {
  await useTestBackend();
  const rng = new TestRng(11);
  const w = rng.normals(OUT * IN, 0.3);
  weight = tf.tensor2d(w, [OUT, IN]);
  tied = tf.tensor2d(w.map((v) => Math.round(v * 8) / 8), [OUT, IN]);
  stats = new ActivationStats(IN, ['scaler', 'sum', 'variance', 'hessian', 'gram']);
  for (let s = 0; s < 3; s++) {
    const x = rng.normals(24 * IN).map((v, i) => v * (1 + ((i % IN) % 5)));
    const t = tf.tensor3d(x, [1, 24, IN]);
    stats.add(t);
    t.dispose();
  }
});

afterAll(() => {
  tf.dispose([weight, tied]);
  stats.dispose();
});

/** `w` cut into row chunks of CHUNKS rows (the caller's). */
function rowsOf(w: tf.Tensor2D): tf.Tensor2D[] {
  return tf.split(w, CHUNKS, 0) as tf.Tensor2D[];
}

/** The values of row chunks joined (row-major: the whole matrix). */
async function joined(ts: readonly tf.Tensor2D[]): Promise<Float32Array> {
  const c = tf.concat([...ts], 0);
  try {
    return (await c.data()) as Float32Array;
  } finally {
    c.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

interface Case {
  method: string;
  target: PruneOptions;
  options?: Record<string, unknown>;
  input?: 'tied';
}

const CASES: Record<string, Case> = {
  'magnitude 50%': { method: 'magnitude', target: UNSTRUCTURED },
  'magnitude 50%, tied magnitudes': { method: 'magnitude', target: UNSTRUCTURED, input: 'tied' },
  'magnitude 2:4': { method: 'magnitude', target: NM24 },
  'wanda 50%': { method: 'wanda', target: UNSTRUCTURED },
  'wanda 2:4': { method: 'wanda', target: NM24 },
  'wanda variant': { method: 'wanda', target: UNSTRUCTURED, options: { variant: true } },
  'ria 50%': { method: 'ria', target: UNSTRUCTURED },
  'ria 50% per output neuron': { method: 'ria', target: UNSTRUCTURED, options: { perOutneuron: true } },
  'ria 2:4': { method: 'ria', target: NM24 },
  'ria 2:4 --permute': { method: 'ria', target: NM24, options: { permute: true } },
  'sparsegpt 50% (blocks of 8 columns)': { method: 'sparsegpt', target: UNSTRUCTURED, options: { blocksize: 8 } },
  'sparsegpt 2:4': { method: 'sparsegpt', target: NM24, options: { blocksize: 8 } },
  'admm 50%': { method: 'admm', target: UNSTRUCTURED, options: { iters: 6, rounds: 4 } },
  'admm 50%, tied magnitudes': { method: 'admm', target: UNSTRUCTURED, options: { iters: 3, rounds: 3 }, input: 'tied' },
  'admm 2:4 gradual': { method: 'admm', target: NM24, options: { iters: 6, rounds: 4 } },
  'admm 2:4 rounds 0': { method: 'admm', target: NM24, options: { iters: 4, rounds: 0 } },
};

describe('pruneRows: a weight in row chunks gets the mask of the whole', () => {
  test.each(Object.entries(CASES))('%s', async (_name, c) => {
    const method = getMethod(c.method) as PruneMethod<unknown>;
    const w = c.input === 'tied' ? tied : weight;
    const options = method.options.parse(c.options ?? {});
    const before = tf.memory().numTensors;
    const whole = await method.prune(w, stats, c.target, options);
    const rows = rowsOf(w);
    const chunked = await method.pruneRows!(rows, stats, c.target, options);
    try {
      expect(chunked.masks.map((m) => m.shape[0])).toEqual(CHUNKS);
      const [maskW, maskC] = [(await whole.mask.data()) as Float32Array, await joined(chunked.masks)];
      expect(maskC).toEqual(maskW);
      const removed = maskW.reduce((a, v) => a + v, 0);
      expect(removed).toBeGreaterThan(0.3 * OUT * IN); // a real mask, not an empty one
      const diff = maxAbsDiff(await joined(chunked.weights), (await whole.weight.data()) as Float32Array);
      expect(diff).toBe(0);
      expect(chunked.permutation).toEqual(whole.permutation);
      if (whole.reconstruction) {
        expect(chunked.reconstruction!.before).toBeCloseTo(whole.reconstruction.before, 5);
        expect(chunked.reconstruction!.after).toBeCloseTo(whole.reconstruction.after, 5);
      }
    } finally {
      tf.dispose([whole.weight, whole.mask, ...rows, ...chunked.weights, ...chunked.masks]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a chunked call that throws leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    const small = new ActivationStats(IN - 4, ['scaler', 'hessian', 'gram']);
    const rows = rowsOf(weight);
    try {
      for (const name of ['wanda', 'ria', 'sparsegpt', 'admm']) {
        const method = getMethod(name) as PruneMethod<unknown>;
        await expect(method.pruneRows!(rows, small, UNSTRUCTURED, method.options.parse({}))).rejects.toThrow(ConfigError);
      }
      const magnitude = getMethod('magnitude') as PruneMethod<unknown>;
      await expect(magnitude.pruneRows!(rows, null, { sparsity: 1.5, structure: { kind: 'unstructured' } }, {})).rejects.toThrow(/sparsity: 1.5/);
    } finally {
      tf.dispose(rows);
      small.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('refiners on row chunks: the result of the whole', () => {
  test.each([
    ['dsnot', { skipLayer: 'no_skip', cycles: 20, threshold: 0 }],
    ['admm', { iters: 5 }],
  ] as const)('%s', async (name, opts) => {
    const refiner = getRefiner(name) as MaskRefiner<unknown>;
    const options = refiner.options.parse(opts);
    const before = tf.memory().numTensors;
    const wanda = getMethod('wanda') as PruneMethod<unknown>;
    const start = await wanda.prune(weight, stats, UNSTRUCTURED, {});
    const rows = rowsOf(weight);
    const masks = rowsOf(start.mask);
    const made: tf.Tensor[] = [start.weight, start.mask, ...rows, ...masks];
    try {
      let got: Float32Array;
      let want: Float32Array;
      if (refiner.update) {
        const whole = await refiner.update(weight, start.mask, stats, UNSTRUCTURED, options);
        const chunked = await refiner.updateRows!(rows, masks, stats, UNSTRUCTURED, options);
        made.push(whole.weight, whole.mask, ...chunked.weights, ...chunked.masks);
        expect(await joined(chunked.masks)).toEqual(await whole.mask.data());
        [got, want] = [await joined(chunked.weights), (await whole.weight.data()) as Float32Array];
      } else {
        const whole = await refiner.refine(weight, start.mask, stats, UNSTRUCTURED, options);
        const chunked = await refiner.refineRows!(rows, masks, stats, UNSTRUCTURED, options);
        made.push(whole, ...chunked);
        [got, want] = [await joined(chunked), (await whole.data()) as Float32Array];
        expect(maxAbsDiff(want, (await start.mask.data()) as Float32Array)).toBe(1); // it did change the mask
      }
      expect(maxAbsDiff(got, want)).toBe(0);
    } finally {
      tf.dispose(made);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
