/**
 * Where the evaluation forward's time goes: wall time per tfjs kernel over one perplexity window (forward + loss),
 * from `tf.profile` (each kernel timed by the backend), grouped by kernel name and shape class. Prints JSON.
 *   npx tsx bench/profile-forward.ts [--model DIR] [--seqlen 512] [--threads 1] [--reps 3]
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { windowLosses } from '../lib/eval/perplexity.js';
import { benchModelPath } from './common.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seqlen: { type: 'string', default: '512' },
    threads: { type: 'string', default: '1' },
    reps: { type: 'string', default: '3' },
  },
});
const info = await initBackend('wasm', { threads: Number(values.threads) });
const m = await loadModel(values.model ?? benchModelPath('c4-llama-7m'));
const s = Number(values.seqlen);
const ids = [Array.from({ length: s }, (_, i) => (i * 31 + 1) % m.model.config.vocabSize)];
await windowLosses(m.model, ids); // warm-up
const byKernel = new Map<string, { ms: number; calls: number }>();
let wall = 0;
let cpu = 0;
const reps = Number(values.reps);
for (let r = 0; r < reps; r++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const prof = await tf.profile(async () => {
    await windowLosses(m.model, ids);
  });
  wall += performance.now() - t0;
  const c = process.cpuUsage(c0);
  cpu += (c.user + c.system) / 1000;
  for (const k of prof.kernels) {
    const shape = k.inputShapes.map((x) => `[${x?.join(',')}]`).join('x');
    const key = `${k.name} ${shape}`;
    const e = byKernel.get(key) ?? { ms: 0, calls: 0 };
    e.ms += (k.kernelTimeMs as number) / reps;
    e.calls += 1 / reps;
    byKernel.set(key, e);
  }
}
const byName = new Map<string, number>();
for (const [k, v] of byKernel) byName.set(k.split(' ')[0]!, (byName.get(k.split(' ')[0]!) ?? 0) + v.ms);
const total = [...byName.values()].reduce((a, b) => a + b, 0);
const top = [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25);
console.log(
  JSON.stringify(
    {
      bench: 'profile-forward',
      backend: info.note,
      seqlen: s,
      load: os.loadavg().map((x) => +x.toFixed(2)),
      wallMsPerWindow: +(wall / reps).toFixed(1),
      cpuMsPerWindow: +(cpu / reps).toFixed(1),
      kernelMsTotal: +total.toFixed(1),
      byKernel: Object.fromEntries([...byName].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +v.toFixed(1)])),
      top: top.map(([k, v]) => ({ kernel: k, ms: +v.ms.toFixed(2), calls: Math.round(v.calls) })),
    },
    null,
    1,
  ),
);
m.dispose();
