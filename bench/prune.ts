/**
 * Pruning cost per phase and peak RSS.
 *   npx tsx bench/prune.ts [--model DIR] [--calibration FILE] [--nsamples 128] [--seqlen 256] [--methods wanda,magnitude,sparsegpt]
 *                          [--synthetic-samples 8] [--synthetic-seqlen 128] [--synthetic-sparsegpt]
 * Part 1: full prune() runs of c4-llama-7m (times per phase from the run report).
 * Part 2: one synthetic decoder block of LLaMA-7B shape (hidden 4096, intermediate 11008, 32 heads): statistics
 *   accumulation and metric+mask time per method, extrapolated to 32 blocks, to compare with the paper's claim
 *   (Wanda metric + masks for all of LLaMA-7B: about 0.5 s on a GPU; SparseGPT about 200 s).
 * Part 3 (--io-mb 1024, 0 skips it): the memory-bound I/O of every block. A BF16 (then F16) safetensors file of
 *   that size, read into float32 by SafetensorsFile.readFloat32 and written from float32 by SafetensorsWriter,
 *   on the same bytes: cold (the file dropped from the page cache, as a model larger than RAM is read) against
 *   `cat file > /dev/null`, wall seconds; warm (page cache) against `dd if=file of=/dev/null bs=4M` (cat to
 *   /dev/null splices without copying the bytes into memory) and writing against `dd if=file of=copy bs=4M`, in
 *   CPU seconds of the process doing it (best of 3; CPU time is what a loaded machine distorts least).
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../lib/model/backend.js';
import { prune } from '../lib/prune/prune.js';
import { getMethod, type MethodName } from '../lib/prune/registry.js';
import { createStats } from '../lib/prune/stats.js';
import { LINEAR_NAMES, type LinearName } from '../lib/prune/method.js';
import { benchModelPath, benchSharedPath } from './common.js';
import { SafetensorsFile, SafetensorsWriter, type DType } from '../lib/model/safetensors.js';
import { syntheticValues } from '../scripts/make-synthetic-llama.js';

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
    const r = m.prune(w, stats, { sparsity: 0.5, structure: { kind: 'unstructured' } });
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
out['peakRssMB'] = Math.round(process.resourceUsage().maxRSS / 1024);
console.log(JSON.stringify(out, null, 2));

/** Best of `n` runs of `f`: wall seconds and CPU seconds (user + system) of this process. */
function best(n: number, f: () => void): { wall: number; cpu: number } {
  let b = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    const c = process.cpuUsage(c0);
    const r = { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
    if (r.cpu < b.cpu) b = r;
  }
  return b;
}

/** Best of `n` runs of a shell command under /usr/bin/time: wall and CPU seconds of the command. */
function bestShell(n: number, cmd: string): { wall: number; cpu: number } {
  let b = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < n; i++) {
    const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', 'sh', '-c', cmd], { encoding: 'utf8' });
    const [e, u, sy] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
    if (u! + sy! < b.cpu) b = { wall: e!, cpu: u! + sy! };
  }
  return b;
}

/**
 * Part 3: reading `dtype` safetensors into float32 and writing float32 out as `dtype`, against cat on the same
 * bytes. Both in wall seconds and in CPU seconds of the process doing it (CPU time is what a loaded machine does
 * not distort: cat's short bursts get the CPU sooner than a long loop).
 */
function ioBench(dtype: DType, mb: number): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-io-'));
  try {
    const rows = 4096;
    const cols = 11008; // a LLaMA-7B MLP matrix: 45M values, 90 MB in 16 bits
    const count = Math.max(1, Math.round((mb * 1e6) / (rows * cols * 2)));
    const plan = Array.from({ length: count }, (_, i) => ({ name: `w${i}`, shape: [rows, cols], dtype }));
    const values = syntheticValues(rows * cols, 0, 'bench', 'weight');
    const file = join(dir, 'a.safetensors');
    const write = best(3, () => {
      const w = new SafetensorsWriter(file, plan);
      for (const t of plan) w.write(t.name, values);
      w.finish();
    });
    const bytes = statSync(file).size;
    const reps = 10; // dd runs `reps` times per timing: /usr/bin/time counts CPU in 10 ms steps
    const per = (r: { wall: number; cpu: number }): { wall: number; cpu: number } => ({ wall: r.wall / reps, cpu: r.cpu / reps });
    const loop = (cmd: string): string => `for i in $(seq ${reps}); do ${cmd}; done`;
    const evict = (): void => {
      spawnSync('sync', [file]); // dirty pages cannot be dropped
      spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']); // drop this file from the page cache
    };
    const f = SafetensorsFile.open(file);
    const readAll = (): void => {
      for (const t of plan) f.readFloat32(t.name);
    };
    let read: { wall: number; cpu: number };
    let cold: { cat: number; ours: number };
    try {
      // cold: from the disk (the case of a model larger than RAM), wall seconds
      evict();
      const catCold = bestShell(1, `cat '${file}' > /dev/null`).wall;
      evict();
      const oursCold = best(1, readAll).wall;
      cold = { cat: catCold, ours: oursCold };
      // warm: from the page cache, CPU seconds. `cat > /dev/null` splices without copying the bytes into memory
      // (~0 CPU), so the warm baseline is dd's read() into a buffer
      bestShell(1, `cat '${file}' > /dev/null`);
      read = best(3, readAll);
    } finally {
      f.close();
    }
    const catRead = per(bestShell(3, loop(`dd if='${file}' of=/dev/null bs=4M status=none`)));
    const catWrite = per(bestShell(3, loop(`dd if='${file}' of='${join(dir, 'copy')}' bs=4M status=none`)));
    const gbps = (s: number): number => +(bytes / 1e9 / s).toFixed(2);
    const ratio = (a: number, b: number): number => +(a / b).toFixed(2);
    process.stderr.write(
      `io ${dtype}: cold read ${gbps(cold.ours)} GB/s (cat ${gbps(cold.cat)}); warm read ${gbps(read.cpu)} GB per CPU-s (dd ${gbps(catRead.cpu)}), write ${gbps(write.cpu)} (dd copy ${gbps(catWrite.cpu)})\n`,
    );
    return {
      fileMB: Math.round(bytes / 1e6),
      readGBperCpuSecond: gbps(read.cpu),
      ddReadGBperCpuSecond: gbps(catRead.cpu),
      readVsDdCpu: ratio(read.cpu, catRead.cpu),
      coldReadGBps: gbps(cold.ours),
      coldCatGBps: gbps(cold.cat),
      coldReadVsCat: ratio(cold.ours, cold.cat),
      writeGBperCpuSecond: gbps(write.cpu),
      ddCopyGBperCpuSecond: gbps(catWrite.cpu),
      writeVsDdCopyCpu: ratio(write.cpu, catWrite.cpu),
      writeVsDdCopyWall: ratio(write.wall, catWrite.wall),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
