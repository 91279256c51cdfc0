/** Zero counting (lib/model/sparsity.ts): values, tensors, and the linear weights of a checkpoint. */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LINEAR_NAMES, linearTensorName } from '../../lib/model/architecture.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { countTensorZeros, countZeros, linearSparsity, linearZeros } from '../../lib/model/sparsity.js';
import { useTestBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-sparsity-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('countZeros and countTensorZeros count +0 and -0, nothing else (NaN, tiny values)', async () => {
  const v = new Float32Array([0, -0, 1e-45, NaN, 3, 0, -2]);
  expect(countZeros(v)).toBe(3);
  const before = tf.memory().numTensors;
  const t = tf.tensor1d(v);
  expect(await countTensorZeros(t)).toBe(3);
  t.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

test('linearZeros and linearSparsity read every linear of every block as stored', async () => {
  const t = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 9 });
  const ckpt = Checkpoint.open(t.dir);
  try {
    const zeros = linearZeros(ckpt);
    expect(zeros.map((m) => m.tensor)).toEqual(
      Array.from({ length: t.config.numLayers }, (_, l) => LINEAR_NAMES.map((n) => linearTensorName(l, n))).flat(),
    );
    let z = 0;
    let p = 0;
    for (const m of zeros) {
      const values = t.tensors.get(m.tensor)!;
      expect([m.tensor, m.params, m.zeros]).toEqual([m.tensor, values.length, countZeros(values)]);
      z += m.zeros;
      p += m.params;
    }
    expect(linearSparsity(ckpt)).toBe(z / p);
  } finally {
    ckpt.close();
  }
});
