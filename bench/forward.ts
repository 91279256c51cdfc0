/**
 * Forward-pass throughput of a checkpoint (default c4-llama-7m) at a sequence length (default 1024), next to the raw
 * matMul rate of the same backend on the same shapes. Prints JSON.
 *   npx tsx bench/forward.ts [--model DIR] [--seqlen 1024] [--batch 1] [--backend wasm] [--threads N] [--reps 3]
 * With a list of thread counts (`--threads 1,2`) it instead times the forward of the wasm backend at each count, in
 * interleaved rounds (re-creating the backend each time, so load drift hits every count alike), checks that the
 * logits are bit-identical across counts, and prints each count's median wall time, its speed-up over the first
 * count, and the CPU seconds all threads spent (on a loaded machine the speed-up shrinks; the CPU time shows whether
 * the threads added work or only split it).
 * FLOPs counted: every linear (2*tokens*in*out), lm_head, and attention's two matMuls (2 * 2*s*s*headDim per head).
 */
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { linearShape } from '../lib/model/architecture.js';
import { LINEAR_NAMES } from '../lib/model/architecture.js';
import { benchModelPath } from './common.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seqlen: { type: 'string', default: '1024' },
    batch: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'auto' },
    reps: { type: 'string', default: '3' },
    threads: { type: 'string' },
  },
});
if (values.threads?.includes(',')) {
  await compareThreads(values.threads.split(',').map(Number));
  process.exit(0);
}
const backend = await initBackend(values.backend as BackendName, values.threads ? { threads: Number(values.threads) } : {});
const m = await loadModel(values.model ?? benchModelPath('c4-llama-7m'));
const c = m.model.config;
const s = Number(values.seqlen);
const b = Number(values.batch);
const reps = Number(values.reps);
const ids = Array.from({ length: b }, (_, j) => Array.from({ length: s }, (_, i) => (i * 31 + j * 7 + 1) % c.vocabSize));

function timeIt(f: () => tf.Tensor | tf.Tensor[]): number {
  const run = (): void => {
    const r = f();
    for (const t of Array.isArray(r) ? r : [r]) {
      t.dataSync();
      t.dispose();
    }
  };
  run(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  return (performance.now() - t0) / reps / 1000;
}

// FLOPs of one forward
const tokens = b * s;
let linearFlops = 0;
for (const n of LINEAR_NAMES) {
  const [out, inp] = linearShape(c, n);
  linearFlops += 2 * tokens * inp * out;
}
linearFlops *= c.numLayers;
const headFlops = 2 * tokens * c.hiddenSize * c.vocabSize;
const attnFlops = c.numLayers * b * c.numHeads * 2 * (2 * s * s * c.headDim);
const flops = linearFlops + headFlops + attnFlops;

const forwardSeconds = timeIt(() => m.model.logits(ids));

// Raw matMul on the same shapes (one instance of each distinct shape, weighted by how often the forward runs it).
const shapes: { m: number; k: number; n: number; count: number }[] = [];
for (const n of LINEAR_NAMES) {
  const [out, inp] = linearShape(c, n);
  shapes.push({ m: tokens, k: inp, n: out, count: c.numLayers });
}
shapes.push({ m: tokens, k: c.hiddenSize, n: c.vocabSize, count: 1 });
shapes.push({ m: s, k: c.headDim, n: s, count: c.numLayers * b * c.numHeads }); // q kT
shapes.push({ m: s, k: s, n: c.headDim, count: c.numLayers * b * c.numHeads }); // p v
let rawSeconds = 0;
for (const sh of shapes) {
  const a = tf.randomNormal([sh.m, sh.k]);
  const w = tf.randomNormal([sh.k, sh.n]);
  rawSeconds += timeIt(() => tf.matMul(a, w)) * sh.count;
  a.dispose();
  w.dispose();
}
const forwardGflops = flops / forwardSeconds / 1e9;
const rawGflops = flops / rawSeconds / 1e9;
console.log(
  JSON.stringify(
    {
      bench: 'forward',
      model: m.dir,
      backend: backend.name,
      threads: backend.threads,
      seqlen: s,
      batch: b,
      gflopPerForward: +(flops / 1e9).toFixed(3),
      forwardSeconds: +forwardSeconds.toFixed(3),
      tokensPerSecond: +(tokens / forwardSeconds).toFixed(1),
      forwardGflops: +forwardGflops.toFixed(2),
      rawMatmulGflops: +rawGflops.toFixed(2),
      ratio: +(forwardGflops / rawGflops).toFixed(3),
    },
    null,
    2,
  ),
);
m.dispose();

/** Forward time of the wasm backend per thread count, interleaved rounds; logits must not depend on the count. */
async function compareThreads(counts: number[]): Promise<void> {
  const model = values.model ?? benchModelPath('c4-llama-7m');
  const seqlen = Number(values.seqlen);
  const rounds = Number(values.reps);
  const times = new Map<number, number[]>(counts.map((n) => [n, []]));
  const cpu = new Map<number, number[]>(counts.map((n) => [n, []])); // process CPU seconds (all threads) per forward
  let reference: Float32Array | null = null;
  for (let round = 0; round < rounds; round++) {
    for (const n of counts) {
      const info = await initBackend('wasm', { threads: n });
      if (info.threads !== n) throw new Error(`asked ${n} threads, got ${info.threads}: ${info.note}`);
      const m = await loadModel(model);
      const ids = [Array.from({ length: seqlen }, (_, i) => (i * 31 + 1) % m.model.config.vocabSize)];
      const forward = (): Float32Array => tf.tidy(() => m.model.logits(ids)).dataSync() as Float32Array;
      const first = forward(); // warm-up (and the logits to compare)
      if (reference === null) reference = first;
      else if (first.length !== reference.length || first.some((v, i) => !Object.is(v, reference![i]))) {
        throw new Error(`logits with ${n} threads differ from those with ${counts[0]}`);
      }
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      forward();
      times.get(n)!.push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cpu.get(n)!.push((c.user + c.system) / 1e6);
      m.dispose();
      process.stderr.write(`round ${round + 1}/${rounds}: ${n} thread(s) ${times.get(n)!.at(-1)!.toFixed(3)} s\n`);
    }
  }
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const base = median(times.get(counts[0]!)!);
  console.log(
    JSON.stringify(
      {
        bench: 'forward-threads',
        model,
        seqlen,
        rounds,
        logitsIdentical: true,
        load: os.loadavg().map((x) => +x.toFixed(2)),
        cores: os.cpus().length,
        seconds: Object.fromEntries(counts.map((n) => [n, +median(times.get(n)!).toFixed(3)])),
        speedup: Object.fromEntries(counts.map((n) => [n, +(base / median(times.get(n)!)).toFixed(3)])),
        cpuSeconds: Object.fromEntries(counts.map((n) => [n, +median(cpu.get(n)!).toFixed(3)])),
      },
      null,
      2,
    ),
  );
}
