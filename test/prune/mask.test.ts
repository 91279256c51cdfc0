import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import {
  applyMask,
  checkNmShape,
  describeStructure,
  nmMask,
  smallestPerRowMask,
  sortedValueAt,
  structureMask,
  validateOptions,
} from '../../lib/prune/mask.js';
import { useTestBackend } from '../helpers/backend.js';
import { TestRng, refNmMask, refRowMask } from '../helpers/reference-prune.js';

beforeAll(async () => {
  await useTestBackend();
});

function maskOf(t: tf.Tensor): Uint8Array {
  return Uint8Array.from(t.dataSync(), (v) => {
    if (v !== 0 && v !== 1) throw new Error(`mask value ${v} is not 0 or 1`);
    return v;
  });
}

/** Random metric values; with `levels`, integers in [0, levels) so that ties are frequent. */
function randomMetric(rng: TestRng, size: number, levels?: number): Float32Array {
  return Float32Array.from({ length: size }, () =>
    levels === undefined ? Math.abs(rng.normal()) : Math.floor(rng.uniform() * levels),
  );
}

describe('validateOptions', () => {
  const u = { kind: 'unstructured' } as const;
  it.each([
    [{ sparsity: -0.1, structure: u }, 'sparsity: -0.1 is not a number in [0, 1)'],
    [{ sparsity: 1, structure: u }, 'sparsity: 1 is not a number in [0, 1)'],
    [{ sparsity: 1.5, structure: u }, 'sparsity: 1.5 is not a number in [0, 1)'],
    [{ sparsity: Number.NaN, structure: u }, 'sparsity: NaN is not a number in [0, 1)'],
    [{ sparsity: 1, structure: { kind: 'nm', n: 4, m: 4 } }, 'sparsity: 1 is not a number in [0, 1)'],
    [{ sparsity: 0.5, structure: { kind: 'nm', n: 4, m: 4 } }, 'structure 4:4: N must be smaller than M'],
    [{ sparsity: 0.5, structure: { kind: 'nm', n: 5, m: 4 } }, 'structure 5:4: N must be smaller than M'],
    [{ sparsity: 0, structure: { kind: 'nm', n: 0, m: 4 } }, 'structure 0:4: N and M must be positive integers'],
    [{ sparsity: 0.5, structure: { kind: 'nm', n: 1.5, m: 3 } }, 'structure 1.5:3: N and M must be positive integers'],
    [{ sparsity: 0.6, structure: { kind: 'nm', n: 2, m: 4 } }, 'structure 2:4 fixes sparsity at 0.5; got sparsity 0.6'],
  ] as const)('rejects %j', (options, message) => {
    expect(() => validateOptions(options)).toThrow(new ConfigError(message));
    expect(() => validateOptions(options)).toThrow(ConfigError);
  });

  it('accepts valid options', () => {
    expect(() => validateOptions({ sparsity: 0, structure: u })).not.toThrow();
    expect(() => validateOptions({ sparsity: 0.999, structure: u })).not.toThrow();
    expect(() => validateOptions({ sparsity: 0.5, structure: { kind: 'nm', n: 4, m: 8 } })).not.toThrow();
    expect(() => validateOptions({ sparsity: 0.25, structure: { kind: 'nm', n: 1, m: 4 } })).not.toThrow();
    expect(describeStructure({ kind: 'nm', n: 2, m: 4 })).toBe('2:4');
    expect(describeStructure(u)).toBe('unstructured');
  });

  it('names the layer shape and M when in % M != 0', () => {
    expect(() => checkNmShape([16, 30], 2, 4)).toThrow(
      new ConfigError(
        "structure 2:4 needs the input size to be a multiple of 4; this layer's weight is [out, in] = [16, 30] and 30 % 4 = 2",
      ),
    );
    const metric = tf.ones([4, 12]) as tf.Tensor2D;
    expect(() => nmMask(metric, 4, 8)).toThrow(/\[out, in\] = \[4, 12\] and 12 % 8 = 4/);
    metric.dispose();
  });
});

describe('smallestPerRowMask', () => {
  it.each([
    [16, 32, 0.5, undefined],
    [32, 96, 0.3, undefined],
    [17, 64, 0.7, 3], // many ties
    [8, 40, 0.5, 2], // two levels only
    [5, 33, 0.25, 1], // every value equal: the lowest indices go first
  ])('matches a stable sort: %i x %i at %f (levels %p)', (rows, cols, p, levels) => {
    const rng = new TestRng(rows * 1000 + cols);
    const data = randomMetric(rng, rows * cols, levels);
    const k = Math.floor(cols * p);
    const metric = tf.tensor2d(data, [rows, cols]);
    const mask = smallestPerRowMask(metric, k);
    const got = maskOf(mask);
    expect(got).toEqual(refRowMask(data, rows, cols, k));
    for (let r = 0; r < rows; r++) expect(got.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0)).toBe(k);
    tf.dispose([metric, mask]);
  });

  it('in row chunks (as large matrices are done): the same mask, nothing leaked', () => {
    const rng = new TestRng(4242);
    const [rows, cols] = [37, 48];
    const data = randomMetric(rng, rows * cols, 3); // ties too
    const metric = tf.tensor2d(data, [rows, cols]);
    const before = tf.memory().numTensors;
    for (const chunkElements of [cols, 5 * cols + 7, 16 * cols]) {
      const mask = smallestPerRowMask(metric, 20, chunkElements);
      expect(maskOf(mask)).toEqual(refRowMask(data, rows, cols, 20));
      mask.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    metric.dispose();
  });

  it('breaks ties by lower column index', () => {
    const metric = tf.tensor2d([
      [1, 0, 1, 0, 1, 0, 2, 0],
      [3, 3, 3, 3, 1, 1, 1, 1],
      [0, 0, 0, 0, 0, 0, 0, 0],
    ]);
    const mask = smallestPerRowMask(metric, 5);
    expect(mask.arraySync()).toEqual([
      [1, 1, 0, 1, 0, 1, 0, 1],
      [1, 0, 0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 0, 0, 0],
    ]);
    tf.dispose([metric, mask]);
  });

  it('handles k = 0 and k = cols, and rejects k outside', () => {
    const metric = tf.tensor2d([[3, 1, 2]]);
    const none = smallestPerRowMask(metric, 0);
    const all = smallestPerRowMask(metric, 3);
    expect(none.arraySync()).toEqual([[0, 0, 0]]);
    expect(all.arraySync()).toEqual([[1, 1, 1]]);
    expect(() => smallestPerRowMask(metric, 4)).toThrow(ConfigError);
    tf.dispose([metric, none, all]);
  });
});

describe('nmMask', () => {
  it.each([
    [2, 4, 16, 64, undefined],
    [4, 8, 24, 128, undefined],
    [2, 4, 16, 32, 2],
    [4, 8, 9, 64, 3],
    [1, 4, 4, 16, 1],
  ])('%i:%i on %i x %i (levels %p) matches the reference, N zeros per group', (n, m, rows, cols, levels) => {
    const rng = new TestRng(n * 100 + m * 10 + cols);
    const data = randomMetric(rng, rows * cols, levels);
    const metric = tf.tensor2d(data, [rows, cols]);
    const mask = nmMask(metric, n, m);
    const got = maskOf(mask);
    expect(got).toEqual(refNmMask(data, rows, cols, n, m));
    for (let g = 0; g < rows * cols; g += m) expect(got.subarray(g, g + m).reduce((a, b) => a + b, 0)).toBe(n);
    tf.dispose([metric, mask]);
  });
});

describe('structureMask, sortedValueAt, applyMask', () => {
  it('structureMask removes floor(in * p) per row, or N of M', () => {
    const rng = new TestRng(7);
    const data = randomMetric(rng, 16 * 50);
    const metric = tf.tensor2d(data, [16, 50]);
    const a = structureMask(metric, { sparsity: 0.33, structure: { kind: 'unstructured' } });
    expect(maskOf(a)).toEqual(refRowMask(data, 16, 50, 16)); // floor(50 * 0.33) = 16
    expect(() => structureMask(metric, { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } })).toThrow(
      /\[out, in\] = \[16, 50\] and 50 % 4 = 2/,
    );
    tf.dispose([metric, a]);
  });

  it('sortedValueAt is sorted(flatten)[index]', () => {
    const values = tf.tensor2d([
      [5, -1, 3],
      [0, 2, 2],
    ]);
    expect([0, 1, 2, 3, 4, 5].map((i) => sortedValueAt(values, i))).toEqual([-1, 0, 2, 2, 3, 5]);
    expect(() => sortedValueAt(values, 6)).toThrow(ConfigError);
    values.dispose();
  });

  it('applyMask sets removed weights to +0 and keeps the rest bit for bit', () => {
    const w = tf.tensor2d([
      [-1.5, 2.25, -0.125],
      [3, -4, 5],
    ]);
    const mask = tf.tensor2d([
      [1, 0, 1],
      [0, 1, 0],
    ]);
    const out = applyMask(w, mask);
    const got = Array.from(out.dataSync());
    expect(got).toEqual([0, 2.25, 0, 3, 0, 5]);
    expect(got.map((v) => Object.is(v, -0))).toEqual([false, false, false, false, false, false]);
    tf.dispose([w, mask, out]);
  });

  it('creates no lasting tensors', () => {
    const rng = new TestRng(3);
    const metric = tf.tensor2d(randomMetric(rng, 8 * 32, 4), [8, 32]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose([
        smallestPerRowMask(metric, 10),
        nmMask(metric, 2, 4),
        structureMask(metric, { sparsity: 0.5, structure: { kind: 'unstructured' } }),
      ]);
      sortedValueAt(metric, 5);
    }
    expect(tf.memory().numTensors).toBe(before);
    metric.dispose();
  });
});
