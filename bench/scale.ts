/**
 * A model larger than RAM, pruned on this machine: Wanda on synthetic LLaMA checkpoints of one published width at
 * several depths, each prune in a fresh process, with peak RSS and time per block.
 *   npx tsx bench/scale.ts [--shape 13b] [--layers 4,8,40] [--dir /work/scale-tmp] [--nsamples 4] [--seqlen 128]
 *                          [--method wanda] [--keep-inputs] [--keep-outputs] [--resume]
 * For each depth L: writes <dir>/<shape>-L<L> with scripts/make-synthetic-llama.ts unless present, prunes it into
 * <dir>/<shape>-L<L>-pruned (deleted afterwards unless --keep-outputs), and appends one JSON line per finished
 * block to <dir>/<shape>-L<L>.blocks.jsonl: {layer, seconds, rssMB, peakRssMB}. Prints a JSON summary with the
 * memory formula of docs/scaling.md ("Larger than RAM") next to the measurement.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freemem, totalmem, loadavg } from 'node:os';
import { parseConfig } from '../lib/model/config.js';
import { benchSharedPath } from './common.js';
import { makeSyntheticLlama, SHAPES } from '../scripts/make-synthetic-llama.js';
import { memoryEstimate } from '../lib/prune/resume.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: '13b' },
    layers: { type: 'string', default: '4,8,40' },
    dir: { type: 'string', default: '/work/scale-tmp' },
    nsamples: { type: 'string', default: '4' },
    seqlen: { type: 'string', default: '128' },
    method: { type: 'string', default: 'wanda' },
    backend: { type: 'string', default: 'wasm' },
    calibration: { type: 'string' },
    'keep-inputs': { type: 'boolean', default: false },
    'keep-outputs': { type: 'boolean', default: false },
    resume: { type: 'boolean', default: false },
    // child mode: one prune in this process
    child: { type: 'boolean', default: false },
    model: { type: 'string' },
    out: { type: 'string' },
    log: { type: 'string' },
  },
});

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);

async function child(): Promise<void> {
  const { initBackend } = await import('../lib/model/backend.js');
  const { prune } = await import('../lib/prune/prune.js');
  await initBackend(values.backend as 'wasm');
  let last = performance.now();
  const report = await prune({
    model: values.model!,
    out: values.out!,
    method: values.method as 'wanda',
    sparsity: 0.5,
    calibration: values.calibration!,
    nsamples: Number(values.nsamples),
    seqlen: Number(values.seqlen),
    overwrite: true,
    ...(values.resume ? { resume: true } : {}),
    onProgress: (p) => {
      const t = performance.now();
      const line = {
        layer: p.layer,
        layers: p.layers,
        seconds: (t - last) / 1000,
        rssMB: mb(process.memoryUsage().rss),
        peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
        cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
        times: Object.fromEntries(Object.entries(p.times ?? {}).map(([k, v]) => [k, Math.round(v * 10) / 10])),
      };
      last = t;
      appendFileSync(values.log!, JSON.stringify(line) + '\n');
      process.stderr.write(`block ${p.layer + 1}/${p.layers}: ${line.seconds.toFixed(1)} s, rss ${line.rssMB} MB, peak ${line.peakRssMB} MB, eta ${p.eta.toFixed(0)} s\n`);
    },
  });
  process.stdout.write(JSON.stringify({ times: report.times, peakRssMB: Math.round(report.peakRssMB), sparsity: report.sparsity.overall }) + '\n');
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
}

async function parent(): Promise<void> {
  const calibration = values.calibration ?? benchSharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
  const runs: Record<string, unknown>[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const L of values.layers.split(',').map(Number)) {
    const model = resolve(values.dir, `${values.shape}-L${L}`);
    const out = `${model}-pruned`;
    const log = `${model}.blocks.jsonl`;
    if (!existsSync(join(model, 'config.json'))) {
      process.stderr.write(`writing ${model} ...\n`);
      const t0 = performance.now();
      const bytes = makeSyntheticLlama({ shape: values.shape, out: model, layers: L });
      process.stderr.write(`wrote ${(bytes / 1e9).toFixed(1)} GB in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    if (!values.resume) rmSync(log, { force: true });
    const t0 = performance.now();
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', self, '--child', '--model', model, '--out', out, '--log', log, '--calibration', calibration,
        '--nsamples', values.nsamples, '--seqlen', values.seqlen, '--method', values.method, '--backend', values.backend,
        ...(values.resume ? ['--resume'] : [])],
      { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    if (r.status !== 0) throw new Error(`prune of ${model} failed (exit ${r.status}, signal ${r.signal})`);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const blocks = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seconds: number; peakRssMB: number });
    const config = parseConfig(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')));
    const perBlock = blocks.slice(1).map((b) => b.seconds); // block 0 also carries the embedding + copy of non-block tensors
    runs.push({
      layers: L,
      inputGB: dirBytes(model) / 1e9,
      outputGB: dirBytes(out) / 1e9,
      wallSeconds: (performance.now() - t0) / 1000,
      secondsPerBlockMedian: perBlock.sort((a, b) => a - b)[Math.floor(perBlock.length / 2)] ?? blocks[0]!.seconds,
      peakRssMB: result.peakRssMB,
      peakRssAfterBlock: blocks.map((b) => b.peakRssMB),
      estimateMB: Object.fromEntries(
        Object.entries(memoryEstimate(config, { nsamples: Number(values.nsamples), seqlen: Number(values.seqlen), method: values.method })).map(([k, v]) => [k, mb(v)]),
      ),
      times: result.times,
      sparsity: result.sparsity,
    });
    if (!values['keep-outputs']) rmSync(out, { recursive: true, force: true });
    if (!values['keep-inputs']) rmSync(model, { recursive: true, force: true });
  }
  process.stdout.write(
    JSON.stringify(
      {
        bench: 'scale',
        shape: values.shape,
        config: SHAPES[values.shape],
        method: values.method,
        nsamples: Number(values.nsamples),
        seqlen: Number(values.seqlen),
        backend: values.backend,
        machine: { totalMemGB: totalmem() / 2 ** 30, freeMemGBAtEnd: freemem() / 2 ** 30, loadavg: loadavg() },
        runs,
      },
      null,
      2,
    ) + '\n',
  );
}

if (values.child) await child();
else await parent();
