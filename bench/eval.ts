/**
 * Perplexity-evaluation throughput (tokens/s) of c4-llama-7m on WikiText-2.
 *   npx tsx bench/eval.ts [--model DIR] [--seqlen 1024] [--windows 8] [--batch 1] [--backend auto] [--threads N]
 *                         [--workers N]
 * `--compare-pool` (wasm) instead times, in interleaved rounds in one process, the two ways of using N = --threads
 * cores (default every core) on the same windows: in-process on the wasm backend's N threads (`workers: 1`) and a
 * pool of N worker threads with one single-threaded backend each (lib/model/forward-pool.ts); it checks that both give
 * the same perplexity and prints each one's median tokens/s, the ratio, and the CPU seconds the process used.
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import os from 'node:os';
import { parseArgs } from 'node:util';
import { defaultThreads, initBackend, type BackendName } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { evaluationIds, perplexityOfIds } from '../lib/eval/perplexity.js';
import { benchModelPath, benchSharedPath } from './common.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seqlen: { type: 'string', default: '1024' },
    windows: { type: 'string', default: '8' },
    batch: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'auto' },
    threads: { type: 'string' },
    workers: { type: 'string' },
    'compare-pool': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
  },
});
const threads = values.threads !== undefined ? Number(values.threads) : defaultThreads();
const backend = await initBackend(values['compare-pool'] ? 'wasm' : (values.backend as BackendName), { threads });
const m = await loadModel(values.model ?? benchModelPath('c4-llama-7m'));
const seqlen = Number(values.seqlen);
const ids = await evaluationIds('wikitext2', benchSharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), m.tokenizer, seqlen);
const windows = Number(values.windows);
const batchSize = Number(values.batch);
await perplexityOfIds(m.model, ids, { seqlen, maxWindows: 1, workers: 1 }); // warm-up
if (values['compare-pool']) {
  const ways = { threads: 1, pool: threads } as const; // workers per way
  const tps: Record<string, number[]> = { threads: [], pool: [] };
  const cpu: Record<string, number[]> = { threads: [], pool: [] };
  const ppl: Record<string, number> = {};
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const [way, workers] of Object.entries(ways)) {
      const c0 = process.cpuUsage();
      const x = await perplexityOfIds(m.model, ids, { seqlen, maxWindows: windows, batchSize, workers });
      const c = process.cpuUsage(c0);
      tps[way]!.push(x.tokensPerSecond);
      cpu[way]!.push((c.user + c.system) / 1e6);
      ppl[way] = x.ppl;
      process.stderr.write(`round ${r + 1}: ${way} ${x.tokensPerSecond.toFixed(0)} tokens/s (load ${os.loadavg()[0]!.toFixed(1)})\n`);
    }
  }
  if (ppl['threads'] !== ppl['pool']) throw new Error(`perplexity differs: threads ${ppl['threads']}, pool ${ppl['pool']}`);
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  console.log(
    JSON.stringify(
      {
        bench: 'eval-compare-pool',
        backend: backend.note,
        seqlen,
        windows,
        ppl: ppl['pool'],
        load: os.loadavg().map((x) => +x.toFixed(2)),
        tokensPerSecond: { threads: +median(tps['threads']!).toFixed(1), pool: +median(tps['pool']!).toFixed(1) },
        poolOverThreads: +(median(tps['pool']!) / median(tps['threads']!)).toFixed(3),
        cpuSeconds: { threads: +median(cpu['threads']!).toFixed(2), pool: +median(cpu['pool']!).toFixed(2) },
      },
      null,
      2,
    ),
  );
} else {
  const r = await perplexityOfIds(m.model, ids, {
    seqlen,
    maxWindows: windows,
    batchSize,
    ...(values.workers !== undefined ? { workers: Number(values.workers) } : {}),
  });
  console.log(
    JSON.stringify(
      {
        bench: 'eval',
        model: m.dir,
        backend: backend.name,
        note: backend.note,
        seqlen,
        batch: batchSize,
        windows: r.windows,
        pplOfTheseWindows: +r.ppl.toFixed(3),
        seconds: +r.seconds.toFixed(2),
        tokensPerSecond: +r.tokensPerSecond.toFixed(1),
      },
      null,
      2,
    ),
  );
}
m.dispose();
