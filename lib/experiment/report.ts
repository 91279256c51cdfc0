/**
 * The results of an experiment as files: results.json (everything, reloadable with loadResults), results.md (the
 * paper-style table, notes, timings, charts), results.csv (one row per setting, raw numbers) and SVG charts.
 * Every file is written atomically (a temporary file in the same folder, then rename), so a reader or a resumed
 * run never sees half a file.
 */
import { mkdir, readFile } from '../platform/fs.js';
import { basename, extname, join } from '../platform/path.js';
import { z } from 'zod';
import { DataError } from '../errors.js';
import { PERPLEXITY_SETS } from '../eval/perplexity.js';
import { PAPER_TASKS, TASKS } from '../eval/tasks.js';
import { METHOD_NAMES, type MethodName } from '../prune/registry.js';
import { buildCharts, pplSetLabel } from './charts.js';
import { formatPath } from './schema.js';
import { writeFileAtomic } from '../model/save.js';
import { renderMarkdownTable } from '../markdown.js';

// ---------------------------------------------------------------------------------------------------------------
// The results data

const fraction = z.number().min(0).max(1);
const count = z.number().int().min(0);

/** Perplexity of one set; ppl is null when it was not a finite number (a diverged model). */
const pplResultSchema = z.strictObject({
  ppl: z.number().positive().nullable(), // exp(mean over windows of the per-window mean cross-entropy)
  windows: count, // windows scored
  tokens: count, // tokens in those windows
});

/** One zero-shot task; accuracies are fractions in [0, 1]. */
const taskResultSchema = z.strictObject({
  acc: fraction,
  acc_norm: fraction.optional(), // for tasks that report it (HellaSwag, ARC-e, ARC-c, OBQA, ...)
  n: count, // items scored
});

/**
 * The LoRA stage of a pruned setting (experiment `finetune:`): how the training went and the pruned model's
 * numbers measured again after it.
 */
const finetuneResultSchema = z.strictObject({
  merge: z.enum(['masked', 'dense', 'none']), // what was evaluated: the masked or dense merge, or the adapters unmerged
  steps: count, // optimizer steps
  seconds: z.number().min(0), // training time (all calls, when an interrupted fine-tune was resumed)
  firstLoss: z.number().nullable(), // mean training loss of the first min(10, steps) steps (measured like finalLoss)
  finalLoss: z.number().nullable(), // mean training loss of the last min(10, steps) steps
  actualSparsity: fraction.nullable(), // zero fraction of the merged checkpoint's pruned layers; null when unmerged
  perplexity: z.record(z.string(), pplResultSchema), // as the setting's, for the fine-tuned model
  tasks: z.record(z.string(), taskResultSchema),
  mean: fraction.nullable(),
});

/** What was measured for one setting (or the dense model). */
export const settingResultSchema = z.strictObject({
  id: z.string().min(1), // 'dense' or a setting id ('wanda-unstructured-0.5', 'wanda-2of4')
  method: z.enum(['dense', ...METHOD_NAMES] as ['dense', ...MethodName[]]),
  structure: z.string().nullable(), // 'unstructured' or 'N:M'; null for dense
  sparsity: fraction, // target zero fraction (0 for dense)
  useVariant: z.boolean(),
  plan: z.string().optional(), // the plan beyond the method ('owl', 'dsnot', 'permute'): part of the series label
  actualSparsity: fraction, // zero fraction of all pruned matrices together, measured after pruning
  perplexity: z.record(z.string(), pplResultSchema), // by set: wikitext2, c4
  tasks: z.record(z.string(), taskResultSchema), // by task name (or task file path)
  mean: fraction.nullable(), // unweighted mean over the tasks of the report's meanMetric; null without tasks
  blockSparsity: z.array(fraction), // zero fraction of each decoder block's seven matrices ([] for dense)
  blockAllocated: z.array(z.number()).optional(), // the plan's per-block target when a layerwise allocator (OWL) ran
  timings: z.record(z.string(), z.number().min(0)), // seconds, by stage: prune, ppl, tasks, finetune, ...
  finetune: finetuneResultSchema.optional(), // present when the experiment fine-tunes (pruned settings only)
});
export type SettingResult = z.output<typeof settingResultSchema>;
export type FinetuneResult = z.output<typeof finetuneResultSchema>;
export type PerplexityEntry = z.output<typeof pplResultSchema>;
export type TaskEntry = z.output<typeof taskResultSchema>;

/** The content of results.json. */
export const resultsFileSchema = z.strictObject({
  version: z.literal(1),
  title: z.string(), // heading of results.md and prefix of chart titles
  meanMetric: z.enum(['acc', 'acc_norm']).default('acc'), // what each task contributes to `mean`
  meta: z.record(z.string(), z.unknown()).default({}), // model, backend, calibration, config, ... (shown in results.md)
  results: z.array(settingResultSchema),
});
/** Results as given to writeReport (meanMetric and meta optional). */
export type ResultsInput = z.input<typeof resultsFileSchema>;
/** Results as stored in results.json. */
export type ResultsFile = z.output<typeof resultsFileSchema>;

/** Validate results; DataError naming `source` and the key path of every problem. Ids must be unique. */
export function validateResults(input: unknown, source: string): ResultsFile {
  const parsed = resultsFileSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${formatPath(i.path as (string | number)[]) || '(top level)'}: ${i.message}`);
    throw new DataError(`${source}: invalid results: ${lines.join('; ')}`);
  }
  const seen = new Set<string>();
  for (const r of parsed.data.results) {
    if (seen.has(r.id)) throw new DataError(`${source}: invalid results: setting id '${r.id}' appears twice`);
    if (r.method === 'dense' && r.finetune !== undefined) {
      throw new DataError(`${source}: invalid results: '${r.id}' is the dense model and has a finetune block (only pruned settings are fine-tuned)`);
    }
    seen.add(r.id);
  }
  return parsed.data;
}

/** Read and validate a results.json written by writeReport. */
export async function loadResults(file: string): Promise<ResultsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: cannot read results (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return validateResults(value, file);
}

// ---------------------------------------------------------------------------------------------------------------
// Table layout shared by the Markdown and CSV writers

/** Dense first, then the others in the order given. */
function ordered(results: readonly SettingResult[]): SettingResult[] {
  return [...results.filter((r) => r.method === 'dense'), ...results.filter((r) => r.method !== 'dense')];
}

/** Keys of `records` in first-seen order, with the keys of `preferred` first in that order. */
function keysOf(records: readonly Record<string, unknown>[], preferred: readonly string[]): string[] {
  const seen = new Set<string>();
  for (const r of records) for (const k of Object.keys(r)) seen.add(k);
  return [...preferred.filter((k) => seen.has(k)), ...[...seen].filter((k) => !preferred.includes(k))];
}

/** The measurements of a result: its own, then its fine-tuned model's when it has one. */
function measured(results: readonly SettingResult[]): Pick<SettingResult, 'perplexity' | 'tasks'>[] {
  return results.flatMap((r) => (r.finetune ? [r, r.finetune] : [r]));
}

function pplSets(results: readonly SettingResult[]): string[] {
  return keysOf(measured(results).map((r) => r.perplexity), PERPLEXITY_SETS);
}

function taskNames(results: readonly SettingResult[]): string[] {
  const registered = [...PAPER_TASKS, ...Object.keys(TASKS).filter((t) => !(PAPER_TASKS as readonly string[]).includes(t))];
  return keysOf(measured(results).map((r) => r.tasks), registered);
}

/** Column header of a task: its display name, or a task file's name without extension. */
export function taskLabel(task: string): string {
  return TASKS[task]?.displayName ?? basename(task, extname(task));
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const pct = (x: number): string => (100 * x).toFixed(2);
const pplText = (p: PerplexityEntry | undefined): string => (p === undefined ? '-' : p.ppl === null ? 'nan' : p.ppl.toFixed(2));

/** The accuracy a task shows in the main table: the one it contributes to the mean. */
function shownAccuracy(t: TaskEntry, meanMetric: 'acc' | 'acc_norm'): number {
  return meanMetric === 'acc_norm' && t.acc_norm !== undefined ? t.acc_norm : t.acc;
}

/** Label of the row of a setting's fine-tuned model in results.md. */
export function finetuneLabel(id: string): string {
  return `${id} + LoRA`;
}

/**
 * The main table, shaped like the paper's: rows = settings (dense first), columns = setting id, zeros (% of
 * pruned-layer weights), one perplexity per set (2 decimals), one accuracy per task (%, 2 decimals), mean.
 * A fine-tuned setting is followed by a row `<id> + LoRA` with the numbers of its fine-tuned model (zeros of the
 * merged checkpoint; '-' when the adapters were evaluated unmerged).
 */
export function markdownTable(input: ResultsInput): string {
  const file = validateResults(input, 'results');
  const results = ordered(file.results);
  const sets = pplSets(results);
  const tasks = taskNames(results);
  const header = ['Setting', 'Zeros (%)', ...sets.map((s) => `${pplSetLabel(s)} ppl`), ...tasks.map(taskLabel), ...(tasks.length ? ['Mean'] : [])];
  const row = (label: string, zeros: number | null, m: Pick<SettingResult, 'perplexity' | 'tasks' | 'mean'>): string[] => [
    label,
    zeros === null ? '-' : pct(zeros),
    ...sets.map((s) => pplText(m.perplexity[s])),
    ...tasks.map((t) => {
      const e = m.tasks[t];
      return e === undefined ? '-' : pct(shownAccuracy(e, file.meanMetric));
    }),
    ...(tasks.length ? [m.mean === null ? '-' : pct(m.mean)] : []),
  ];
  const rows = results.flatMap((r) => [
    row(r.id, r.actualSparsity, r),
    ...(r.finetune ? [row(finetuneLabel(r.id), r.finetune.actualSparsity, r.finetune)] : []),
  ]);
  return renderMarkdownTable(header, rows);
}

const MERGE_TEXT: Record<FinetuneResult['merge'], string> = {
  masked: 'merged into the weights with the pruning mask re-applied (the zeros kept exactly)',
  dense: 'merged into the weights without the mask (the zeros fill in)',
  none: 'unmerged, on top of the pruned checkpoint (the adapted matrices act dense)',
};

/** The fine-tuning table: per fine-tuned setting, the training and the change of each perplexity. */
function finetuneTable(results: readonly SettingResult[], sets: readonly string[]): string {
  const tuned = results.filter((r) => r.finetune !== undefined);
  const header = ['Setting', 'Merge', 'Steps', 'Train loss first (mean of <=10 steps)', 'Train loss final (mean of <=10 steps)', 'Train time (s)', 'Zeros after (%)', ...sets.map((s) => `${pplSetLabel(s)} ppl change`)];
  const loss = (x: number | null): string => (x === null ? '-' : x.toFixed(4));
  const rows = tuned.map((r) => {
    const f = r.finetune!;
    return [
      r.id,
      f.merge,
      String(f.steps),
      loss(f.firstLoss),
      loss(f.finalLoss),
      f.seconds.toFixed(1),
      f.actualSparsity === null ? '-' : pct(f.actualSparsity),
      ...sets.map((s) => {
        const before = r.perplexity[s]?.ppl;
        const after = f.perplexity[s]?.ppl;
        if (before === undefined || after === undefined) return '-';
        if (before === null || after === null) return 'nan';
        const d = (after - before).toFixed(2);
        const signed = Number(d) === 0 ? '0.00' : Number(d) > 0 ? `+${d}` : d; // never '-0.00'
        return `${signed} (${before.toFixed(2)} -> ${after.toFixed(2)})`;
      }),
    ];
  });
  return renderMarkdownTable(header, rows);
}

/** The value every row that has one agrees on, else null (rows without a value are skipped). */
function common<T>(values: (T | undefined)[]): T | null {
  const present = values.filter((v): v is T => v !== undefined);
  return present.length > 0 && present.every((v) => v === present[0]) ? present[0]! : null;
}

function metaValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The whole results.md: title, meta, main table, notes, acc_norm and timing tables, chart links. */
export function markdownReport(input: ResultsInput, chartFiles: readonly { file: string; caption: string }[] = []): string {
  const file = validateResults(input, 'results');
  const results = ordered(file.results);
  const sets = pplSets(results);
  const tasks = taskNames(results);
  const out: string[] = [`# ${file.title}`, ''];
  const meta = Object.entries(file.meta);
  if (meta.length) out.push(...meta.map(([k, v]) => `- ${k}: ${metaValue(v)}`), '');
  out.push(markdownTable(file));

  const notes = ['Zeros: share of the weights of the pruned layers (the seven linear layers of every decoder block) that are zero.'];
  if (sets.length) notes.push('Perplexity: lower is better.');
  if (tasks.length) {
    notes.push(
      file.meanMetric === 'acc'
        ? 'Tasks: zero-shot accuracy (acc) in %; Mean: unweighted mean of the task columns.'
        : 'Tasks: acc_norm in % for the tasks that report it, acc otherwise; Mean: unweighted mean of the task columns.',
    );
  }
  const sizes: string[] = [];
  for (const s of sets) {
    const w = common(results.map((r) => r.perplexity[s]?.windows));
    const t = common(results.map((r) => r.perplexity[s]?.tokens));
    sizes.push(w !== null && t !== null ? `${pplSetLabel(s)} ${w} windows (${t} tokens)` : `${pplSetLabel(s)} varies by setting`);
  }
  for (const task of tasks) {
    const n = common(results.map((r) => r.tasks[task]?.n));
    sizes.push(n !== null ? `${taskLabel(task)} ${n} items` : `${taskLabel(task)} varies by setting`);
  }
  if (sizes.length) notes.push(`Evaluated on: ${sizes.join('; ')} (per setting: results.csv).`);
  const merges = [...new Set(results.flatMap((r) => (r.finetune ? [r.finetune.merge] : [])))];
  if (merges.length) {
    notes.push(
      `Rows \`${finetuneLabel('<setting>')}\`: the pruned model of the row above after LoRA fine-tuning, evaluated with the adapters ` +
        `${merges.map((m) => MERGE_TEXT[m]).join('; or ')}; the training of each: the Fine-tuning table.`,
    );
  }
  out.push(notes.join('\n'), '');

  if (merges.length) out.push('## Fine-tuning', '', finetuneTable(results, sets));

  const normTasks = file.meanMetric === 'acc' ? tasks.filter((t) => results.some((r) => r.tasks[t]?.acc_norm !== undefined)) : [];
  if (normTasks.length) {
    out.push('## acc_norm (%)', '');
    out.push(
      renderMarkdownTable(
        ['Setting', ...normTasks.map(taskLabel)],
        results.map((r) => [r.id, ...normTasks.map((t) => (r.tasks[t]?.acc_norm === undefined ? '-' : pct(r.tasks[t]!.acc_norm!)))]),
      ),
    );
  }

  const stages = keysOf(results.map((r) => r.timings), []);
  if (stages.length) {
    out.push('## Timings (s)', '');
    out.push(renderMarkdownTable(['Setting', ...stages], results.map((r) => [r.id, ...stages.map((k) => (r.timings[k] === undefined ? '-' : r.timings[k]!.toFixed(1)))])));
  }

  if (chartFiles.length) {
    out.push('## Charts', '');
    for (const c of chartFiles) out.push(`![${c.caption}](${c.file})`, '');
  }
  return out.join('\n').replace(/\n+$/, '\n');
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/** RFC 4180 field: quoted when it holds a comma, quote, CR/LF or outer spaces; quotes doubled. */
export function csvField(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  const s = String(value);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * One row per setting (dense first), raw numbers (fractions, not %), empty cells for what was not measured;
 * columns: setting facts, `<set>_ppl|windows|tokens`, `<task>_acc|acc_norm|n`, mean, `time_<stage>_s`,
 * `block<i>_zeros`; when any setting was fine-tuned, then `ft_merge`, `ft_steps`, `ft_train_seconds`,
 * `ft_first_loss`, `ft_final_loss`, `ft_actual_sparsity`, `ft_<set>_ppl`, `ft_<task>_acc|acc_norm`, `ft_mean`.
 */
export function csvReport(input: ResultsInput): string {
  const file = validateResults(input, 'results');
  const results = ordered(file.results);
  const sets = pplSets(results);
  const tasks = taskNames(results);
  const stages = keysOf(results.map((r) => r.timings), []);
  const blocks = Math.max(0, ...results.map((r) => r.blockSparsity.length));
  const tuned = results.some((r) => r.finetune !== undefined);
  const finetuneCells = (f: FinetuneResult | undefined): (string | number | null | undefined)[] => [
    f?.merge, f?.steps, f?.seconds, f?.firstLoss, f?.finalLoss, f?.actualSparsity,
    ...sets.map((s) => f?.perplexity[s]?.ppl),
    ...tasks.flatMap((t) => [f?.tasks[t]?.acc, f?.tasks[t]?.acc_norm]),
    ...(tasks.length ? [f?.mean] : []),
  ];
  const header = [
    'setting', 'method', 'structure', 'sparsity', 'use_variant', 'actual_sparsity',
    ...sets.flatMap((s) => [`${s}_ppl`, `${s}_windows`, `${s}_tokens`]),
    ...tasks.flatMap((t) => [`${t}_acc`, `${t}_acc_norm`, `${t}_n`]),
    ...(tasks.length ? ['mean'] : []),
    ...stages.map((k) => `time_${k}_s`),
    ...Array.from({ length: blocks }, (_, i) => `block${i}_zeros`),
    ...(tuned
      ? [
          'ft_merge', 'ft_steps', 'ft_train_seconds', 'ft_first_loss', 'ft_final_loss', 'ft_actual_sparsity',
          ...sets.map((s) => `ft_${s}_ppl`),
          ...tasks.flatMap((t) => [`ft_${t}_acc`, `ft_${t}_acc_norm`]),
          ...(tasks.length ? ['ft_mean'] : []),
        ]
      : []),
  ];
  const rows = results.map((r) => [
    r.id, r.method, r.structure, r.sparsity, r.useVariant, r.actualSparsity,
    ...sets.flatMap((s) => {
      const p = r.perplexity[s];
      return [p?.ppl, p?.windows, p?.tokens];
    }),
    ...tasks.flatMap((t) => {
      const e = r.tasks[t];
      return [e?.acc, e?.acc_norm, e?.n];
    }),
    ...(tasks.length ? [r.mean] : []),
    ...stages.map((k) => r.timings[k]),
    ...Array.from({ length: blocks }, (_, i) => r.blockSparsity[i]),
    ...(tuned ? finetuneCells(r.finetune) : []),
  ]);
  return [header, ...rows].map((row) => row.map(csvField).join(',')).join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** Write `text` to `file` through a temporary file in the same folder and a rename. */

export interface ReportOptions {
  charts?: boolean; // write the SVG charts and link them from results.md (default true)
}

/**
 * Write results.json, results.csv, the charts and results.md into `dir` (created when missing), each atomically.
 * Returns the paths written. Throws DataError for invalid results (nothing is written then).
 */
export async function writeReport(dir: string, input: ResultsInput, options: ReportOptions = {}): Promise<string[]> {
  const file = validateResults(input, join(dir, 'results.json'));
  const charts = options.charts === false ? [] : await buildCharts(file.results, pplSets(file.results), { title: file.title });
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  const put = async (name: string, text: string): Promise<void> => {
    writeFileAtomic(join(dir, name), text);
    written.push(join(dir, name));
  };
  await put('results.json', JSON.stringify(file, null, 2) + '\n');
  await put('results.csv', csvReport(file));
  for (const c of charts) await put(c.file, c.svg);
  await put('results.md', markdownReport(file, charts));
  return written;
}
