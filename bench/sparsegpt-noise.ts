/**
 * SparseGPT's own noise floor on one backend: how far its perplexity moves when its Hessians change by float32
 * rounding alone. The protocol of test/model/webgpu-methods.acceptance.test.ts (c4-llama-7m, 50% unstructured,
 * 8 x 128 tokens of C4, seed 0; perplexity on WikiText-2, 4 windows of 128), run
 *   - as is (the reference run),
 *   - with every Hessian entry H_ij = H_ji multiplied by (1 + u 2^-23), u uniform in (-1, 1) from a seeded generator,
 *     then rounded to float32 (each entry unchanged or one ulp away), for each seed,
 *   - with every Hessian accumulated in float64 on the host from the same layer inputs and rounded once (the exact
 *     Hessian, where the run accumulates it in float32),
 * and reports each run's perplexity and masks against the reference run, and per block where they part: the largest
 * Hessian difference (relative to sqrt(H_ii H_jj)), the masks that differ, the largest swept-weight difference
 * (relative to the largest swept weight). --webgpu adds the reference run on `--backend webgpu` (EGL_PLATFORM=surfaceless
 * for Mesa's software adapter), compared with the wasm reference the same way. The runs wrap the registry's SparseGPT
 * method for the length of this process, to record and vary its inputs (a measurement, not a way to prune).
 *   npx tsx bench/sparsegpt-noise.ts [--seeds 8] [--no-float64] [--webgpu]
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { evaluationIds, perplexityOfIds } from '../lib/eval/perplexity.js';
import { LINEAR_NAMES, linearTensorName } from '../lib/model/architecture.js';
import { initBackend } from '../lib/model/backend.js';
import { Checkpoint } from '../lib/model/checkpoint.js';
import { loadModel } from '../lib/model/load.js';
import type { PruneMethod } from '../lib/prune/method.js';
import { prune } from '../lib/prune/prune.js';
import { prepareHinv, sparsegpt, sparseGptSweep, type SparseGptOptions } from '../lib/prune/sparsegpt.js';
import { ActivationStats } from '../lib/prune/stats.js';
import { benchModelPath, benchSharedPath } from './common.js';

const { values } = parseArgs({
  options: {
    webgpu: { type: 'boolean', default: false },
    seeds: { type: 'string', default: '8' },
    'no-float64': { type: 'boolean', default: false },
  },
});
const MODEL = benchModelPath('c4-llama-7m');
const C4 = benchSharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
const WIKI = benchSharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl');

/** How a run changes the Hessian SparseGPT factors: not at all, by at most one ulp per entry, or exactly. */
type Variant = { kind: 'as-is' } | { kind: 'ulp'; seed: number } | { kind: 'float64' };

/** The symmetric one-ulp perturbation of `h` ([n, n]) by a seeded linear congruential generator. */
function perturb(h: Float32Array, n: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out = new Float32Array(h);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) out[i * n + j] = out[j * n + i] = h[i * n + j]! * (1 + (2 * next() - 1) * 2 ** -23);
  }
  return out;
}

/** Float64 sums of x x^T per statistics object (lower triangle), beside the float32 accumulation of `add`. */
const exact = new WeakMap<ActivationStats, Float64Array>();
const addFloat32 = ActivationStats.prototype.add;
function accumulateFloat64(this: ActivationStats, x: tf.Tensor3D): void {
  addFloat32.call(this, x);
  if (!this.needs.has('hessian')) return;
  const n = this.inFeatures;
  const h = exact.get(this) ?? new Float64Array(n * n);
  exact.set(this, h);
  const v = tf.tidy(() => tf.cast(x, 'float32')).dataSync() as Float32Array; // wasm / cpu only
  for (let o = 0; o < v.length; o += n) {
    for (let i = 0; i < n; i++) {
      const xi = v[o + i]!;
      for (let j = 0; j <= i; j++) h[i * n + j] = h[i * n + j]! + xi * v[o + j]!;
    }
  }
}

/** The Hessian `variant` gives SparseGPT for `stats`. */
async function hessianOf(stats: ActivationStats, variant: Variant): Promise<Float32Array> {
  const n = stats.inFeatures;
  const h = (await stats.hessian.data()) as Float32Array;
  if (variant.kind === 'ulp') return perturb(h, n, variant.seed);
  const sums = exact.get(stats)!;
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) out[i * n + j] = out[j * n + i] = (2 / stats.samples) * sums[i * n + j]!;
  return out;
}

/** What one run gave: the zero pattern of every linear, its Hessian and swept weights by name, the perplexity. */
interface Outcome {
  zeros: Uint8Array[];
  linears: Map<string, { h: Float32Array; q: Float32Array }>;
  ppl: number;
}

/** Prune with `variant` on the active backend (perplexity on it too). */
async function run(variant: Variant, dir: string, ids: number[]): Promise<Outcome> {
  const method = sparsegpt as PruneMethod<SparseGptOptions>;
  const original = method.prune;
  const linears: Outcome['linears'] = new Map();
  ActivationStats.prototype.add = variant.kind === 'float64' ? accumulateFloat64 : addFloat32;
  method.prune = async (w, stats, target, options, ref) => {
    let h: Float32Array = new Float32Array((await stats!.hessian.data()) as Float32Array);
    let r;
    if (variant.kind === 'as-is') r = await original.call(method, w, stats, target, options, ref);
    else {
      h = await hessianOf(stats!, variant);
      const { hinv, dead } = prepareHinv(h, stats!.inFeatures, options?.damp);
      r = sparseGptSweep(w, hinv, dead, target, options?.blocksize);
    }
    linears.set(ref!.name, { h, q: (await r.weight.data()) as Float32Array });
    return r;
  };
  try {
    await prune({ model: MODEL, out: dir, method: 'sparsegpt', sparsity: 0.5, calibration: C4, nsamples: 8, seqlen: 128, seed: 0, batchSize: 4, resumable: false });
  } finally {
    method.prune = original;
    ActivationStats.prototype.add = addFloat32;
  }
  const ckpt = Checkpoint.open(dir);
  const zeros: Uint8Array[] = [];
  for (let layer = 0; layer < ckpt.config.numLayers; layer++) {
    for (const n of LINEAR_NAMES) zeros.push(Uint8Array.from(ckpt.read(linearTensorName(layer, n)), (v) => (v === 0 ? 1 : 0)));
  }
  ckpt.close();
  const m = await loadModel(dir);
  try {
    return { zeros, linears, ppl: (await perplexityOfIds(m.model, ids, { seqlen: 128, maxWindows: 4, batchSize: 2 })).ppl };
  } finally {
    m.dispose();
  }
}

/** Per block: the largest Hessian and swept-weight differences of its linears and its masks that differ. */
function trace(a: Outcome, b: Outcome): string[] {
  const lines: string[] = [];
  for (let layer = 0; ; layer++) {
    const names = LINEAR_NAMES.map((n) => linearTensorName(layer, n).replace(/\.weight$/, '')).filter((n) => a.linears.has(n));
    if (names.length === 0) {
      if (layer === 0) throw new Error(`no recorded linear of block 0 among ${[...a.linears.keys()].slice(0, 3).join(', ')}`);
      return lines;
    }
    let [dh, dq, flips] = [0, 0, 0];
    for (const name of names) {
      const [x, y] = [a.linears.get(name)!, b.linears.get(name)!];
      const n = Math.round(Math.sqrt(x.h.length));
      for (let k = 0; k < x.h.length; k++) dh = Math.max(dh, Math.abs(x.h[k]! - y.h[k]!) / (Math.sqrt(x.h[Math.floor(k / n) * (n + 1)]! * x.h[(k % n) * (n + 1)]!) || 1));
      const top = x.q.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let k = 0; k < x.q.length; k++) {
        dq = Math.max(dq, Math.abs(x.q[k]! - y.q[k]!) / top);
        flips += (x.q[k] === 0) !== (y.q[k] === 0) ? 1 : 0;
      }
    }
    lines.push(`  block ${layer}: Hessian ${dh.toExponential(1)}, swept weights ${dq.toExponential(1)}, ${flips} zeros differ`);
  }
}

function report(backend: string, name: string, r: Outcome, ref: Outcome): void {
  let [differ, total] = [0, 0];
  r.zeros.forEach((z, k) => z.forEach((b, j) => ((differ += b !== ref.zeros[k]![j] ? 1 : 0), total++)));
  const rel = (r.ppl - ref.ppl) / ref.ppl;
  console.log(`${backend} sparsegpt ${name}: ppl ${r.ppl} (rel ${rel.toExponential(2)}), masks ${(100 * (1 - differ / total)).toFixed(3)}% equal (${differ} differ)`);
  if (r !== ref) console.log(trace(ref, r).join('\n'));
}

async function main(): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  const ids = await evaluationIds('wikitext2', WIKI, (await loadModel(MODEL, { blocks: false })).tokenizer, 128);
  const variants: Variant[] = [{ kind: 'as-is' }];
  for (let s = 1; s <= Number(values.seeds); s++) variants.push({ kind: 'ulp', seed: s });
  if (!values['no-float64']) variants.push({ kind: 'float64' });
  const tmp = mkdtempSync(join(tmpdir(), 'sparsegpt-noise-'));
  try {
    let ref: Outcome | null = null;
    for (const [i, v] of variants.entries()) {
      const r = await run(v, join(tmp, String(i)), ids);
      ref ??= r;
      report('wasm', v.kind === 'ulp' ? `Hessian within 1 ulp, seed ${v.seed}` : v.kind === 'float64' ? 'Hessian accumulated in float64' : 'as is', r, ref);
    }
    if (values.webgpu) {
      await initBackend('webgpu');
      report('webgpu', 'as is', await run({ kind: 'as-is' }, join(tmp, 'webgpu'), ids), ref!);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
