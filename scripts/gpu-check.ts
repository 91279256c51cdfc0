/**
 * The GPU check (run by scripts/gpu-check.sh, in the clone or from its self-contained bundle): on the WebGPU adapter
 * Dawn finds, prints one JSON line with
 *   0. the preflight (scripts/gpu-preflight.ts: platform, glibc, libstdc++, the NVIDIA Vulkan ICD) and the limits,
 *   1. the adapter (vendor, architecture, device, description; `software: true` for llvmpipe / lavapipe / SwiftShader),
 *   2. forward parity with wasm (c4-llama-7m logits, max |diff|),
 *   3. forward tokens/s at seqlen 1024 (webgpu, and wasm on the same machine for scale),
 *   4. the Wanda prune of c4-llama-7m (calibration N x L from the C4 file, seed 0), wall time and phases,
 *   5. Wanda metric + mask of one synthetic LLaMA-7B-shaped block (hidden 4096, intermediate 11008),
 *   6. every other method on webgpu against wasm (SparseGPT, the Wanda variant, RIA --permute, OWL, DSnoT; 8 x 128
 *      calibration): mask agreement, perplexity of the written checkpoints, seconds (skipped with --skip-methods).
 * Any failure, the time limit (--time-limit, default 300 s) included, is one JSON line {"ok": false, "stage", "error",
 * "fix"} on stdout and exit status 1, never a stack trace. --require-hardware (the bundle's default; --allow-software
 * turns it off) fails within seconds when the only adapter is a software one. Progress goes to stderr.
 *   npx tsx scripts/gpu-check.ts --model DIR --calibration FILE [--require-hardware] [--nsamples 32] [--seqlen 512]
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { PreflightError, REQUIREMENTS, preflight } from './gpu-preflight.js';
import { bindingLimitBytes, deviceLimits } from '../lib/model/binding.js';
import { evaluationIds, perplexityOfIds } from '../lib/eval/perplexity.js';
import { Checkpoint } from '../lib/model/checkpoint.js';
import { linearTensorName } from '../lib/model/architecture.js';
import type { PruneConfig } from '../lib/prune/prune.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { setupWebgpu, webgpuLoaders } from '../lib/model/webgpu.js';
import { structureMask } from '../lib/prune/mask.js';
import { LINEAR_NAMES, type LinearName } from '../lib/model/architecture.js';
import { prune } from '../lib/prune/prune.js';
import { wandaMetric } from '../lib/prune/wanda.js';

// A literal import, so a bundler puts the tfjs WebGPU backend in the same bundle as tfjs-core (evaluated only when
// called: navigator.gpu must be set first).
webgpuLoaders.tfjs = () => import('@tensorflow/tfjs-backend-webgpu');

const say = (s: string): void => void process.stderr.write(`gpu-check: ${s}\n`);
const secs = (t0: number): number => +((performance.now() - t0) / 1000).toFixed(3);

const started = performance.now();
let stage = 'arguments'; // what a failure is reported under

/** The one JSON line of a failure on stdout, then exit status 1 (no stack trace). */
function fail(e: unknown): never {
  const pe = e instanceof PreflightError ? e : null;
  const line = {
    check: 'gpu-check',
    ok: false,
    stage: pe?.stage ?? stage,
    error: (e instanceof Error ? e.message : String(e)).split('\n')[0],
    ...(pe ? { fix: pe.fix } : {}),
    requirements: REQUIREMENTS,
    seconds: secs(started),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

function args() {
  try {
    return parseArgs({
      options: {
        model: { type: 'string' },
        calibration: { type: 'string' },
        wikitext: { type: 'string' },
        nsamples: { type: 'string', default: '32' },
        seqlen: { type: 'string', default: '512' },
        'forward-seqlen': { type: 'string', default: '1024' },
        reps: { type: 'string', default: '3' },
        block: { type: 'string', default: '4096,11008' },
        'require-hardware': { type: 'boolean', default: false },
        'allow-software': { type: 'boolean', default: false },
        'skip-methods': { type: 'boolean', default: false },
        'time-limit': { type: 'string', default: '300' },
      },
    }).values;
  } catch (e) {
    return fail(e);
  }
}
const values = args();
const limit = Number(values['time-limit']);
if (!(limit > 0)) fail(new Error(`--time-limit '${values['time-limit']}': expected seconds > 0`));
setTimeout(() => fail(new Error(`the check did not finish within --time-limit ${limit} s`)), limit * 1000).unref();
if (!values.model || !values.calibration) fail(new Error('--model DIR and --calibration FILE are required'));

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

/** What one prune wrote: zero patterns of the linears and the perplexity of the checkpoint (4 windows of 128). */
async function pruneOutcome(backend: 'wasm' | 'webgpu', config: Partial<PruneConfig>, dir: string, wiki: number[]): Promise<{ zeros: Uint8Array[]; ppl: number; seconds: number }> {
  await use(backend);
  const t0 = performance.now();
  const out = join(dir, `${backend}-${config.method}-${Math.random().toString(36).slice(2)}`);
  await prune({ model: values.model!, out, calibration: values.calibration!, nsamples: 8, seqlen: 128, seed: 0, method: 'wanda', sparsity: 0.5, resumable: false, ...config });
  const seconds = secs(t0);
  const ckpt = Checkpoint.open(out);
  const zeros: Uint8Array[] = [];
  try {
    for (let l = 0; l < ckpt.config.numLayers; l++) for (const n of LINEAR_NAMES) zeros.push(Uint8Array.from(ckpt.read(linearTensorName(l, n)), (v) => (v === 0 ? 1 : 0)));
  } finally {
    ckpt.close();
  }
  const m = await loadModel(out);
  try {
    return { zeros, ppl: (await perplexityOfIds(m.model, wiki, { seqlen: 128, maxWindows: 4 })).ppl, seconds };
  } finally {
    m.dispose();
  }
}

/** 6. Each method on webgpu against wasm: mask agreement, perplexities, seconds. */
async function methodParity(): Promise<Record<string, unknown>> {
  const runs: Record<string, Partial<PruneConfig>> = {
    sparsegpt: { method: 'sparsegpt' },
    'sparsegpt 2:4': { method: 'sparsegpt', structure: { kind: 'nm', n: 2, m: 4 } },
    'wanda --use-variant': { method: 'wanda', useVariant: true },
    'ria 2:4 --permute': { method: 'ria', structure: { kind: 'nm', n: 2, m: 4 }, methodOptions: { permute: true } },
    'wanda + owl 70%': { method: 'wanda', sparsity: 0.7, layerwise: 'owl' },
    'wanda + dsnot': { method: 'wanda', refine: 'dsnot' },
  };
  await use('wasm');
  const tok = (await loadModel(values.model!, { blocks: false })).tokenizer;
  const wiki = values.wikitext ? await evaluationIds('wikitext2', values.wikitext, tok, 128) : tok.encode(readFileSync(values.calibration!, 'utf8').slice(0, 200_000));
  const dir = mkdtempSync(join(tmpdir(), 'gpu-check-methods-'));
  const result: Record<string, unknown> = { calibration: '8 x 128, seed 0', perplexity: `${values.wikitext ? 'WikiText-2' : 'calibration text'}, 4 windows of 128` };
  try {
    for (const [name, config] of Object.entries(runs)) {
      stage = `methods: ${name}`;
      const w = await pruneOutcome('wasm', config, dir, wiki);
      const g = await pruneOutcome('webgpu', config, dir, wiki);
      let differ = 0;
      let total = 0;
      w.zeros.forEach((z, k) => z.forEach((v, i) => ((differ += v !== g.zeros[k]![i] ? 1 : 0), total++)));
      const rel = Math.abs(g.ppl - w.ppl) / w.ppl;
      result[name] = { masksEqual: +(1 - differ / total).toFixed(6), pplWasm: w.ppl, pplWebgpu: g.ppl, pplRelDiff: rel, ok: differ / total <= 0.01 && rel < 1e-4, webgpuSeconds: g.seconds, wasmSeconds: w.seconds };
      say(`${name}: ${JSON.stringify(result[name])}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

const out: Record<string, unknown> = { check: 'gpu-check', ok: true, node: process.version };
stage = 'preflight';
out['preflight'] = preflight();
stage = 'adapter';
const requireHardware = values['require-hardware'] && !values['allow-software'];
if (requireHardware) {
  // Dawn's adapters are listed in about a second; a software one is refused before any work
  await setupWebgpu(false).catch((e: Error) => {
    throw new PreflightError('adapter', `no hardware WebGPU adapter: ${e.message}`, 'run on a machine with a GPU and its Vulkan driver (--allow-software runs the check on a software adapter: CPU figures)');
  });
}
const webgpu = await initBackend('webgpu');
const adapter = webgpu.adapter!;
out['adapter'] = adapter;
out['limits'] = { ...deviceLimits(), bindingLimitBytes: bindingLimitBytes() };
if (adapter.software) {
  out['warning'] = 'software adapter: it runs on the CPU; these are not GPU figures';
  say(out['warning'] as string);
}
say(`adapter: ${webgpu.note} (${secs(started)} s)`);

// 2. parity
stage = 'forward parity';
const probe = [Array.from({ length: 128 }, (_, i) => (i * 7 + 3) % 4096), Array.from({ length: 128 }, (_, i) => (i * 13 + 1) % 4096)];
const ref = await logitsOn('wasm', probe);
const got = await logitsOn('webgpu', probe);
let maxDiff = 0;
for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
out['forwardParity'] = { against: 'wasm', tokens: '2 x 128', maxAbsLogitDiff: maxDiff, ok: maxDiff < 1e-3 };
say(`forward parity vs wasm: max |diff| ${maxDiff.toExponential(2)}`);

// 3. forward speed
stage = 'forward speed';
const fs = Number(values['forward-seqlen']);
const reps = Number(values.reps);
out['forward'] = { seqlen: fs, batch: 1, wasmThreads: 1, webgpu: await forwardRate('webgpu', fs, reps), wasm: await forwardRate('wasm', fs, reps) };
say(`forward at seqlen ${fs}: ${JSON.stringify(out['forward'])}`);

// 4. Wanda prune of the model, end to end (calibration, layer loop, written checkpoint)
stage = 'wanda prune';
await initBackend('webgpu');
const dir = mkdtempSync(join(tmpdir(), 'gpu-check-'));
try {
  const t0 = performance.now();
  const r = await prune({
    model: values.model!,
    out: join(dir, 'wanda'),
    method: 'wanda',
    sparsity: 0.5,
    calibration: values.calibration!,
    nsamples: Number(values.nsamples),
    seqlen: Number(values.seqlen),
    seed: 0,
    resumable: false,
  });
  out['wandaPrune'] = { calibration: `${values.nsamples} x ${values.seqlen}, seed 0`, wallSeconds: secs(t0), sparsity: r.sparsity.overall, times: r.times };
  say(`Wanda prune: ${secs(t0)} s`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// 5. metric + mask of a synthetic LLaMA-7B-shaped block
stage = 'synthetic block';
const [bh, bi] = values.block.split(',').map(Number) as [number, number];
out['syntheticBlock'] = { method: 'wanda', sparsity: 0.5, ...(await syntheticBlock(bh, bi, bindingLimitBytes())) };

// 6. every other method against wasm
if (!values['skip-methods']) out['methods'] = await methodParity();
await use('wasm'); // leaves the process in a plain state
out['seconds'] = secs(started);
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
