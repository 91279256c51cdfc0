/**
 * Pruning cost per phase and peak RSS.
 *   npx tsx bench/prune.ts [--model DIR] [--calibration FILE] [--nsamples 128] [--seqlen 256] [--methods wanda,magnitude,sparsegpt]
 *                          [--synthetic-samples 8] [--synthetic-seqlen 128] [--synthetic-sparsegpt]
 *                          [--skip-model] [--skip-synthetic] [--io-mb 1024] [--io-block]
 * Part 1: full prune() runs of c4-llama-7m (times per phase from the run report).
 * Part 2: one synthetic decoder block of LLaMA-7B shape (hidden 4096, intermediate 11008, 32 heads): statistics
 *   accumulation and metric+mask time per method, extrapolated to 32 blocks, to compare with the paper's claim
 *   (Wanda metric + masks for all of LLaMA-7B: about 0.5 s on a GPU; SparseGPT about 200 s).
 * Part 3 (--io-mb 1024, 0 skips it): the memory-bound I/O of every block (bench/io.ts says the protocol). A BF16
 *   (then F16) safetensors file of that size, read into float32 by SafetensorsFile.readFloat32 and written from
 *   float32 by SafetensorsWriter, against cat, dd and a plain memcpy of the same bytes measured in the same run:
 *   warm page cache in CPU and wall seconds, cold (file dropped from the page cache) in wall seconds.
 *   --io-block: also the block load + save path of the layer loop on one LLaMA-7B-shaped block (about 1 GB of disk
 *   and 3 GB of memory while it runs).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../lib/model/backend.js';
import { prune } from '../lib/prune/prune.js';
import { getMethod, type MethodName } from '../lib/prune/registry.js';
import { createStats } from '../lib/prune/stats.js';
import { LINEAR_NAMES, type LinearName } from '../lib/model/architecture.js';
import { benchModelPath, benchSharedPath } from './common.js';
import { blockBench, ioBench } from './io.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    calibration: { type: 'string' },
    nsamples: { type: 'string', default: '128' },
    seqlen: { type: 'string', default: '256' },
    methods: { type: 'string', default: 'magnitude,wanda,sparsegpt' },
    backend: { type: 'string', default: 'auto' },
    'synthetic-samples': { type: 'string', default: '8' },
    'synthetic-seqlen': { type: 'string', default: '128' },
    'synthetic-sparsegpt': { type: 'boolean', default: false },
    'skip-model': { type: 'boolean', default: false },
    'skip-synthetic': { type: 'boolean', default: false },
    'io-mb': { type: 'string', default: '1024' },
    'io-block': { type: 'boolean', default: false },
  },
});
const backend = await initBackend(values.backend as BackendName);
const methods = values.methods.split(',') as MethodName[];
const out: Record<string, unknown> = { bench: 'prune', backend: backend.name };

// Part 1: the real model, end to end.
if (!values['skip-model']) {
  const model = values.model ?? benchModelPath('c4-llama-7m');
  const calibration = values.calibration ?? benchSharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
  const dir = mkdtempSync(join(tmpdir(), 'bench-prune-'));
  const runs: Record<string, unknown> = {};
  try {
    for (const method of methods) {
      const r = await prune({
        model,
        out: join(dir, method),
        method,
        sparsity: 0.5,
        calibration,
        nsamples: Number(values.nsamples),
        seqlen: Number(values.seqlen),
        batchSize: 8,
      });
      runs[method] = { times: r.times, sparsity: r.sparsity.overall, peakRssMB: Math.round(r.peakRssMB) };
      process.stderr.write(`${method}: ${r.times.total.toFixed(1)} s\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  out['model'] = { path: model, nsamples: Number(values.nsamples), seqlen: Number(values.seqlen), runs };
}

// Part 2: one synthetic LLaMA-7B block.
const H = 4096;
const I = 11008;
const shapes: Record<LinearName, [number, number]> = {
  q_proj: [H, H], k_proj: [H, H], v_proj: [H, H], o_proj: [H, H], gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I],
};
const samples = Number(values['synthetic-samples']);
const seqlen = Number(values['synthetic-seqlen']);
const synth: Record<string, unknown> = {};
for (const method of values['skip-synthetic'] ? [] : methods) {
  if (method === 'sparsegpt' && !values['synthetic-sparsegpt']) {
    synth[method] = 'skipped (pass --synthetic-sparsegpt: its float64 Cholesky of 11008x11008 runs in plain JS for many minutes)';
    continue;
  }
  const m = getMethod(method);
  let statsSeconds = 0;
  let pruneSeconds = 0;
  for (const name of LINEAR_NAMES) {
    const [o, i] = shapes[name];
    const w = tf.randomNormal([o, i]) as tf.Tensor2D;
    const stats = createStats(m, i);
    if (stats) {
      for (let k = 0; k < samples; k++) {
        const x = tf.randomNormal([1, seqlen, i]) as tf.Tensor3D;
        const t0 = performance.now();
        stats.add(x);
        await tf.ready();
        statsSeconds += (performance.now() - t0) / 1000;
        x.dispose();
      }
    }
    const t0 = performance.now();
    const r = await m.prune(w, stats, { sparsity: 0.5, structure: { kind: 'unstructured' } });
    r.weight.dataSync();
    pruneSeconds += (performance.now() - t0) / 1000;
    r.weight.dispose();
    r.mask.dispose();
    stats?.dispose();
    w.dispose();
    process.stderr.write(`synthetic ${method} ${name}: done\n`);
  }
  synth[method] = {
    statsSecondsPerBlock: +statsSeconds.toFixed(3),
    statsSamples: `${samples} x ${seqlen} tokens`,
    metricAndMaskSecondsPerBlock: +pruneSeconds.toFixed(3),
    metricAndMaskSecondsLlama7B: +(pruneSeconds * 32).toFixed(1),
  };
}
if (!values['skip-synthetic']) out['syntheticLlama7BBlock'] = synth;
if (Number(values['io-mb']) > 0) out['io'] = { F16: ioBench('F16', Number(values['io-mb'])), BF16: ioBench('BF16', Number(values['io-mb'])) };
if (values['io-block']) out['ioBlock7B'] = { BF16: await blockBench('BF16'), F16: await blockBench('F16') };
out['peakRssMB'] = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(JSON.stringify(out, null, 2));
