/**
 * Evaluation results (plain JSON-serialisable data) and the Markdown table shaped like the paper's zero-shot table:
 * one row per model/setting, one column per task, then Mean, then one column per perplexity set.
 */
import { renderMarkdownTable } from '../markdown.js';

/** The two accuracy metrics of lm-evaluation-harness multiple-choice tasks. */
export type AccuracyMetric = 'acc' | 'acc_norm';

/** One zero-shot task's outcome. Accuracies are fractions in [0, 1]. */
export interface TaskResult {
  task: string; // registry name (arc_easy)
  displayName: string; // table header (ARC-e)
  file: string; // data file the items came from
  n: number; // items scored (after `limit`)
  acc: number; // argmax of summed log-probs == gold, averaged
  accStderr: number | null; // lm-eval mean_stderr: sample std (ddof=1) / sqrt(n); null when n < 2
  accNorm: number | null; // argmax of log-prob / choice length == gold; null when the task does not report it
  accNormStderr: number | null; // as accStderr, for accNorm
}

/** What one task contributes to the mean. */
export interface MeanContribution {
  task: string;
  metric: AccuracyMetric;
  value: number;
}

/** Unweighted mean over tasks of one accuracy per task (the paper's "Mean" column). */
export interface MeanResult {
  value: number;
  contributions: MeanContribution[];
}

/** Outcome of evaluateTasks. */
export interface ZeroShotResults {
  tasks: TaskResult[];
  mean: MeanResult;
  addBos: boolean; // whether a BOS token was prepended to every context
  limit: number | null; // first N items per task, or null for all
}

/** Perplexity over the windows of one token stream (what perplexityOfIds returns). */
export interface WindowPerplexity {
  ppl: number;
  windows: number; // non-overlapping windows of seqlen tokens scored
  tokens: number; // tokens in those windows (windows x seqlen)
  seqlen: number;
  seconds: number;
  tokensPerSecond: number;
}

/** One perplexity evaluation (WikiText-2, C4, ...) as a results row shows it. */
export interface PerplexityResult extends Pick<WindowPerplexity, 'ppl' | 'windows' | 'tokens' | 'tokensPerSecond'> {
  dataset: string; // column header stem (wikitext2, c4)
}

/** One row of a results table: a model or pruning setting and what was measured for it. */
export interface EvaluationRow {
  label: string; // "LLaMA-7B Wanda 50%"
  zeroShot: ZeroShotResults | null;
  perplexity: PerplexityResult[];
}

export interface TableOptions {
  /** Decimals of accuracies (shown in percent, as the paper) and perplexities; default 2. */
  digits?: number;
  /** Append ` ± stderr` (percent) to each task cell; default false. */
  stderr?: boolean;
}

/**
 * A Markdown table: rows = `rows` in order; columns = the tasks of all rows in first-seen order, then Mean, then
 * `<dataset> ppl` for every perplexity set in first-seen order. A task cell shows the metric the task contributes to
 * its row's mean (so each row's Mean is the average of its cells); absent values are "-".
 */
export function resultsTable(rows: EvaluationRow[], options: TableOptions = {}): string {
  const digits = options.digits ?? 2;
  const tasks = new Map<string, string>(); // task -> displayName
  const datasets: string[] = [];
  for (const row of rows) {
    for (const t of row.zeroShot?.tasks ?? []) if (!tasks.has(t.task)) tasks.set(t.task, t.displayName);
    for (const p of row.perplexity) if (!datasets.includes(p.dataset)) datasets.push(p.dataset);
  }
  const hasZeroShot = rows.some((r) => r.zeroShot !== null);
  const header = ['Model', ...tasks.values(), ...(hasZeroShot ? ['Mean'] : []), ...datasets.map((d) => `${d} ppl`)];
  const pct = (x: number): string => (100 * x).toFixed(digits);
  const body: string[][] = [];
  for (const row of rows) {
    const cells = [row.label];
    for (const task of tasks.keys()) {
      const result = row.zeroShot?.tasks.find((t) => t.task === task);
      const contribution = row.zeroShot?.mean.contributions.find((c) => c.task === task);
      if (result === undefined || contribution === undefined) {
        cells.push('-');
        continue;
      }
      const se = contribution.metric === 'acc' ? result.accStderr : result.accNormStderr;
      cells.push(pct(contribution.value) + (options.stderr === true && se !== null ? ` ± ${pct(se)}` : ''));
    }
    if (hasZeroShot) cells.push(row.zeroShot === null ? '-' : pct(row.zeroShot.mean.value));
    for (const d of datasets) {
      const p = row.perplexity.find((x) => x.dataset === d);
      cells.push(p === undefined ? '-' : p.ppl.toFixed(digits));
    }
    body.push(cells);
  }
  return renderMarkdownTable(header, body);
}
