/**
 * Forward passes over a pool of worker threads (lib/model/forward-pool.ts): perplexity does not depend on the worker
 * count (bit for bit, also against the in-process loop), progress reaches the total, the main thread keeps no
 * tensor, adapters stay in-process, and when the pool is not used. The layer loop's calibration pool is tested in
 * test/prune/pipeline.test.ts (masks bit-identical for 1 and 2 workers).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { perplexityOfIds, windowLosses, makeWindows } from '../../lib/eval/perplexity.js';
import { ForwardPool, affordableWorkers, calibrationWorkers, modelBytes, poolWorkers } from '../../lib/model/forward-pool.js';
import { parseConfig } from '../../lib/model/config.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { applyLinear } from '../../lib/model/llama.js';
import { useTestBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint, randomIds } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let loaded: LoadedModel;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-pool-'));
  // grouped-query attention and biases: every kind of weight travels to the workers
  const tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 5, numLayers: 2, numKvHeads: 2, attentionBias: true, maxPositions: 64 });
  loaded = await loadModel(tiny.dir);
});

afterAll(() => {
  loaded?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('forward pool', () => {
  const seqlen = 32;
  const ids = randomIds(7 * seqlen + 5, 3); // 7 windows

  test('perplexity is bit-identical for 1 (in-process), 2 and 3 workers, and batch sizes 1 and 2', async () => {
    const one = await perplexityOfIds(loaded.model, ids, { seqlen, workers: 1 });
    for (const [workers, batchSize] of [
      [2, 1],
      [3, 1],
      [2, 2],
    ] as const) {
      const progress: number[] = [];
      const r = await perplexityOfIds(loaded.model, ids, { seqlen, workers, batchSize, onProgress: (d) => progress.push(d) });
      expect(r.ppl).toBe(one.ppl);
      expect(r).toMatchObject({ windows: 7, tokens: 7 * seqlen });
      expect(progress[0]).toBe(0);
      expect(progress.at(-1)).toBe(7);
      expect(progress).toEqual([...progress].sort((a, b) => a - b)); // never goes back
    }
  });

  test('the pool returns each batch its own losses, in order, equal to windowLosses in-process', async () => {
    const windows = makeWindows(ids, seqlen);
    const batches = [windows.slice(0, 3), windows.slice(3, 4), windows.slice(4, 7)];
    const pool = await ForwardPool.forModel(loaded.model, 2);
    expect(pool.backends).toEqual(['backend wasm (SIMD, single-threaded)', 'backend wasm (SIMD, single-threaded)']);
    let got: number[][];
    try {
      got = await pool.losses(batches);
    } finally {
      await pool.close();
    }
    expect(got.map((b) => b.length)).toEqual([3, 1, 3]);
    for (const [k, b] of batches.entries()) expect(got[k]).toEqual(await windowLosses(loaded.model, b));
  });

  test('the main thread keeps no tensor; a worker error rejects and the pool still closes', async () => {
    await perplexityOfIds(loaded.model, ids, { seqlen, workers: 2 }); // the model's RoPE table and mask settle
    const before = tf.memory().numTensors;
    await perplexityOfIds(loaded.model, ids, { seqlen, workers: 2 });
    expect(tf.memory().numTensors).toBe(before);
    const bad = [...ids];
    bad[3 * seqlen + 1] = 99_999; // outside the vocabulary: the worker's embed throws
    await expect(perplexityOfIds(loaded.model, bad, { seqlen, workers: 2 })).rejects.toThrow(/forward pool worker: embed: token id 99999/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('adapters (a linear override) are evaluated in-process, with the same result as the pool without them', async () => {
    let calls = 0;
    const forward = { linear: (_l: number, _n: string, x: tf.Tensor3D, base: Parameters<typeof applyLinear>[1]) => (calls++, applyLinear(x, base)) };
    const r = await perplexityOfIds(loaded.model, ids, { seqlen, workers: 2, forward });
    expect(calls).toBeGreaterThan(0); // ran here: the override cannot travel to a worker
    expect(r.ppl).toBe((await perplexityOfIds(loaded.model, ids, { seqlen, workers: 2 })).ppl);
  });

  test('poolWorkers: min(threads, batches), 0 below 2 or when a block or the head is not resident', () => {
    const m = loaded.model;
    expect(poolWorkers(m, 7, 2)).toBe(2);
    expect(poolWorkers(m, 1, 2)).toBe(0);
    expect(poolWorkers(m, 7, 1)).toBe(0);
    expect(modelBytes(m)).toBeGreaterThan(4 * m.embedTable.size);
    const block = m.blocks[1]!;
    m.blocks[1] = null;
    try {
      expect(poolWorkers(m, 7, 2)).toBe(0);
    } finally {
      m.blocks[1] = block;
    }
  });

  test('calibrationWorkers: min(threads, inputs), 0 below 2 or when a statistic needs the samples (Hessian)', () => {
    const c = loaded.model.config;
    const inputs = [1, 2, 3].map(() => tf.zeros([1, 8, c.hiddenSize]) as tf.Tensor3D);
    try {
      const wanda = [new Set(['scaler'] as const)];
      expect(calibrationWorkers(c, inputs, wanda, 2)).toBe(2);
      expect(calibrationWorkers(c, inputs, wanda, 8)).toBe(3);
      expect(calibrationWorkers(c, inputs, wanda, 1)).toBe(0);
      expect(calibrationWorkers(c, inputs.slice(0, 1), wanda, 2)).toBe(0);
      expect(calibrationWorkers(c, inputs, [new Set(['scaler', 'hessian'] as const)], 2)).toBe(0);
    } finally {
      tf.dispose(inputs);
    }
  });

  test('the pool never makes a model too large for the machine: workers only as many as fit a quarter of the free memory', () => {
    const GB = 1e9;
    expect(affordableWorkers(8, 1 * GB, 0, 64 * GB)).toBe(4); // 16 GB budget / 4 GB per worker
    expect(affordableWorkers(8, 1 * GB, 4 * GB, 64 * GB)).toBe(3); // the inputs take their share first
    expect(affordableWorkers(8, 1 * GB, 0, 24 * GB)).toBe(0); // one worker would fit: not worth a pool
    expect(affordableWorkers(2, 1e3, 0, 24 * GB)).toBe(2);
    // LLaMA-13B's block (1.27 GB in float32) on this 24 GB machine: in-process, as README "Larger than RAM" measures
    const c13 = parseConfig({
      architectures: ['LlamaForCausalLM'], hidden_size: 5120, intermediate_size: 13824, num_hidden_layers: 40,
      num_attention_heads: 40, num_key_value_heads: 40, vocab_size: 32000, max_position_embeddings: 4096,
      rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
    });
    const inputs = [0, 1, 2, 3].map(() => tf.zeros([1, 4, 8]) as tf.Tensor3D); // only their size is read
    try {
      const wanda = [new Set(['scaler'] as const)];
      expect(calibrationWorkers(c13, inputs, wanda, 2, 19 * GB)).toBe(0);
      expect(calibrationWorkers(c13, inputs, wanda, 2, 128 * GB)).toBe(2);
      expect(calibrationWorkers(c13, inputs, wanda, 16, 128 * GB)).toBe(4); // min(inputs, what fits: 6)
    } finally {
      tf.dispose(inputs);
    }
  });
});
