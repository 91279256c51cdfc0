/**
 * Per-core matMul rate of the wasm backend (XNNPACK, one thread) on the forward's shapes, in GFLOP per CPU second
 * (CPU time, so a loaded machine changes it little), for bench/matmul-ceiling.sh. Prints JSON.
 *   npx tsx bench/matmul-ceiling.ts [--reps 20]
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/model/backend.js';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '20' } } });
const reps = Number(values.reps);
await initBackend('wasm', { threads: 1 });
// c4-llama-7m at seqlen 512: the MLP, attention projections, lm_head, one head's scores and context
const SHAPES: [number, number, number][] = [[512, 256, 768], [512, 768, 256], [512, 256, 256], [512, 256, 4096], [512, 32, 512], [512, 512, 32]];
const out: Record<string, number> = {};
for (const [m, k, n] of SHAPES) {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  tf.matMul(a, b).dispose(); // warm-up (XNNPACK packs the weights once per operator)
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) tf.matMul(a, b).dispose();
  const c = process.cpuUsage(c0);
  out[`${m}x${k}x${n}`] = +((2 * m * k * n * reps) / ((c.user + c.system) / 1e6) / 1e9).toFixed(1);
  tf.dispose([a, b]);
}
console.log(JSON.stringify({ side: 'wasm XNNPACK, 1 thread', gflopPerCpuSecond: out }));
