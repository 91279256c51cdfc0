/**
 * Which tfjs kernels give the same float32 results on WebGPU as on wasm, on seeded random inputs (one process: wasm
 * first, then webgpu; EGL_PLATFORM=surfaceless for Mesa's software adapter):
 *   - elementwise (div, mul, sub, square, and the shapes SparseGPT's sweep uses): against the correctly rounded
 *     float32 result computed on the host, on both backends;
 *   - the order statistic of SparseGPT's block threshold: `sortedValueTensor` without host reads against the host
 *     sort, on random, tied and zero-heavy values;
 *   - matMul, reductions and transcendental functions of the forward: webgpu against wasm, bit for bit.
 *   npx tsx bench/webgpu-kernels.ts
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../lib/model/backend.js';
import { sortedValueTensor } from '../lib/prune/mask.js';

/** Seeded uniform values in [0, 1). */
function uniform(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
}
const f = Math.fround;
const N = 1 << 16;
/** Seeded values of both signs over 20 binades (none 0). */
function spread(seed: number): Float32Array {
  const [u, e] = [uniform(N, seed), uniform(N, seed + 1)];
  return u.map((x, i) => (x - 0.5) * 2 ** (e[i]! * 20 - 10) || 1);
}
const A = spread(1);
const B = spread(3);

/** Elementwise results that differ from the correctly rounded float32 result. */
async function elementwise(): Promise<string[]> {
  const cases: [string, () => tf.Tensor, (i: number) => number][] = [
    ['div', () => tf.div(tf.tensor1d(A), tf.tensor1d(B)), (i) => f(A[i]! / B[i]!)],
    ['mul', () => tf.mul(tf.tensor1d(A), tf.tensor1d(B)), (i) => f(A[i]! * B[i]!)],
    ['sub', () => tf.sub(tf.tensor1d(A), tf.tensor1d(B)), (i) => f(A[i]! - B[i]!)],
    ['square', () => tf.square(tf.tensor1d(A)), (i) => f(A[i]! * A[i]!)],
    ['w^2 / d^2 ([128, 512] by [128, 1])', () => tf.div(tf.square(tf.tensor2d(A, [128, 512])), tf.square(tf.tensor2d(B.subarray(0, 128), [128, 1]))), (i) => f(f(A[i]! * A[i]!) / f(B[i >> 9]! * B[i >> 9]!))],
    ['err / scalar', () => tf.div(tf.tensor1d(A), tf.scalar(B[7]!)), (i) => f(A[i]! / B[7]!)],
  ];
  const lines: string[] = [];
  for (const [name, op, exact] of cases) {
    const t = tf.tidy(op);
    const v = (await t.data()) as Float32Array;
    t.dispose();
    let off = 0;
    v.forEach((x, i) => (off += Object.is(x, exact(i)) ? 0 : 1));
    lines.push(`${tf.getBackend()} ${name}: ${off} of ${v.length} not the correctly rounded float32`);
  }
  return lines;
}

/** `sortedValueTensor` without host reads against the host sort. */
async function orderStatistics(): Promise<string> {
  let [checked, differ] = [0, 0];
  const size = 128 * 768;
  const other = uniform(size, 8);
  const sets = [uniform(size, 5).map((u) => u ** 4), uniform(size, 6).map((u) => Math.floor(u * 50) / 7), uniform(size, 7).map((u, i) => (u < 0.6 ? 0 : other[i]!))];
  for (const values of sets) {
    const sorted = Float32Array.from(values).sort();
    const t = tf.tensor1d(values);
    for (const index of [0, 1, 12345, size >> 1, size - 1]) {
      const s = sortedValueTensor(t, index, 'none');
      differ += Object.is((await s.data())[0], sorted[index]) ? 0 : 1;
      checked++;
      s.dispose();
    }
    t.dispose();
  }
  return `${tf.getBackend()} sortedValueTensor (device order statistic): ${differ} of ${checked} differ from the host sort`;
}

/** Forward kernels whose results are compared between the backends. */
const FORWARD: [string, () => tf.Tensor][] = [
  ['matMul x^T x (K = 128: a Hessian fold)', () => tf.matMul(tf.transpose(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256])), tf.tensor2d(A.subarray(0, 128 * 256), [128, 256]))],
  ['matMul x W (K = 256: a linear, weights stored [in, out] as the forward keeps them)', () => tf.matMul(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256]), tf.tensor2d(B.subarray(0, 256 * 64), [256, 64]))],
  ['matMul x W^T with transposeB (not used by the forward)', () => tf.matMul(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256]), tf.tensor2d(B.subarray(0, 64 * 256), [64, 256]), false, true)],
  ['mean of squares over 256 (RMSNorm)', () => tf.mean(tf.square(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256])), -1)],
  ['sum over 128 rows', () => tf.sum(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256]), 0)],
  ['rsqrt', () => tf.rsqrt(tf.add(tf.abs(tf.tensor1d(A)), 0.1))],
  ['exp', () => tf.exp(tf.clipByValue(tf.tensor1d(A), -20, 20))],
  ['sigmoid', () => tf.sigmoid(tf.clipByValue(tf.tensor1d(A), -20, 20))],
  ['softmax over 256', () => tf.softmax(tf.clipByValue(tf.tensor2d(A.subarray(0, 128 * 256), [128, 256]), -20, 20))],
];

async function forward(): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const [, op] of FORWARD) {
    const t = tf.tidy(op);
    out.push((await t.data()) as Float32Array);
    t.dispose();
  }
  return out;
}

async function main(): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  const lines = [...(await elementwise()), await orderStatistics()];
  const wasm = await forward();
  await initBackend('webgpu');
  lines.push(...(await elementwise()), await orderStatistics());
  const gpu = await forward();
  FORWARD.forEach(([name], k) => {
    let [differ, rel] = [0, 0];
    wasm[k]!.forEach((w, i) => {
      const g = gpu[k]![i]!;
      if (!Object.is(w, g)) [differ, rel] = [differ + 1, Math.max(rel, Math.abs(w - g) / Math.abs(w))];
    });
    lines.push(`webgpu vs wasm ${name}: ${differ} of ${wasm[k]!.length} differ (largest ${rel.toExponential(1)} relative)`);
  });
  console.log(lines.join('\n'));
}

await main();
