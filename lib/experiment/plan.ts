/**
 * `llm-prune run CONFIG --dry-run`: what a run would do, computed nothing. The decisions (reuse a stored setting,
 * compute it, redo only its fine-tune) are runExperiment's own (planSettings); the time estimate comes from the
 * forward speed measured here on one window, times the tokens each stage pushes through the model:
 *   pruning   ~PRUNE_PASSES[method] forward passes over the calibration tokens (calibration forward, statistics,
 *             re-forward; magnitude reads and writes only),
 *   perplexity one forward over its windows; tasks one forward over each item's context and choices,
 *   fine-tune ~3 forward-equivalents (forward + backward) per training token, then the evaluation again.
 * Loading, writing and one-off tokenization are not counted. It is a rough guide (within a factor of about 2 on
 * a quiet machine), printed as such.
 */
import { existsSync, statSync } from '../platform/fs.js';
import { join } from '../platform/path.js';
import { loadModel } from '../model/load.js';
import { windowLosses } from '../eval/perplexity.js';
import { perplexitySetFile, defaultDataDir } from '../eval/datasets.js';
import { cachedTokenCount, readTexts } from '../platform/data.js';
import { loadTask } from '../eval/tasks.js';
import { expandSettings, type Experiment } from './schema.js';
import { resolveFinetune, type RunOptions } from './context.js';
import { planSettings, type PlannedSetting } from './run.js';

/** Forward-pass equivalents over the calibration tokens per method (bench/prune.ts on c4-llama-7m). */
const PRUNE_PASSES: Record<string, number> = { magnitude: 0, wanda: 2.5, sparsegpt: 3 };
const DEFAULT_PASSES = 3;

export interface ExperimentPlan {
  name: string;
  model: string;
  output: string;
  settings: { id: string; action: PlannedSetting['action']; estimatedSeconds: number }[];
  estimatedSeconds: number;
  basis: string; // how the estimate was made
  notes: string[]; // e.g. evaluation sets not tokenized yet
}

/** Tokens one evaluation pushes through the model, and notes on what is not known exactly. */
async function evaluationTokens(
  exp: Experiment,
  seqlen: number,
  tokenizer: { encode(t: string): number[]; fingerprint: string },
  fallbackDataDir: string | undefined,
  cacheDir: string | undefined,
): Promise<{ tokens: number; notes: string[] }> {
  const notes: string[] = [];
  let tokens = 0;
  const dataDir = exp.eval.dataDir ?? fallbackDataDir ?? defaultDataDir();
  for (const set of exp.eval.ppl) {
    const file = await perplexitySetFile(set, dataDir);
    let total = cachedTokenCount(set, file, tokenizer.fingerprint, cacheDir);
    if (total === null) {
      // Not tokenized yet: estimate from the first 50 rows' tokens per character and the file's size.
      const rows = await readTexts(file, { limit: 50 });
      const sample = rows.join('\n\n');
      const perChar = sample.length > 0 ? tokenizer.encode(sample).length / sample.length : 0.3;
      const chars = file.endsWith('.gz') || file.endsWith('.parquet') ? statSync(file).size * 3 : statSync(file).size;
      total = Math.round(chars * perChar);
      notes.push(`${set}: not tokenized yet (done once, then cached on disk); window count estimated`);
    }
    if (set === 'c4') total = Math.min(total, 256 * seqlen);
    const windows = Math.min(Math.floor(total / seqlen), exp.eval.maxWindows ?? Infinity);
    tokens += windows * seqlen;
  }
  for (const name of exp.eval.tasks) {
    const task = await loadTask(name, { dataDir, ...(exp.eval.limit !== undefined ? { limit: exp.eval.limit } : {}) });
    let chars = 0;
    for (const it of task.items) chars += it.contexts.reduce((a, c) => a + c.length, 0) + it.continuations.reduce((a, c) => a + c.length, 0);
    tokens += Math.round(chars / 4); // ~4 characters per token in English text
  }
  return { tokens, notes };
}

/** Decide and estimate; loads the model once to measure its speed. */
export async function planExperiment(exp: Experiment, options: RunOptions = {}): Promise<ExperimentPlan> {
  const planned = await planSettings(exp, options);
  if (planned.every((p) => p.action === 'reuse')) {
    const settings = planned.map((p) => ({ id: p.id, action: p.action, estimatedSeconds: 0 }));
    return { name: exp.name, model: exp.model, output: exp.output, settings, estimatedSeconds: 0, basis: 'every setting finished earlier: nothing to compute', notes: [] };
  }
  const m = await loadModel(exp.model, { hubToken: options.hubToken });
  try {
    const maxPositions = m.model.config.maxPositions;
    const evalSeqlen = exp.eval.seqlen ?? maxPositions;
    const calibSeqlen = exp.calibration.seqlen ?? maxPositions;
    const probe = Math.min(256, evalSeqlen);
    const ids = Array.from({ length: probe }, (_, i) => (i * 7919) % m.model.config.vocabSize);
    await windowLosses(m.model, [ids.slice(0, 8)]); // warm-up
    const t0 = performance.now();
    await windowLosses(m.model, [ids]);
    const rate = probe / Math.max((performance.now() - t0) / 1000, 1e-3);
    const { tokens: evalTokens, notes } = await evaluationTokens(exp, evalSeqlen, m.tokenizer, options.dataDir, options.tokenCacheDir);
    const evalSeconds = evalTokens / rate;
    const ft = exp.finetune ? resolveFinetune(exp.finetune, maxPositions) : null;
    const ftSeconds = ft ? (ft.maxSteps * ft.gradAccum * ft.batchSize * ft.seqlen * 3) / rate + evalSeconds : 0;
    const bySetting = new Map(expandSettings(exp).map((s) => [s.id, s]));
    const settings = planned.map((p) => {
      const s = p.setting ?? bySetting.get(p.id) ?? null;
      let seconds = 0;
      if (p.action === 'compute') {
        const passes = s ? (PRUNE_PASSES[s.method] ?? DEFAULT_PASSES) : 0;
        seconds = (passes * exp.calibration.nsamples * calibSeqlen) / rate + evalSeconds + (s ? ftSeconds : 0);
      } else if (p.action === 'finetune') seconds = ftSeconds;
      return { id: p.id, action: p.action, estimatedSeconds: seconds > 0 ? Math.max(1, Math.round(seconds)) : 0 }; // work to do: at least 1 s
    });
    return {
      name: exp.name,
      model: exp.model,
      output: exp.output,
      settings,
      estimatedSeconds: settings.reduce((a, s) => a + s.estimatedSeconds, 0),
      basis: `forward speed measured now: ${rate.toFixed(0)} tokens/s (one window of ${probe} tokens); evaluation ${evalTokens} tokens per model; rough (about x2)`,
      notes: existsSync(join(exp.output, 'settings')) ? notes : [...notes, `${exp.output} has no earlier results: everything is computed`],
    };
  } finally {
    m.dispose();
  }
}

function fmt(seconds: number): string {
  return seconds < 90 ? `${seconds}s` : seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

/** The plan as lines for a terminal. */
export function formatPlan(p: ExperimentPlan): string {
  const verb = { reuse: 'reuse (finished earlier)', compute: 'compute', finetune: 'reuse the pruned result, fine-tune again' };
  const lines = [`plan for ${p.name}: model ${p.model}, output ${p.output}`];
  for (const s of p.settings) lines.push(`  ${s.id}: ${verb[s.action]}${s.estimatedSeconds > 0 ? `, ~${fmt(s.estimatedSeconds)}` : ''}`);
  lines.push(`estimated time: ~${fmt(p.estimatedSeconds)} (${p.basis})`);
  for (const n of p.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
