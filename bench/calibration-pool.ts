/**
 * The layer loop's calibration forwards in-process on the wasm backend's N threads (`workers: 1`) against a pool of N
 * worker threads with one single-threaded backend each (lib/model/forward-pool.ts), interleaved rounds in one
 * process: Wanda 50% of c4-llama-7m on C4 windows (no output written). Checks that both prune identically and prints
 * each one's median loop seconds (calibration forward, statistics, re-forward), the ratio, and the CPU seconds.
 *   npx tsx bench/calibration-pool.ts [--threads N] [--nsamples 32] [--seqlen 512] [--rounds 2]
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { calibrationFromFile } from '../lib/data/calibration.js';
import { defaultThreads, initBackend } from '../lib/model/backend.js';
import { Checkpoint } from '../lib/model/checkpoint.js';
import { HfTokenizer } from '../lib/model/tokenizer.js';
import { LINEAR_NAMES } from '../lib/model/architecture.js';
import { runLayerLoop } from '../lib/prune/pipeline.js';
import { getMethod } from '../lib/prune/registry.js';
import { benchModelPath, benchSharedPath } from './common.js';

const { values } = parseArgs({
  options: {
    threads: { type: 'string' },
    nsamples: { type: 'string', default: '32' },
    seqlen: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '2' },
  },
});
const threads = values.threads !== undefined ? Number(values.threads) : defaultThreads();
const info = await initBackend('wasm', { threads });
const dir = benchModelPath('c4-llama-7m');
const ckpt = Checkpoint.open(dir);
const calibration = await calibrationFromFile(benchSharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'), {
  tokenizer: await HfTokenizer.fromFolder(dir),
  nsamples: Number(values.nsamples),
  seqlen: Number(values.seqlen),
  seed: 0,
});
const ways = { threads: 1, pool: threads } as const;
const seconds: Record<string, number[]> = { threads: [], pool: [] };
const cpu: Record<string, number[]> = { threads: [], pool: [] };
const zeros: Record<string, string> = {};
for (let r = 0; r < Number(values.rounds); r++) {
  for (const [way, workers] of Object.entries(ways)) {
    const sums: number[] = [];
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await runLayerLoop({
      checkpoint: ckpt,
      method: getMethod('wanda'),
      prune: { sparsity: 0.5, structure: { kind: 'unstructured' } },
      calibration,
      batchSize: 1,
      writer: null,
      workers,
      onBlock: (_layer, block) => {
        for (const n of LINEAR_NAMES) sums.push(tf.tidy(() => tf.sum(tf.abs(block.linears[n].wT!)).dataSync()[0]!));
      },
    });
    seconds[way]!.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu[way]!.push((c.user + c.system) / 1e6);
    zeros[way] = sums.join(',');
    process.stderr.write(`round ${r + 1}: ${way} ${seconds[way]!.at(-1)!.toFixed(2)} s (load ${os.loadavg()[0]!.toFixed(1)})\n`);
  }
}
ckpt.close();
if (zeros['threads'] !== zeros['pool']) throw new Error('the pool pruned differently from the in-process loop');
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)]!;
console.log(
  JSON.stringify(
    {
      bench: 'calibration-pool',
      backend: info.note,
      what: `wanda 50%, c4-llama-7m, ${values.nsamples} x ${values.seqlen}, batch 1, loop only (no output)`,
      samePrunedWeights: true,
      load: os.loadavg().map((x) => +x.toFixed(2)),
      loopSeconds: { threads: +median(seconds['threads']!).toFixed(2), pool: +median(seconds['pool']!).toFixed(2) },
      poolSpeedup: +(median(seconds['threads']!) / median(seconds['pool']!)).toFixed(3),
      cpuSeconds: { threads: +median(cpu['threads']!).toFixed(2), pool: +median(cpu['pool']!).toFixed(2) },
    },
    null,
    2,
  ),
);
