/**
 * The LoRA recovery measurement on the shared c4-llama-7m model:
 *   1. prune it with Wanda (50% unstructured by default, or --structure 2:4): calibration = the shared C4 train
 *      head (128 windows x 256 tokens, seed 0); skipped when --pruned already holds a pruned checkpoint;
 *   2. fine-tune LoRA adapters (rank 8 on q_proj, v_proj, alpha 16, dropout 0.05, AdamW, linear decay) on windows of
 *      256 tokens drawn from the same C4 file with the calibration documents excluded;
 *   3. WikiText-2 test perplexity (seqlen 256, the first --eval-windows windows) before, after (adapters unmerged)
 *      and of the merged checkpoint (--merge masked keeps the sparsity exactly); with --c4-eval the same for the
 *      C4 validation sample (in-domain for this model), with --dense the unpruned model's WikiText-2 perplexity.
 *
 *   npx tsx scripts/finetune-c4-llama-7m.ts --lr 1e-4 --max-steps 250 --out runs/finetune-c4-llama-7m/lr1e-4
 *
 * Progress goes to stderr; the report (also in <out>/report.json) is summarised on stdout. A run stopped by
 * --time-budget or killed continues with --resume. Shared files: $LLM_PRUNE_SHARED or ../shared.
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../lib/model/backend.js';
import { parseStructure, prune } from '../lib/prune/prune.js';
import { finetune, type FinetuneProgress } from '../lib/finetune/train.js';
import { tokenCacheDir } from '../lib/eval/token-cache.js';
import { evaluationIds, perplexityOfIds } from '../lib/eval/perplexity.js';
import { loadModel } from '../lib/model/load.js';
import { loadAdapters } from '../lib/finetune/peft.js';

const { values: a } = parseArgs({
  options: {
    shared: { type: 'string', default: process.env['LLM_PRUNE_SHARED'] ?? join(process.cwd(), '..', 'shared') },
    structure: { type: 'string', default: 'unstructured' },
    pruned: { type: 'string' },
    out: { type: 'string' },
    lr: { type: 'string', default: '1e-4' },
    'max-steps': { type: 'string', default: '250' },
    'total-steps': { type: 'string' }, // schedule length (default --max-steps; keep it when resuming with another --max-steps)
    'time-budget': { type: 'string' },
    seqlen: { type: 'string', default: '256' },
    rank: { type: 'string', default: '8' },
    'grad-accum': { type: 'string', default: '1' },
    'eval-windows': { type: 'string', default: '100' },
    'eval-every': { type: 'string', default: '50' },
    merge: { type: 'string', default: 'masked' },
    backend: { type: 'string', default: 'wasm' },
    resume: { type: 'boolean', default: false },
    overwrite: { type: 'boolean', default: false },
    dense: { type: 'boolean', default: false }, // also score the unpruned model (same windows) for reference
    'c4-eval': { type: 'boolean', default: false }, // also C4 validation perplexity (in-domain) before/after/merged
  },
});

const shared = resolve(a.shared!);
const model = join(shared, 'models', 'c4-llama-7m');
const c4 = join(shared, 'data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
const c4val = join(shared, 'data', 'c4', 'c4-validation.sample2000.parquet');
const wikitext = join(shared, 'data', 'wikitext-2-raw-v1', 'test.jsonl');
for (const f of [model, c4, wikitext]) if (!existsSync(f)) throw new Error(`missing shared file ${f} (set LLM_PRUNE_SHARED)`);
const structure = parseStructure(a.structure!);
const tag = a.structure === 'unstructured' ? 'unstructured' : a.structure!.replace(':', 'of');
const pruned = resolve(a.pruned ?? join('runs', 'finetune-c4-llama-7m', `pruned-wanda-${tag}`));
const out = resolve(a.out ?? join('runs', 'finetune-c4-llama-7m', `lora-${tag}-lr${a.lr}`));
const seqlen = Number(a.seqlen);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const backend = await initBackend(a.backend as BackendName);
log(backend.note);

if (!existsSync(join(pruned, 'report.json'))) {
  log(`pruning ${model} with Wanda ${a.structure} -> ${pruned}`);
  const r = await prune({
    model,
    out: pruned,
    method: 'wanda',
    sparsity: 0.5,
    structure,
    calibration: c4,
    nsamples: 128,
    seqlen: 256,
    seed: 0,
  });
  log(`pruned: sparsity ${r.sparsity.overall.toFixed(4)} in ${r.times.total.toFixed(1)} s`);
}

let densePpl: number | null = null;
let denseC4: number | null = null;
if (a.dense) {
  const m = await loadModel(model);
  try {
    const ids = await evaluationIds('wikitext2', wikitext, m.tokenizer, seqlen);
    densePpl = (await perplexityOfIds(m.model, ids, { seqlen, maxWindows: Number(a['eval-windows']) })).ppl;
    log(`dense model: WikiText-2 ppl ${densePpl.toFixed(4)}`);
    if (a['c4-eval']) {
      const c4ids = await evaluationIds('c4', c4val, m.tokenizer, seqlen);
      denseC4 = (await perplexityOfIds(m.model, c4ids, { seqlen, maxWindows: Number(a['eval-windows']) })).ppl;
      log(`dense model: C4 validation ppl ${denseC4.toFixed(4)}`);
    }
  } finally {
    m.dispose();
  }
}

const t0 = performance.now();
const report = await finetune({
  model: pruned,
  data: c4,
  out,
  rank: Number(a.rank),
  alpha: 2 * Number(a.rank),
  dropout: 0.05,
  targets: ['q_proj', 'v_proj'],
  lr: Number(a.lr),
  schedule: 'linear',
  seqlen,
  gradAccum: Number(a['grad-accum']),
  maxSteps: Number(a['max-steps']),
  ...(a['total-steps'] !== undefined ? { totalSteps: Number(a['total-steps']) } : {}),
  ...(a['time-budget'] !== undefined ? { timeBudget: Number(a['time-budget']) } : {}),
  seed: 0,
  checkpointEvery: 25,
  resume: a.resume!,
  overwrite: a.overwrite!,
  merge: a.merge as 'none' | 'masked' | 'dense',
  tokenCacheDir: tokenCacheDir(process.env), // $LLM_PRUNE_CACHE as the CLI honours it
  eval: { file: wikitext, set: 'wikitext2', seqlen, maxWindows: Number(a['eval-windows']), every: Number(a['eval-every']), periodicWindows: 8 },
  onProgress: (p: FinetuneProgress) => {
    if (p.phase === 'train' && (p.step % 10 === 0 || p.step === p.maxSteps)) {
      log(
        `step ${p.step}/${p.maxSteps} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} |g| ${p.gradNorm.toFixed(3)} ` +
          `${p.tokensPerSecond.toFixed(0)} tok/s elapsed ${p.elapsedSeconds.toFixed(0)} s eta ${p.etaSeconds.toFixed(0)} s`,
      );
    } else if (p.phase === 'eval') log(`eval ${p.which} at step ${p.step}: ppl ${p.ppl.toFixed(4)} (${p.windows} windows, ${p.seconds.toFixed(1)} s)`);
    else if (p.phase === 'data') log(`data: ${p.windows} windows from ${p.documents - p.excludedDocuments} documents (${p.excludedDocuments} calibration documents excluded)`);
  },
});
// In-domain held-out text: C4 validation (SparseGPT protocol), the same windows for the three models.
let c4ppl: { before: number; after: number; merged: number | null; windows: number } | null = null;
if (a['c4-eval']) {
  const maxWindows = Number(a['eval-windows']);
  const m = await loadModel(pruned);
  try {
    const ids = await evaluationIds('c4', c4val, m.tokenizer, seqlen);
    const ad = loadAdapters(out, m.model);
    try {
      const before = await perplexityOfIds(m.model, ids, { seqlen, maxWindows });
      const after = await perplexityOfIds(m.model, ids, { seqlen, maxWindows, forward: ad.forward });
      c4ppl = { before: before.ppl, after: after.ppl, merged: null, windows: after.windows };
    } finally {
      ad.dispose();
    }
    if (report.merge) {
      const mm = await loadModel(report.merge.dir);
      try {
        c4ppl.merged = (await perplexityOfIds(mm.model, ids, { seqlen, maxWindows })).ppl;
      } finally {
        mm.dispose();
      }
    }
    log(`C4 validation: before ${c4ppl.before.toFixed(4)} after ${c4ppl.after.toFixed(4)} merged ${c4ppl.merged?.toFixed(4)}`);
  } finally {
    m.dispose();
  }
}

const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const l = report.training.losses;
const summary = {
  pruned,
  out,
  lr: report.optimizer.lr,
  steps: report.training.steps,
  stoppedBy: report.training.stoppedBy,
  trainSeconds: Number(report.training.totalSeconds.toFixed(1)),
  wallSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
  tokensPerStep: report.optimizer.tokensPerStep,
  tokensPerSecond: Number(report.training.tokensPerSecond.toFixed(1)),
  lossFirst10: l.length ? Number(mean(l.slice(0, 10)).toFixed(4)) : null,
  lossLast10: l.length ? Number(mean(l.slice(-10)).toFixed(4)) : null,
  wikitext2: report.eval && {
    seqlen: report.eval.seqlen,
    windows: report.eval.windows,
    dense: densePpl === null ? null : Number(densePpl.toFixed(4)),
    before: Number(report.eval.before.toFixed(4)),
    after: Number(report.eval.after.toFixed(4)),
    merged: report.eval.merged === null ? null : Number(report.eval.merged.toFixed(4)),
    periodic: report.eval.periodic,
  },
  c4validation: c4ppl && {
    seqlen,
    windows: c4ppl.windows,
    dense: denseC4 === null ? null : Number(denseC4.toFixed(4)),
    before: Number(c4ppl.before.toFixed(4)),
    after: Number(c4ppl.after.toFixed(4)),
    merged: c4ppl.merged === null ? null : Number(c4ppl.merged.toFixed(4)),
  },
  merge: report.merge && {
    mode: report.merge.mode,
    dtype: report.merge.dtype,
    sparsityBefore: report.merge.sparsityBefore,
    sparsityAfter: report.merge.sparsityAfter,
    sameZeroCounts: report.merge.sameZeroCounts,
  },
  backend: report.backend,
};
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
