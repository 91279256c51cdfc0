/**
 * The GPU check (run by scripts/gpu-check.sh, in the clone or from its self-contained bundle): on the WebGPU adapter
 * Dawn finds, prints one JSON object with
 *   1. the adapter (vendor, architecture, device, description; `software: true` for llvmpipe / lavapipe / SwiftShader),
 *   2. forward parity with wasm (c4-llama-7m logits, max |diff|),
 *   3. forward tokens/s at seqlen 1024 (webgpu, and wasm on the same machine for scale),
 *   4. the Wanda prune of c4-llama-7m (calibration N x L from the C4 file, seed 0), wall time and phases,
 *   5. Wanda metric + mask of one synthetic LLaMA-7B-shaped block (hidden 4096, intermediate 11008).
 * Progress goes to stderr. A software adapter's figures are CPU figures: the output says so.
 *   npx tsx scripts/gpu-check.ts --model DIR --calibration FILE [--nsamples 32] [--seqlen 512] [--block 4096,11008]
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { webgpuLoaders } from '../lib/model/webgpu.js';
import { structureMask } from '../lib/prune/mask.js';
import { LINEAR_NAMES, type LinearName } from '../lib/prune/method.js';
import { prune } from '../lib/prune/prune.js';
import { wandaMetric } from '../lib/prune/wanda.js';

// A literal import, so a bundler puts the tfjs WebGPU backend in the same bundle as tfjs-core (evaluated only when
// called: navigator.gpu must be set first).
webgpuLoaders.tfjs = () => import('@tensorflow/tfjs-backend-webgpu');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    calibration: { type: 'string' },
    nsamples: { type: 'string', default: '32' },
    seqlen: { type: 'string', default: '512' },
    'forward-seqlen': { type: 'string', default: '1024' },
    reps: { type: 'string', default: '3' },
    block: { type: 'string', default: '4096,11008' },
  },
});
if (!values.model || !values.calibration) {
  process.stderr.write('gpu-check: --model DIR and --calibration FILE are required\n');
  process.exit(2);
}
const say = (s: string): void => void process.stderr.write(`gpu-check: ${s}\n`);
const secs = (t0: number): number => +((performance.now() - t0) / 1000).toFixed(3);

/** Seconds per call of `f` (after one warm-up), reading the result back so the GPU work is finished. */
async function timeForward(f: () => tf.Tensor, reps: number): Promise<number> {
  const once = async (): Promise<void> => {
    const t = f();
    await t.data();
    t.dispose();
  };
  await once();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await once();
  return (performance.now() - t0) / reps / 1000;
}

/**
 * The wasm reference runs single-threaded: a bundle does not carry tfjs-backend-wasm's dist file, which the threaded
 * start reads (lib/model/wasm-threads.ts). Its figures are there for scale, not as the wasm backend's best.
 */
const use = (backend: 'wasm' | 'webgpu') => initBackend(backend, backend === 'wasm' ? { threads: 1 } : {});

async function logitsOn(backend: 'wasm' | 'webgpu', ids: number[][]): Promise<Float32Array> {
  await use(backend);
  const m = await loadModel(values.model!);
  try {
    const l = m.model.logits(ids);
    const v = (await l.data()) as Float32Array;
    l.dispose();
    return v;
  } finally {
    m.dispose();
  }
}

async function forwardRate(backend: 'wasm' | 'webgpu', s: number, reps: number): Promise<{ secondsPerForward: number; tokensPerSecond: number }> {
  await use(backend);
  const m = await loadModel(values.model!);
  try {
    const ids = [Array.from({ length: s }, (_, i) => (i * 31 + 1) % m.model.config.vocabSize)];
    const t = await timeForward(() => m.model.logits(ids), reps);
    return { secondsPerForward: +t.toFixed(4), tokensPerSecond: +(s / t).toFixed(1) };
  } finally {
    m.dispose();
  }
}

/**
 * Wanda metric + unstructured 50% mask of each linear of one block of the given shape (random weights, scaler).
 * A matrix larger than the adapter can bind (`maxBindingBytes`) is skipped and named.
 */
async function syntheticBlock(h: number, inter: number, maxBindingBytes: number): Promise<Record<string, unknown>> {
  const shapes: Record<LinearName, [number, number]> = {
    q_proj: [h, h], k_proj: [h, h], v_proj: [h, h], o_proj: [h, h], gate_proj: [inter, h], up_proj: [inter, h], down_proj: [h, inter],
  };
  const perLinear: Record<string, number> = {};
  const skipped: string[] = [];
  let total = 0;
  for (const n of LINEAR_NAMES) {
    const [o, i] = shapes[n];
    if (o * i * 4 > maxBindingBytes) {
      skipped.push(`${n} [${o}, ${i}]: ${((o * i * 4) / 2 ** 20).toFixed(0)} MiB > the adapter's ${(maxBindingBytes / 2 ** 20).toFixed(0)} MiB binding limit`);
      say(`synthetic block ${n}: skipped (${skipped[skipped.length - 1]})`);
      continue;
    }
    const w = tf.randomNormal([o, i], 0, 0.02, 'float32', 1) as tf.Tensor2D;
    const scaler = tf.randomUniform([i], 0.1, 2, 'float32', 2) as tf.Tensor1D;
    await w.data(); // on the device before the clock starts
    const t0 = performance.now();
    const metric = wandaMetric(w, scaler);
    const mask = structureMask(metric, { sparsity: 0.5, structure: { kind: 'unstructured' } });
    const zeros = tf.sum(mask);
    const removed = (await zeros.data())[0]!;
    perLinear[n] = secs(t0);
    total += perLinear[n];
    if (removed !== o * Math.floor(i * 0.5)) throw new Error(`synthetic ${n}: ${removed} removed, expected ${o * Math.floor(i * 0.5)}`);
    tf.dispose([w, scaler, metric, mask, zeros]);
    say(`synthetic block ${n} [${o}, ${i}]: ${perLinear[n]} s`);
  }
  return {
    shape: { hidden: h, intermediate: inter },
    complete: skipped.length === 0,
    secondsPerBlock: +total.toFixed(3), // of the linears measured
    secondsPerLinear: perLinear,
    ...(skipped.length > 0 ? { skipped } : {}),
  };
}

const out: Record<string, unknown> = { check: 'gpu-check', node: process.version, platform: `${process.platform}-${process.arch}` };
const webgpu = await initBackend('webgpu');
const adapter = webgpu.adapter!;
out['adapter'] = adapter;
if (adapter.software) {
  out['warning'] = 'software adapter: it runs on the CPU; these are not GPU figures';
  say(out['warning'] as string);
}
say(`adapter: ${webgpu.note}`);

// 2. parity
const probe = [Array.from({ length: 128 }, (_, i) => (i * 7 + 3) % 4096), Array.from({ length: 128 }, (_, i) => (i * 13 + 1) % 4096)];
const ref = await logitsOn('wasm', probe);
const got = await logitsOn('webgpu', probe);
let maxDiff = 0;
for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
out['forwardParity'] = { against: 'wasm', tokens: '2 x 128', maxAbsLogitDiff: maxDiff, ok: maxDiff < 1e-3 };
say(`forward parity vs wasm: max |diff| ${maxDiff.toExponential(2)}`);

// 3. forward speed
const fs = Number(values['forward-seqlen']);
const reps = Number(values.reps);
out['forward'] = { seqlen: fs, batch: 1, wasmThreads: 1, webgpu: await forwardRate('webgpu', fs, reps), wasm: await forwardRate('wasm', fs, reps) };
say(`forward at seqlen ${fs}: ${JSON.stringify(out['forward'])}`);

// 4. Wanda prune of the model, end to end (calibration, layer loop, written checkpoint)
await initBackend('webgpu');
const dir = mkdtempSync(join(tmpdir(), 'gpu-check-'));
try {
  const t0 = performance.now();
  const r = await prune({
    model: values.model,
    out: join(dir, 'wanda'),
    method: 'wanda',
    sparsity: 0.5,
    calibration: values.calibration,
    nsamples: Number(values.nsamples),
    seqlen: Number(values.seqlen),
    seed: 0,
  });
  out['wandaPrune'] = { calibration: `${values.nsamples} x ${values.seqlen}, seed 0`, wallSeconds: secs(t0), sparsity: r.sparsity.overall, times: r.times };
  say(`Wanda prune: ${secs(t0)} s`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// 5. metric + mask of a synthetic LLaMA-7B-shaped block
const [bh, bi] = values.block.split(',').map(Number) as [number, number];
out['syntheticBlock'] = { method: 'wanda', sparsity: 0.5, ...(await syntheticBlock(bh, bi, adapter.maxBindingBytes)) };
await use('wasm'); // leaves the process in a plain state
console.log(JSON.stringify(out, null, 2));
