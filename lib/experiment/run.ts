/**
 * `runExperiment(exp)`: prune-then-evaluate every setting of an experiment (the dense model once, first), with an
 * optional LoRA stage, then write the report (results.json/md/csv and SVG charts) into `exp.output`. The run can be
 * killed at any moment and started again: it goes on where it stopped.
 *
 * The steps, each in a file that says what it is:
 *   lib/experiment/context.ts        backend, every input checked before any work, what the later steps read
 *   lib/experiment/fingerprint.ts    what a setting's numbers depend on, and its fingerprint
 *   lib/experiment/output-folder.ts  the results folder: layout, lock, leftovers, stored settings, what is reusable
 *   lib/experiment/stages.ts         prune, evaluate, fine-tune one setting (THE FINETUNE STAGE is described there)
 *   this file                        the loop over the settings, then the report (lib/experiment/report.ts) or, for
 *                                    a shard, the manifest (lib/experiment/shard.ts)
 *
 * results.json is deterministic apart from each result's `timings` and `finetune.seconds` (seconds): the same
 * experiment gives the same file whether it ran in one go or was killed and resumed (a resumed setting keeps the
 * timings of the run that made it).
 */
import { existsSync, mkdirSync, readFileSync } from '../platform/fs.js';
import { basename, join } from '../platform/path.js';
import { TASKS } from '../eval/tasks.js';
import { folderMade } from '../interrupt.js';
import { writeJsonAtomic } from '../model/save.js';
import { validateResults, writeReport, type ResultsFile, type ResultsInput, type SettingResult } from './report.js';
import { EXPERIMENT_FILE, shardOf, type ExperimentFile, type Shard } from './shard.js';
import { DENSE_ID, expandSettings, type Experiment, type PruneSetting } from './schema.js';
import { prepareRun, type RunContext, type RunOptions } from './context.js';
import { finetuneFingerprint, fingerprint, settingInputs, versionStamp } from './fingerprint.js';
import {
  FORMAT,
  SETTINGS_DIR,
  acquireLock,
  finetuneWork,
  removeCheckpoint,
  removeFinetune,
  removeLeftovers,
  removeUnkept,
  reusableSetting,
  settingPaths,
  storedName,
  withoutFinetune,
  type SettingJob,
  type StoredSetting,
} from './output-folder.js';
import { denseResult, evaluateFolder, finetuneSetting, prunedResult, pruneSetting } from './stages.js';

export type { RunOptions } from './context.js';

/** What a run would do with one setting (RunResult.planned, dry runs only). */
export interface PlannedSetting {
  id: string;
  action: 'reuse' | 'compute' | 'finetune'; // finetune: the pruned model's result is reused, its fine-tune is (re)done
  setting: PruneSetting | null; // null: the dense model
}

/** What a run did. */
export interface RunResult {
  output: string; // the results folder
  results: ResultsFile; // the content of results.json
  files: string[]; // report files written (results.json, results.csv, charts, results.md)
  computed: string[]; // ids of the settings pruned and evaluated by this call ('dense' included), in run order
  reused: string[]; // ids of the settings whose pruned-model result was taken from an earlier run's settings/<id>.json
  finetuned: string[]; // ids of the settings fine-tuned (and evaluated again) by this call
  seconds: number; // wall time of this call
}

/** Create a folder (and its parents) the run needs; an interruption removes it again when it is still empty. */
function makeFolder(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true });
  folderMade(dir);
}

/** What the settings loop has done so far: the results in run order, the ids by what was done to them. */
type Tally = Pick<RunResult, 'computed' | 'reused' | 'finetuned'> & { results: SettingResult[] };

/**
 * Prune and evaluate every setting of `exp` (the dense model first when `exp.dense`), fine-tune and evaluate
 * again every pruned setting when `exp.finetune` is set, resuming an interrupted run in the same output folder,
 * and write the report there. See lib/experiment/output-folder.ts for the folder layout and what makes a stored
 * setting reusable. Throws ConfigError (a seqlen beyond the model context, fine-tuning data that is an evaluation
 * file, output folder in use by a live run), DataError (missing data files, before any work starts) and whatever
 * pruning, fine-tuning and evaluation throw; settings (and pruned-model results) finished before an error stay
 * saved.
 */
export async function runExperiment(exp: Experiment, options: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  const ctx = await prepareRun(exp, options);
  const shard = options.shard;
  makeFolder(exp.output);
  const lock = acquireLock(exp.output, shard, { forceUnlock: options.forceUnlock ?? false, ...(options.onNote ? { onNote: options.onNote } : {}) });
  try {
    const { grid, plan } = await shardPlan(ctx, shard, false);
    const tally: Tally = { results: [], computed: [], reused: [], finetuned: [] };
    for (const [index, s] of plan.entries()) await runSetting(ctx, await settingJob(ctx, s, index, plan.length), tally);
    return await finishRun(ctx, grid, tally, shard, t0);
  } finally {
    lock.release();
  }
}

/**
 * What runExperiment would do with each setting (reuse a stored result, compute, or redo only the fine-tune),
 * deciding exactly as it does, without writing or computing anything (`llm-prune run --dry-run`).
 */
export async function planSettings(exp: Experiment, options: RunOptions = {}): Promise<PlannedSetting[]> {
  const ctx = await prepareRun(exp, options);
  const { plan } = await shardPlan(ctx, options.shard, true);
  const out: PlannedSetting[] = [];
  for (const [index, s] of plan.entries()) {
    const job = await settingJob(ctx, s, index, plan.length);
    const stored = reusableSetting(job, exp, true, ctx.note);
    const action = !stored ? 'compute' : finetuneWork(job, stored, exp.keepCheckpoints).why === null ? 'reuse' : 'finetune';
    out.push({ id: job.id, setting: s, action });
  }
  return out;
}

/**
 * The whole grid (the dense model first) and the settings this run does (the shard's, or all). Unless `dry`,
 * removes the leftovers of an interrupted run (a shard only its own) and creates settings/.
 */
async function shardPlan(ctx: RunContext, shard: Shard | undefined, dry: boolean): Promise<{ grid: (PruneSetting | null)[]; plan: (PruneSetting | null)[] }> {
  const { exp, note } = ctx;
  const grid: (PruneSetting | null)[] = [...(exp.dense ? [null] : []), ...expandSettings(exp)];
  const shards = shard ? await Promise.all(grid.map((s) => shardOf(idOf(s), shard.count))) : [];
  const plan = shard ? grid.filter((_, i) => shards[i] === shard.index) : grid;
  const mine = new Set(plan.map(idOf));
  const ownedBy = (name: string): boolean => mine.has(name) || [...mine].some((id) => name.startsWith(`${id}.`));
  const removed = dry ? [] : removeLeftovers(exp.output, shard ? ownedBy : undefined);
  if (removed.length) note(`removed leftovers of an interrupted run: ${removed.join(', ')}`);
  if (!dry) makeFolder(join(exp.output, SETTINGS_DIR));
  if (shard) note(`shard ${shard.index}/${shard.count}: ${plan.length} of the ${grid.length} settings (${[...mine].join(', ') || 'none'})`);
  return { grid, plan };
}

function idOf(s: PruneSetting | null): string {
  return s ? s.id : DENSE_ID;
}

/** Setting `s` (null: the dense model), the index-th of `count` this run does: its fingerprints and files. */
async function settingJob(ctx: RunContext, s: PruneSetting | null, index: number, count: number): Promise<SettingJob> {
  const id = idOf(s);
  const inputs = settingInputs(s, ctx.shared);
  const print = await fingerprint(inputs);
  const ftInputs = s ? ctx.ftInputs : null; // the dense model is not fine-tuned
  return {
    id,
    setting: s,
    tag: `[${index + 1}/${count}] ${id}`,
    inputs,
    print,
    versions: versionStamp(s),
    ftInputs,
    ftPrint: ftInputs ? await finetuneFingerprint(print, ftInputs) : null,
    ...settingPaths(ctx.exp.output, id),
  };
}

/** One setting: reused as stored, or computed, and fine-tuned when the experiment says so; saved and tallied. */
async function runSetting(ctx: RunContext, job: SettingJob, tally: Tally): Promise<void> {
  const { exp, note } = ctx;
  const stored = reusableSetting(job, exp, false, note);
  const work = finetuneWork(job, stored, exp.keepCheckpoints);
  if (stored && work.why === null) {
    tally.results.push(reuseStored(ctx, job, stored));
    tally.reused.push(job.id);
    return;
  }
  let base: StoredSetting;
  if (stored) {
    base = stored;
    tally.reused.push(job.id);
    note(`${job.tag}: reusing the pruned model's result; fine-tuning again: ${work.why}`);
  } else {
    base = await computeSetting(ctx, job);
    tally.computed.push(job.id);
  }
  let result = base.result;
  if (job.setting && job.ftPrint !== null) {
    result = await finetuneStage(ctx, job, base, work.resume, tally);
  } else {
    writeJsonAtomic(job.file, base);
  }
  removeUnkept(exp.output, job, exp.keepCheckpoints);
  const took = Object.values(result.timings).reduce((a, b) => a + b, 0);
  note(`${job.tag}: done in ${took.toFixed(1)}s, saved ${storedName(job.id)}`);
  tally.results.push(result);
}

/** A setting finished earlier: its stored result (a fine-tune result of an experiment that no longer fine-tunes is
 * dropped); folders the experiment does not keep are removed. */
function reuseStored(ctx: RunContext, job: SettingJob, stored: StoredSetting): SettingResult {
  const { exp, note } = ctx;
  let result = stored.result;
  if (job.ftPrint === null && (result.finetune !== undefined || stored.finetune !== undefined)) {
    result = withoutFinetune(result);
    const { finetune: _dropped, ...rest } = stored;
    writeJsonAtomic(job.file, { ...rest, result });
    note(`${job.tag}: dropped its fine-tune result (the experiment has no finetune section)`);
  }
  for (const line of removeUnkept(exp.output, job, exp.keepCheckpoints)) note(line);
  note(`${job.tag}: reused (finished earlier: ${storedName(job.id)})`);
  return result;
}

/** Evaluate the dense model, or prune the setting and evaluate the pruned checkpoint: the record to store. */
async function computeSetting(ctx: RunContext, job: SettingJob): Promise<StoredSetting> {
  const { exp, note } = ctx;
  const { id, tag, setting: s } = job;
  let result: SettingResult;
  let calibrationHash: string | null = null;
  if (s === null) {
    note(`${tag}: evaluating the dense model`);
    result = denseResult(id, await evaluateFolder(ctx, id, ctx.modelDir, true));
  } else {
    // Never trust folders of an unfinished setting: they may be from other inputs.
    removeCheckpoint(exp.output, id);
    removeFinetune(exp.output, id);
    note(`${tag}: pruning`);
    const report = await pruneSetting(ctx, s, job.ckptDir);
    calibrationHash = report.calibration?.hash ?? null;
    note(`${tag}: pruned to ${(100 * report.sparsity.overall).toFixed(2)}% zeros in ${report.times.total.toFixed(1)}s; evaluating`);
    result = prunedResult(s, report, await evaluateFolder(ctx, id, job.ckptDir, false));
  }
  return { format: FORMAT, id, fingerprint: job.print, inputs: job.inputs, result, calibrationHash, versions: job.versions };
}

/**
 * The pruned checkpoint of a reused setting that was not kept, pruned again from the same inputs. When the new
 * pruning differs from the stored one (calibration or zeros), it is evaluated again and the setting counts as
 * computed: the record to store.
 */
async function pruneAgain(ctx: RunContext, job: SettingJob, base: StoredSetting, tally: Tally): Promise<StoredSetting> {
  const { note } = ctx;
  const { id, tag } = job;
  note(`${tag}: pruning again for the fine-tune (its checkpoint was not kept)`);
  const report = await pruneSetting(ctx, job.setting!, job.ckptDir);
  const hash = report.calibration?.hash ?? null;
  if (hash === base.calibrationHash && report.sparsity.overall === base.result.actualSparsity) return base;
  note(`${tag}: the new pruning differs from the stored one (calibration or zeros); evaluating it again`);
  const ev = await evaluateFolder(ctx, id, job.ckptDir, false);
  if (!tally.computed.includes(id)) tally.computed.push(id);
  const at = tally.reused.indexOf(id);
  if (at >= 0) tally.reused.splice(at, 1);
  return {
    ...base,
    calibrationHash: hash,
    result: {
      ...base.result,
      actualSparsity: report.sparsity.overall,
      ...ev.fields,
      blockSparsity: report.sparsity.blocks.map((b) => b.sparsity),
      timings: { prune: report.times.total, ...ev.timings },
    },
  };
}

/**
 * Fine-tune a pruned setting and evaluate it again. Its pruned checkpoint is the one still there (this run's, kept,
 * or left by an interrupted fine-tune), else pruned again. The pruned model's record is saved first: a run killed
 * from there on keeps its numbers and continues the fine-tune (same inputs) from its last trainer checkpoint.
 */
async function finetuneStage(ctx: RunContext, job: SettingJob, stored: StoredSetting, resume: boolean, tally: Tally): Promise<SettingResult> {
  const { exp, note } = ctx;
  const ft = ctx.ft!;
  let base = stored;
  let resuming = resume;
  if (!existsSync(job.ckptDir)) {
    base = await pruneAgain(ctx, job, base, tally);
    resuming = false;
  }
  const pending: StoredSetting = { ...base, result: withoutFinetune(base.result), finetune: { fingerprint: job.ftPrint!, inputs: job.ftInputs! } };
  writeJsonAtomic(job.file, pending);
  if (!resuming) removeFinetune(exp.output, job.id);
  note(`${job.tag}: fine-tuning (LoRA rank ${ft.rank} on ${ft.targets.join(', ')}, ${ft.maxSteps} steps)${resuming ? ', continuing the interrupted fine-tune' : ''}`);
  const tuned = await finetuneSetting(ctx, job.id, job.ckptDir, job.ftDir, resuming, job.tag);
  const result = { ...pending.result, timings: { ...pending.result.timings, ...tuned.timings }, finetune: tuned.block };
  writeJsonAtomic(job.file, { ...pending, result });
  tally.finetuned.push(job.id);
  return result;
}

/** Write experiment.json and, unless this is a shard, the report; what the run did. */
async function finishRun(ctx: RunContext, grid: (PruneSetting | null)[], tally: Tally, shard: Shard | undefined, t0: number): Promise<RunResult> {
  const { exp, note } = ctx;
  const { results, computed, reused, finetuned } = tally;
  const report: ResultsInput = { version: 1, title: exp.name, meanMetric: exp.eval.meanMetric, meta: meta(ctx), results };
  const manifest: ExperimentFile = { version: 1, title: exp.name, meanMetric: exp.eval.meanMetric, meta: report.meta ?? {}, settings: grid.map(idOf) };
  writeJsonAtomic(join(exp.output, EXPERIMENT_FILE), manifest);
  const seconds = (): number => (performance.now() - t0) / 1000;
  if (shard) {
    note(`shard ${shard.index}/${shard.count} done; merge the shards with: llm-prune report ${exp.output} [more folders] --out DIR`);
    const checked = validateResults(report, join(exp.output, 'results.json'));
    return { output: exp.output, results: checked, files: [join(exp.output, EXPERIMENT_FILE)], computed, reused, finetuned, seconds: seconds() };
  }
  const files = await writeReport(exp.output, report);
  const written = JSON.parse(readFileSync(join(exp.output, 'results.json'), 'utf8')) as ResultsFile;
  note(`wrote ${join(exp.output, 'results.md')} (${files.length} files)`);
  return { output: exp.output, results: written, files, computed, reused, finetuned, seconds: seconds() };
}

/** The report's header lines: what was run, without anything that changes from run to run. */
function meta(ctx: RunContext): Record<string, string> {
  const { exp, ft } = ctx;
  const c = exp.calibration;
  const e = exp.eval;
  const out: Record<string, string> = {
    model: exp.model,
    backend: ctx.backend,
    calibration: `${c.nsamples} windows of ${ctx.calibSeqlen} tokens from ${c.source}, seed ${c.seed}`,
  };
  if (e.ppl.length) {
    out['perplexity'] = `${e.ppl.join(', ')}: windows of ${ctx.evalSeqlen} tokens, ${e.maxWindows === undefined ? 'all windows' : `first ${e.maxWindows} windows`}`;
  }
  if (e.tasks.length) {
    out['tasks'] = `${e.tasks.map((t) => (TASKS[t] ? t : basename(t))).join(', ')}: ${e.limit === undefined ? 'all items' : `first ${e.limit} items`}, ` +
      `BOS ${e.addBos ? 'added' : 'not added'}, mean of ${e.meanMetric}`;
  }
  if (ft) {
    out['finetune'] =
      `LoRA rank ${ft.rank} (alpha ${ft.alpha}, dropout ${ft.dropout}) on ${ft.targets.join(', ')}; AdamW lr ${ft.lr}, ${ft.schedule} schedule, ` +
      `${ft.warmupSteps} warmup steps; ${ft.maxSteps} steps of ${ft.gradAccum} x ${ft.batchSize} windows of ${ft.seqlen} tokens from ${ft.data} ` +
      `(seed ${ft.seed}, the pruning's calibration documents left out); evaluated ${ft.merge === 'none' ? 'with the adapters unmerged' : `as the ${ft.merge} merge`}`;
  }
  out['data'] = ctx.dataDir;
  return out;
}
