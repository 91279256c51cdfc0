/**
 * Kernels per backend (lib/model/backend.ts): the two attentions of the forward and the two host-read settings of
 * the mask give the same results on wasm, so the batched attention used on webgpu and tensorflow is checked in the
 * fast suite too (test/model/webgpu.acceptance.test.ts compares webgpu with wasm on c4-llama-7m).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { kernels, kernelsFor } from '../../lib/model/backend.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { smallestPerRowMask, sortedValueAt, sortedValueTensor } from '../../lib/prune/mask.js';
import { useTestBackend } from '../helpers/backend.js';
import { TinyRandom, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let gqa: LoadedModel; // the backend's kernels (per-head attention on wasm)
let gqaBatched: LoadedModel; // the same checkpoint with batched attention

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'kernels-'));
  writeTinyCheckpoint(join(tmp, 'gqa'), { numHeads: 4, numKvHeads: 2, seed: 7 });
  gqa = await loadModel(join(tmp, 'gqa'));
  gqaBatched = await loadModel(join(tmp, 'gqa'), { kernels: { ...kernels(), attention: 'batched' } });
});

afterAll(() => {
  gqa.dispose();
  gqaBatched.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

const rng = new TinyRandom(3);
const ids = (n: number): number[] => Array.from({ length: n }, () => Math.floor(rng.uniform() * 2048));

describe('attention: per-head and batched', () => {
  test('wasm and cpu take per-head attention and synchronous reads; webgpu and tensorflow batched', () => {
    expect(kernels()).toEqual(kernelsFor(tf.getBackend()));
    expect(kernelsFor('wasm')).toEqual({ attention: 'per-head', hostReads: 'sync', park: 'js-memory', windows: 'workers' });
    expect(kernelsFor('cpu')).toEqual({ attention: 'per-head', hostReads: 'sync', park: 'none', windows: 'backend' });
    expect(kernelsFor('webgpu')).toEqual({ attention: 'batched', hostReads: 'none', park: 'none', windows: 'backend' });
    expect(kernelsFor('tensorflow')).toEqual({ attention: 'batched', hostReads: 'sync', park: 'none', windows: 'backend' });
    expect(gqa.model.kernels).toBeNull(); // follows the active backend
    expect(gqaBatched.model.kernels?.attention).toBe('batched');
  });

  test('the same logits within 1e-5 (grouped-query attention, two sequences), and after a cached prefix', async () => {
    const batch = [ids(24), ids(24)];
    const context = ids(10);
    const conts = [ids(5), ids(5), ids(5)];
    const run = async (m: LoadedModel): Promise<{ logits: Float32Array; cached: Float32Array }> => {
      const { logits: pre, cache } = m.model.prefill(context);
      pre.dispose();
      try {
        return { logits: await read(m.model.logits(batch)), cached: await read(m.model.continueFrom(cache, conts)) };
      } finally {
        cache.dispose();
      }
    };
    const perHead = await run(gqa);
    const batched = await run(gqaBatched);
    expect(maxAbsDiff(batched.logits, perHead.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(batched.cached, perHead.cached)).toBeLessThan(1e-5);
    // the cached path equals the full forward of context + continuation (batched attention)
    const full = await read(gqaBatched.model.logits([[...context, ...conts[1]!]]));
    const v = gqaBatched.model.config.vocabSize;
    expect(maxAbsDiff(batched.cached.subarray(5 * v, 10 * v), full.subarray(10 * v, 15 * v))).toBeLessThan(1e-4);
  });

  test('no tensor left behind by the batched attention', () => {
    const once = (): void => {
      const { logits, cache } = gqaBatched.model.prefill(ids(8));
      logits.dispose();
      gqaBatched.model.continueFrom(cache, [ids(3), ids(3)]).dispose();
      cache.dispose();
      gqaBatched.model.logits([ids(12)]).dispose();
    };
    once(); // warm-up: the model's cached RoPE table and mask settle
    const before = tf.memory().numTensors;
    once();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('host reads: sync and none give the same masks and thresholds', () => {
  test('smallestPerRowMask with ties at the cut, without ties, k = 0 and k = cols: bit-identical', async () => {
    const tied = tf.tensor2d([3, 1, 1, 1, 2, 0, 5, 5, 5, 5, 1, 2], [2, 6]);
    const plain = tf.tensor2d(Array.from({ length: 40 }, (_, i) => Math.sin(i * 1.7)), [4, 10]);
    const cases: [tf.Tensor2D, number][] = [[tied as tf.Tensor2D, 2], [tied as tf.Tensor2D, 4], [plain as tf.Tensor2D, 5], [plain as tf.Tensor2D, 0], [plain as tf.Tensor2D, 10]];
    for (const [m, k] of cases) {
      const sync = await read(smallestPerRowMask(m, k, undefined, 'sync'));
      const none = await read(smallestPerRowMask(m, k, undefined, 'none'));
      expect(Array.from(none)).toEqual(Array.from(sync));
    }
    tf.dispose([tied, plain]);
  });

  test('sortedValueTensor is sortedValueAt on both settings', async () => {
    const values = tf.tensor2d([5, -1, 2, 2, 3, 0], [2, 3]);
    for (const i of [0, 2, 3, 5]) {
      const want = sortedValueAt(values, i);
      expect((await read(sortedValueTensor(values, i, 'sync')))[0]).toBe(want);
      expect((await read(sortedValueTensor(values, i, 'none')))[0]).toBe(want);
      expect(() => sortedValueTensor(values, 6, 'none')).toThrow('sorted index 6 is outside a tensor of 6 values');
    }
    values.dispose();
  });
});
