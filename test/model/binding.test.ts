import * as tf from '@tensorflow/tfjs-core';
import { bindingLimitBytes, forceBindingLimit, checkBinding, gatherRows, matMulColumns, rowsPerChunk, uploadRowChunks } from '../../lib/model/binding.js';
import { UnsupportedError } from '../../lib/errors.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    v[i] = s / 2 ** 31 - 1;
  }
  return v;
}

describe('WebGPU binding limits: row-chunked tables', () => {
  test('off webgpu there is no limit: one chunk, nothing checked (a forced limit applies to webgpu only)', () => {
    forceBindingLimit(4096);
    expect(() => forceBindingLimit(10)).toThrow(/forceBindingLimit: expected a whole number of bytes >= 1024, got 10/);
    try {
      expect(bindingLimitBytes()).toBe(Infinity);
      expect(() => checkBinding([1 << 20, 1 << 10], 'x')).not.toThrow();
      const parts = uploadRowChunks(values(12, 1), 4, 3);
      expect(parts.map((p) => p.shape)).toEqual([[4, 3]]);
      tf.dispose(parts);
    } finally {
      forceBindingLimit(null);
    }
  });

  test('rowsPerChunk: as many rows as fit, all when the whole fits; a row over the limit is refused', () => {
    expect(rowsPerChunk(100, 10, 400)).toBe(10);
    expect(rowsPerChunk(100, 10, 399)).toBe(9);
    expect(rowsPerChunk(5, 10, 1e9)).toBe(5);
    expect(() => rowsPerChunk(5, 1000, 100)).toThrow(UnsupportedError);
  });

  test('gatherRows and matMulColumns over chunks give exactly the unchunked values; no tensor left behind', () => {
    const [rows, cols, n] = [37, 16, 9];
    const table = values(rows * cols, 7);
    const whole = tf.tensor2d(table, [rows, cols]);
    const per = 10; // 4 chunks: 10, 10, 10, 7 rows
    const parts = Array.from({ length: Math.ceil(rows / per) }, (_, i) =>
      tf.tensor2d(table.subarray(i * per * cols, Math.min(rows, (i + 1) * per) * cols), [Math.min(per, rows - i * per), cols]),
    );
    const ids = Int32Array.from([0, 36, 9, 10, 19, 20, 29, 30, 5, 5, 31]);
    const x = tf.tensor2d(values(n * cols, 3), [n, cols]);
    const partsT = parts.map((p) => tf.transpose(p) as tf.Tensor2D); // the head layout: [hidden, vocab chunk]
    const before = tf.memory().numTensors;
    const gotRows = gatherRows(parts, ids);
    const gotLogits = matMulColumns(x, partsT);
    expect(tf.memory().numTensors).toBe(before + 2);
    const wantRows = tf.gather(whole, tf.tensor1d(ids, 'int32'));
    const wantLogits = tf.matMul(x, tf.transpose(whole));
    expect(Array.from(gotRows.dataSync())).toEqual(Array.from(wantRows.dataSync()));
    expect(gotLogits.shape).toEqual([n, rows]);
    expect(Array.from(gotLogits.dataSync())).toEqual(Array.from(wantLogits.dataSync()));
    tf.dispose([whole, x, gotRows, gotLogits, wantRows, wantLogits, ...parts, ...partsT]);
  });
});
