/**
 * `runExperiment(exp)`: prune-then-evaluate every setting of an experiment (the dense model once, first), with an
 * optional LoRA stage, then write the report (results.json/md/csv and SVG charts) into `exp.output`. The run can be
 * killed at any moment and started again: it goes on where it stopped.
 *
 * THE FINETUNE STAGE (`finetune:` in the experiment): each pruned setting (never the dense model) is, after it was
 * pruned and evaluated, fine-tuned with lib/finetune/train.ts's `finetune()` on its pruned checkpoint (LoRA
 * adapters; training windows drawn from `finetune.data` with the pruning's calibration documents left out) and
 * evaluated again with the same evaluation: the merged checkpoint for `merge: masked` (the default: the pruning
 * mask re-applied, so the zeros are exactly those of the pruned model, which the runner checks) or `dense`, the
 * adapters unmerged on the pruned checkpoint for `merge: none`. The setting's result gets a `finetune` block
 * (steps, training seconds, first and final training loss, the merged model's zero fraction, perplexities, tasks,
 * mean) and timings `finetune` (training and merge), `finetune_load`, `finetune_ppl`, `finetune_tasks`.
 *
 * The output folder:
 *   settings/<id>.json    one setting: its result plus a fingerprint of everything it was computed from; written
 *                         atomically when the pruned model's result is known and again when its fine-tune is done
 *   checkpoints/<id>/     the pruned checkpoint (with report.json); removed after its evaluation (and fine-tune)
 *                         unless keepCheckpoints is set. While being written it is checkpoints/<id>.partial/
 *   finetune/<id>/        the fine-tune's folder (PEFT adapters, report.json, trainer checkpoint/, merged/);
 *                         removed after the setting unless keepCheckpoints is set
 *   results.json, results.md, results.csv, *.svg   written at the end (lib/experiment/report.ts); not by a shard
 *   experiment.json       title, meta and the ids of the whole grid: what `llm-prune report` merges shards by
 *                         (lib/experiment/shard.ts)
 *   .run.lock             the pid of the run working in the folder (two runs at once would undo each other);
 *                         .run.lock.<K>-of-<N> for shard K of N, so shards can share the folder
 *   checkpoints/<id>.partial/   a pruning under way, with its resume state (continued by the next run)
 *
 * RESUME: at start, a setting whose settings/<id>.json exists and whose stored fingerprint equals the one computed
 * now is taken as done (a note says so) and not recomputed. Anything else is computed from scratch: no result file,
 * a result made from different inputs (the note names the keys that changed), a kept checkpoint that went missing.
 * Leftovers of a killed run (partial checkpoint folders, checkpoints of unfinished settings, temporary files) are
 * removed first.
 *
 * RESUME WITH A FINETUNE STAGE: the fine-tune has its own fingerprint (the setting's, plus the data file's stamp and
 * every finetune key that changes the numbers: rank, alpha, dropout, targets, lr, schedule, warmupSteps, maxSteps,
 * seqlen, batchSize, gradAccum, seed, merge; not checkpointEvery). A setting whose pruned-model result is reusable
 * but whose fine-tune is missing, was interrupted, or was made from other finetune values has ONLY ITS FINE-TUNE
 * redone: the pruned model's numbers are kept, its checkpoint is used when still there (kept, or left by an
 * interrupted fine-tune) and otherwise pruned again (same inputs, same weights: checked against the stored
 * calibration hash and zero fraction; on a mismatch the pruned model is evaluated again too). An interrupted
 * fine-tune with unchanged values continues from its last trainer checkpoint. Removing the finetune section drops
 * the fine-tune results and keeps the rest.
 *
 * THE FINGERPRINT of a setting (sha256 of a canonical JSON) covers what its numbers depend on: the setting itself;
 * the model (reference, and name, size and mtime of each of its files); the tfjs backend in use; the calibration
 * (file stamp, nsamples, seqlen, seed) for methods that use calibration data; the evaluation (each perplexity set's
 * file stamp, seqlen, maxWindows, each task's file stamp, limit, addBos, meanMetric). Speed-only options
 * (calibration.batchSize), the output folder and keepCheckpoints are left out. Touching an input file (a new mtime)
 * therefore redoes the settings that read it.
 *
 * results.json is deterministic apart from each result's `timings` and `finetune.seconds` (seconds): the same
 * experiment gives the same file whether it ran in one go or was killed and resumed (a resumed setting keeps the
 * timings of the run that made it).
 */
import { canonicalJson, canonicalSha256 } from '../canonical.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { CheckpointError, ConfigError, DataError, keyPath } from '../errors.js';
import { perplexitySetFile, defaultDataDir } from '../eval/datasets.js';
import { evaluate, type EvaluateConfig, type EvaluateResult, type EvaluationIdsCache } from '../eval/evaluate.js';
import { loadAdapters, type LoadedAdapters } from '../finetune/peft.js';
import { finetune } from '../finetune/train.js';
import { TASKS } from '../eval/tasks.js';
import { initBackend } from '../model/backend.js';
import { linearSparsity } from '../model/sparsity.js';
import { Checkpoint } from '../model/checkpoint.js';
import { resolveModelPath } from '../model/hub.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { TEMP_FILE, writeJsonAtomic } from '../model/save.js';
import { prune } from '../prune/prune.js';
import { ResumeMismatchError } from '../prune/resume.js';
import { getMethod } from '../prune/registry.js';
import {
  finetuneLabel,
  settingResultSchema,
  validateResults,
  writeReport,
  type FinetuneResult,
  type ResultsFile,
  type ResultsInput,
  type SettingResult,
} from './report.js';
import { EXPERIMENT_FILE, shardOf, type ExperimentFile, type Shard } from './shard.js';
import { DENSE_ID, EXPERIMENT_FINETUNE_DEFAULTS, expandSettings, planTag, structureLabel, type Experiment, type FinetuneConfig, type PruneSetting } from './schema.js';

/** The plan of a setting beyond method/structure/sparsity, for its fingerprint; absent when it has none (so older
 * results keep their fingerprints). */
function planInputs(s: PruneSetting): { plan?: unknown } {
  const { methodOptions, layerwise, refine, targets, ignore } = s;
  const { variant: _v, ...rest } = methodOptions;
  const any = Object.keys(rest).length > 0 || layerwise || refine || targets.length > 0 || ignore.length > 0;
  return any ? { plan: { methodOptions: rest, layerwise, refine, targets, ignore } } : {};
}

/** Callbacks for a progress display (the CLI passes its stderr reporter's update and note). */
export interface RunOptions {
  /** Long work: `label` says what ('wanda-unstructured-0.5: prune', 'dense: wikitext2 ppl'), done/total units. */
  onProgress?: (label: string, done: number, total: number, extra?: string) => void;
  /** One line per event: backend chosen, setting started/finished/reused/redone, leftovers removed, report written. */
  onNote?: (line: string) => void;
  /** Data folder when the experiment sets no eval.dataDir (default: defaultDataDir(); the CLI passes its env's). */
  dataDir?: string;
  /** Token ids of the perplexity sets, reused across settings (default: evaluate's process-wide cache). */
  idsCache?: EvaluationIdsCache;
  /** Run only the settings of this shard (lib/experiment/shard.ts); the report is then left to `mergeResults`. */
  shard?: Shard;
}

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

/** Version of the settings/<id>.json layout and of what the fingerprint covers; a change redoes every setting. */
const FORMAT = 1;
const SETTINGS_DIR = 'settings';
const CHECKPOINTS_DIR = 'checkpoints';
const FINETUNE_DIR = 'finetune';
const LOCK_FILE = '.run.lock';

/** settings/<id>.json */
interface StoredSetting {
  format: number;
  id: string;
  fingerprint: string; // canonicalSha256(inputs)
  inputs: Inputs; // what the fingerprint covers (kept to name what changed)
  result: SettingResult; // with its `finetune` block once the fine-tune is done
  calibrationHash: string | null; // sha256 of the calibration window ids the pruning used (null: none used)
  /** The fine-tune the result's `finetune` block comes from, or (no block yet) the one under way. */
  finetune?: { fingerprint: string; inputs: FinetuneInputs };
}

/** The fine-tune of a setting, besides the setting's own inputs (see the top of this file). */
interface FinetuneInputs {
  data: FileStamp;
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  maxSteps: number;
  seqlen: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  merge: 'masked' | 'dense' | 'none';
}

/** Name, size and modification time of an input file: a changed file changes the fingerprint. */
interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Everything a setting's numbers depend on (see the top of this file). */
interface Inputs {
  setting: { id: string; method: string; structure: string | null; sparsity: number; useVariant: boolean; plan?: unknown };
  model: { ref: string; files: FileStamp[] };
  backend: string;
  calibration: { source: FileStamp; nsamples: number; seqlen: number; seed: number } | null;
  eval: {
    ppl: { set: string; file: FileStamp }[];
    seqlen: number;
    maxWindows: number | null;
    tasks: { task: string; file: FileStamp }[];
    limit: number | null;
    addBos: boolean;
    meanMetric: string;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Fingerprints

function stamp(path: string): FileStamp {
  const s = statSync(path);
  return { path, size: s.size, mtimeMs: s.mtimeMs };
}

function fingerprint(inputs: unknown): string {
  return canonicalSha256(inputs);
}

/** Leaf key paths whose values differ between two input records ('eval.limit', 'model.files[0].mtimeMs'). */
function changedKeys(before: unknown, after: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
  if (isObj(before) && isObj(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) =>
      changedKeys(before[k], after[k], Array.isArray(after) ? `${path}[${k}]` : path ? `${path}.${k}` : k),
    );
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [path || '(everything)'];
}

/** The model's own files (config, weights, index, tokenizer), stamped in name order. */
function modelFiles(dir: string): FileStamp[] {
  return readdirSync(dir)
    .filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.index.json') || f.startsWith('tokenizer'))
    .sort()
    .map((f) => stamp(join(dir, f)));
}

// ---------------------------------------------------------------------------------------------------------------
// The output folder

/** Take the folder for this process; a lock of a live process is an error, one of a dead (killed) run is taken over. */
function acquireLock(output: string, shard?: Shard): string {
  const file = join(output, shard ? `${LOCK_FILE}.${shard.index}-of-${shard.count}` : LOCK_FILE);
  const mine = `${process.pid} ${hostname()}\n`;
  if (existsSync(file)) {
    const [pidText, host] = readFileSync(file, 'utf8').trim().split(' ');
    const pid = Number(pidText);
    if (Number.isSafeInteger(pid) && pid > 0 && host === hostname() && processAlive(pid)) {
      throw new ConfigError(
        `output ${output}: another run (process ${pid}) is working in this folder; wait for it to finish, ` +
          `or delete ${file} if no such run exists`,
      );
    }
  }
  writeFileSync(file, mine);
  return file;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(file: string): void {
  try {
    const [pid] = readFileSync(file, 'utf8').trim().split(' ');
    if (Number(pid) === process.pid) rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

/** Partial and replaced folders of StagedFolder (`<id>.partial-<pid>`, `<id>.old-<pid>`). */
const STAGED_LEFTOVER = /\.(partial|old)-\d+$/;

/**
 * Remove what a killed run leaves behind: temporary files and partial checkpoint folders. Returns their names.
 * `only`: a shard sharing the folder with others touches only its own settings' leftovers.
 */
function removeLeftovers(output: string, only?: (name: string) => boolean): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, match: RegExp): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (!match.test(name) || (only && !only(name))) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(join(basename(dir), name));
    }
  };
  sweep(output, TEMP_FILE);
  sweep(join(output, SETTINGS_DIR), TEMP_FILE);
  sweep(join(output, CHECKPOINTS_DIR), STAGED_LEFTOVER);
  const tuned = join(output, FINETUNE_DIR);
  if (existsSync(tuned)) {
    for (const id of readdirSync(tuned)) {
      if (only && !only(id)) continue;
      const dir = join(tuned, id);
      if (!statSync(dir).isDirectory()) continue;
      for (const name of readdirSync(dir)) {
        if (!TEMP_FILE.test(name) && !STAGED_LEFTOVER.test(name)) continue;
        rmSync(join(dir, name), { recursive: true, force: true });
        removed.push(join(FINETUNE_DIR, id, name));
      }
    }
  }
  return removed;
}

/** Remove <parent>/<id> (checkpoints/ or finetune/) and, when that leaves it empty, <parent>/. */
function removeSettingFolder(output: string, parentName: string, id: string): boolean {
  const parent = join(output, parentName);
  const dir = join(parent, id);
  if (!existsSync(dir)) return false;
  rmSync(dir, { recursive: true, force: true });
  if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
  return true;
}

function removeCheckpoint(output: string, id: string): boolean {
  return removeSettingFolder(output, CHECKPOINTS_DIR, id);
}

function removeFinetune(output: string, id: string): boolean {
  return removeSettingFolder(output, FINETUNE_DIR, id);
}

/** A result without its fine-tune: no `finetune` block, no `finetune*` timings. */
function withoutFinetune(r: SettingResult): SettingResult {
  const { finetune: _dropped, timings, ...rest } = r;
  return { ...rest, timings: Object.fromEntries(Object.entries(timings).filter(([k]) => !k.startsWith('finetune'))) };
}

/** A stored result, or why it cannot be used. */
function readStored(file: string, id: string): { stored: StoredSetting } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { problem: `unreadable (${(e as Error).message})` };
  }
  const v = value as Partial<StoredSetting> | null;
  if (v === null || typeof v !== 'object') return { problem: 'not a JSON object' };
  if (v.format !== FORMAT) return { problem: `written by another version of the runner (format ${String(v.format)}, now ${FORMAT})` };
  if (v.id !== id || typeof v.fingerprint !== 'string' || typeof v.inputs !== 'object') return { problem: 'not a result of this setting' };
  const parsed = settingResultSchema.safeParse(v.result);
  if (!parsed.success || parsed.data.id !== id) return { problem: 'its result is malformed' };
  const f = v.finetune as unknown;
  if (f !== undefined && (f === null || typeof f !== 'object' || typeof (f as { fingerprint?: unknown }).fingerprint !== 'string' || typeof (f as { inputs?: unknown }).inputs !== 'object')) {
    return { problem: 'its finetune record is malformed' };
  }
  return { stored: { ...(v as StoredSetting), result: parsed.data } };
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

/** The result fields an evaluation fills, keyed as the experiment names them (tasks by name or file path). */
function evaluationFields(exp: Experiment, r: Pick<EvaluateResult, 'perplexity' | 'zeroShot'>): Pick<SettingResult, 'perplexity' | 'tasks' | 'mean'> {
  const perplexity: SettingResult['perplexity'] = {};
  for (const p of r.perplexity) perplexity[p.dataset] = { ppl: Number.isFinite(p.ppl) ? p.ppl : null, windows: p.windows, tokens: p.tokens };
  const tasks: SettingResult['tasks'] = {};
  const scored = r.zeroShot?.tasks ?? [];
  exp.eval.tasks.forEach((task, i) => {
    const t = scored[i];
    if (t === undefined) {
      throw new DataError(`eval.tasks: '${task}' gave no result (evaluate() scored ${scored.length} of ${exp.eval.tasks.length} tasks)`);
    }
    tasks[task] = { acc: t.acc, ...(t.accNorm !== null ? { acc_norm: t.accNorm } : {}), n: t.n };
  });
  return { perplexity, tasks, mean: r.zeroShot ? r.zeroShot.mean.value : null };
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/** The finetune section with the runner's defaults filled in and the window length resolved. */
type ResolvedFinetune = { [K in keyof FinetuneConfig]-?: NonNullable<FinetuneConfig[K]> };

function resolveFinetune(f: FinetuneConfig, maxPositions: number): ResolvedFinetune {
  return {
    ...f,
    dropout: f.dropout ?? EXPERIMENT_FINETUNE_DEFAULTS.dropout,
    schedule: f.schedule ?? EXPERIMENT_FINETUNE_DEFAULTS.schedule,
    warmupSteps: f.warmupSteps ?? EXPERIMENT_FINETUNE_DEFAULTS.warmupSteps,
    gradAccum: f.gradAccum ?? EXPERIMENT_FINETUNE_DEFAULTS.gradAccum,
    merge: f.merge ?? EXPERIMENT_FINETUNE_DEFAULTS.merge,
    checkpointEvery: f.checkpointEvery ?? EXPERIMENT_FINETUNE_DEFAULTS.checkpointEvery,
    seqlen: f.seqlen ?? maxPositions,
  };
}

/** Real path when the file exists (for "is this the same file" checks). */
function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/**
 * Prune and evaluate every setting of `exp` (the dense model first when `exp.dense`), fine-tune and evaluate
 * again every pruned setting when `exp.finetune` is set, resuming an interrupted run in the same output folder,
 * and write the report there. See the top of this file for the folder layout and what makes a stored setting
 * reusable. Throws ConfigError (a seqlen beyond the model context, fine-tuning data that is an evaluation file,
 * output folder in use by a live run), DataError (missing data files, before any work starts) and whatever
 * pruning, fine-tuning and evaluation throw; settings (and pruned-model results) finished before an error stay
 * saved.
 */
export async function runExperiment(exp: Experiment, options: RunOptions = {}): Promise<RunResult> {
  return (await runOrPlan(exp, options, false)) as RunResult;
}

/**
 * What runExperiment would do with each setting (reuse a stored result, compute, or redo only the fine-tune),
 * deciding exactly as it does, without writing or computing anything (`llm-prune run --dry-run`).
 */
export async function planSettings(exp: Experiment, options: RunOptions = {}): Promise<PlannedSetting[]> {
  return (await runOrPlan(exp, options, true)) as PlannedSetting[];
}

async function runOrPlan(exp: Experiment, options: RunOptions, dry: boolean): Promise<RunResult | PlannedSetting[]> {
  const t0 = performance.now();
  const note = (line: string): void => options.onNote?.(line);
  const progress = (label: string, done: number, total: number, extra?: string): void => options.onProgress?.(label, done, total, extra);

  const backend = await initBackend(exp.backend, exp.threads !== undefined ? { threads: exp.threads } : {});
  note(backend.note);

  // Inputs, checked before any work: the model, its context, the data files.
  const modelDir = await resolveModelPath(exp.model);
  const ckpt = Checkpoint.open(modelDir);
  const maxPositions = ckpt.config.maxPositions;
  ckpt.close();
  const calibSeqlen = exp.calibration.seqlen ?? maxPositions;
  const evalSeqlen = exp.eval.seqlen ?? maxPositions;
  const ft = exp.finetune ? resolveFinetune(exp.finetune, maxPositions) : null;
  const seqlens: [string, number][] = [['calibration.seqlen', calibSeqlen], ['eval.seqlen', evalSeqlen], ...(ft ? [['finetune.seqlen', ft.seqlen] as [string, number]] : [])];
  for (const [key, v] of seqlens) {
    if (v > maxPositions) throw new ConfigError(`${key}: ${v} exceeds the model context (max_position_embeddings = ${maxPositions} in ${modelDir})`);
  }
  const dataDir = exp.eval.dataDir ?? options.dataDir ?? defaultDataDir();
  const pplFiles: { set: (typeof exp.eval.ppl)[number]; file: string }[] = [];
  for (const set of exp.eval.ppl) pplFiles.push({ set, file: await perplexitySetFile(set, dataDir) });
  const taskFiles = exp.eval.tasks.map((task) => {
    const spec = TASKS[task];
    const file = spec ? join(dataDir, spec.defaultFile) : task;
    if (!existsSync(file)) throw new DataError(`eval.tasks: the file of task '${task}' does not exist: ${file} (eval.dataDir is ${dataDir})`);
    return { task, file };
  });
  if (ft) {
    const same = pplFiles.find((p) => realPath(p.file) === realPath(ft.data));
    if (same) {
      throw new ConfigError(
        `finetune.data: ${ft.data} is also the ${same.set} evaluation file; training on the evaluation text would make its perplexity meaningless`,
      );
    }
  }

  const modelStamp = { ref: exp.model, files: modelFiles(modelDir) };
  const evalInputs: Inputs['eval'] = {
    ppl: pplFiles.map((p) => ({ set: p.set, file: stamp(p.file) })),
    seqlen: evalSeqlen,
    maxWindows: exp.eval.maxWindows ?? null,
    tasks: taskFiles.map((t) => ({ task: t.task, file: stamp(t.file) })),
    limit: exp.eval.limit ?? null,
    addBos: exp.eval.addBos,
    meanMetric: exp.eval.meanMetric,
  };
  const calibrationInputs: NonNullable<Inputs['calibration']> = {
    source: stamp(exp.calibration.source),
    nsamples: exp.calibration.nsamples,
    seqlen: calibSeqlen,
    seed: exp.calibration.seed,
  };
  const inputsOf = (s: PruneSetting | null): Inputs => ({
    setting: s
      ? { id: s.id, method: s.method, structure: structureLabel(s.structure), sparsity: s.sparsity, useVariant: s.useVariant, ...planInputs(s) }
      : { id: DENSE_ID, method: 'dense', structure: null, sparsity: 0, useVariant: false },
    model: modelStamp,
    backend: backend.name,
    calibration: s && (getMethod(s.method).stats.length > 0 || s.layerwise !== null || s.refine !== null) ? calibrationInputs : null,
    eval: evalInputs,
  });
  const finetuneInputs: FinetuneInputs | null = ft
    ? {
        data: stamp(ft.data),
        rank: ft.rank,
        alpha: ft.alpha,
        dropout: ft.dropout,
        targets: [...ft.targets],
        lr: ft.lr,
        schedule: ft.schedule,
        warmupSteps: ft.warmupSteps,
        maxSteps: ft.maxSteps,
        seqlen: ft.seqlen,
        batchSize: ft.batchSize,
        gradAccum: ft.gradAccum,
        seed: ft.seed,
        merge: ft.merge,
      }
    : null;

  const evalConfig: EvaluateConfig = {
    ppl: exp.eval.ppl,
    pplFiles: Object.fromEntries(pplFiles.map((p) => [p.set, p.file])),
    seqlen: evalSeqlen,
    tasks: exp.eval.tasks,
    dataDir,
    addBos: exp.eval.addBos,
    meanMetric: exp.eval.meanMetric,
    optionName: keyPath('eval'),
    ...(options.idsCache ? { idsCache: options.idsCache } : {}),
    ...(exp.eval.maxWindows !== undefined ? { maxWindows: exp.eval.maxWindows } : {}),
    ...(exp.eval.limit !== undefined ? { limit: exp.eval.limit } : {}),
  };

  /** Load a checkpoint folder (with LoRA adapters from `adapterDir`, unmerged, when given), evaluate it, free it. */
  const evaluateFolder = async (
    label: string,
    dir: string,
    measure: boolean,
    adapterDir: string | null = null,
  ): Promise<{ fields: ReturnType<typeof evaluationFields>; sparsity: number | null; timings: Record<string, number> }> => {
    const tl = performance.now();
    const m: LoadedModel = await loadModel(dir);
    let adapters: LoadedAdapters | null = null;
    try {
      if (adapterDir !== null) adapters = loadAdapters(adapterDir, m.model);
      const load = (performance.now() - tl) / 1000;
      const sparsity = measure ? linearSparsity(m.checkpoint) : null;
      const onProgress = (what: string, d: number, t: number, e?: string): void => progress(`${label}: ${what}`, d, t, e);
      const forward = adapters ? { forward: adapters.forward } : {};
      // Perplexity and tasks as two calls, to time each (tokenizing a perplexity set counts as perplexity).
      const timings: Record<string, number> = { load };
      const perplexity: EvaluateResult['perplexity'] = [];
      let zeroShot: EvaluateResult['zeroShot'] = null;
      if (exp.eval.ppl.length) {
        const r = await evaluate(m, { ...evalConfig, ...forward, tasks: [], onProgress });
        perplexity.push(...r.perplexity);
        timings['ppl'] = r.seconds;
      }
      if (exp.eval.tasks.length) {
        const r = await evaluate(m, { ...evalConfig, ...forward, ppl: [], onProgress });
        zeroShot = r.zeroShot;
        timings['tasks'] = r.seconds;
      }
      return { fields: evaluationFields(exp, { perplexity, zeroShot }), sparsity, timings };
    } finally {
      adapters?.dispose();
      m.dispose();
    }
  };

  /**
   * Prune setting `s` of the model into `out` (replacing what is there), continuing at its first unfinished block a
   * pruning that a killed run left in `<out>.partial`; a partial pruning made from other inputs is started over.
   */
  const pruneSetting = async (s: PruneSetting, out: string): ReturnType<typeof prune> => {
    try {
      return await pruneOnce(s, out, exp.outputFormat === 'dense'); // compressed outputs cannot resume
    } catch (e) {
      if (!(e instanceof ResumeMismatchError)) throw e;
      note(`${s.id}: its partial pruning was made from other inputs; starting over`);
      rmSync(`${out}.partial`, { recursive: true, force: true });
      return pruneOnce(s, out, false);
    }
  };
  const pruneOnce = (s: PruneSetting, out: string, resume: boolean): ReturnType<typeof prune> =>
    prune({
      model: modelDir,
      out,
      method: s.method,
      sparsity: s.sparsity,
      structure: s.structure,
      useVariant: s.useVariant,
      methodOptions: s.methodOptions,
      ...(s.layerwise ? { layerwise: s.layerwise.name, layerwiseOptions: s.layerwise.options } : {}),
      ...(s.refine ? { refine: s.refine.name, refineOptions: s.refine.options } : {}),
      targets: s.targets,
      ignore: s.ignore,
      calibration: exp.calibration.source,
      nsamples: exp.calibration.nsamples,
      seqlen: calibSeqlen,
      seed: exp.calibration.seed,
      batchSize: exp.calibration.batchSize,
      format: exp.outputFormat,
      overwrite: true,
      resume,
      resumeHint: 'the same command continues it',
      onNote: (line) => (line.startsWith('resuming') ? note(`${s.id}: ${line}`) : undefined),
      onProgress: (p) => progress(p.pass === 'owl' ? `${s.id}: OWL outlier pass` : `${s.id}: prune`, p.layer + 1, p.layers, p.tokensPerSecond > 0 ? `${p.tokensPerSecond.toFixed(0)} tok/s` : undefined),
    });

  /**
   * Fine-tune the pruned checkpoint `ckptDir` into `ftDir` (continuing an interrupted fine-tune there when
   * `resume`), then evaluate the result: the merged checkpoint, or the adapters unmerged for merge 'none'.
   */
  const finetuneSetting = async (
    id: string,
    ckptDir: string,
    ftDir: string,
    resume: boolean,
    tag: string,
  ): Promise<{ block: FinetuneResult; timings: Record<string, number> }> => {
    const f = ft!;
    const label = finetuneLabel(id);
    const r = await finetune({
      optionName: keyPath('finetune', { out: `the fine-tune folder of ${id}` }),
      model: ckptDir,
      data: f.data,
      out: ftDir,
      rank: f.rank,
      alpha: f.alpha,
      dropout: f.dropout,
      targets: [...f.targets],
      lr: f.lr,
      schedule: f.schedule,
      warmupSteps: f.warmupSteps,
      seqlen: f.seqlen,
      batchSize: f.batchSize,
      gradAccum: f.gradAccum,
      maxSteps: f.maxSteps,
      seed: f.seed,
      checkpointEvery: f.checkpointEvery,
      resume,
      overwrite: true,
      merge: f.merge,
      ...(f.merge === 'masked' ? { mergeFormat: exp.outputFormat } : {}), // output.format; dense and none merges stay dense
      onProgress: (p) => {
        if (p.phase === 'train') {
          progress(`${id}: finetune`, p.step, p.maxSteps, `loss ${p.loss.toFixed(4)}, ${p.tokensPerSecond.toFixed(0)} tok/s`);
        } else if (p.phase === 'data') {
          note(`${tag}: fine-tuning on ${p.windows} windows from ${p.documents - p.excludedDocuments} documents (${p.excludedDocuments} calibration documents left out)`);
        }
      },
    });
    if (r.training.resumedFrom !== null) note(`${tag}: the fine-tune continued from its checkpoint at step ${r.training.resumedFrom}`);
    let actualSparsity: number | null = null;
    let ev: Awaited<ReturnType<typeof evaluateFolder>>;
    if (r.merge) {
      if (r.merge.mode === 'masked' && (!r.merge.sameZeroCounts || r.merge.zerosLost !== 0)) {
        throw new CheckpointError(
          `${id}: the masked merge in ${r.merge.dir} changed the zeros of the pruned checkpoint (${r.merge.zerosLost} zeros filled in); ` +
            'a masked merge must keep every zero',
        );
      }
      actualSparsity = r.merge.sparsityAfter;
      note(`${tag}: fine-tuned ${r.training.steps} steps in ${r.training.totalSeconds.toFixed(1)}s, merged (${r.merge.mode}, ${(100 * actualSparsity).toFixed(2)}% zeros); evaluating`);
      ev = await evaluateFolder(label, r.merge.dir, false);
    } else {
      note(`${tag}: fine-tuned ${r.training.steps} steps in ${r.training.totalSeconds.toFixed(1)}s; evaluating with the adapters unmerged`);
      ev = await evaluateFolder(label, ckptDir, false, ftDir);
    }
    const timings: Record<string, number> = { finetune: r.seconds };
    for (const [k, v] of Object.entries(ev.timings)) timings[`finetune_${k}`] = v;
    return {
      block: {
        merge: f.merge,
        steps: r.training.steps,
        seconds: r.training.totalSeconds,
        firstLoss: r.training.firstLoss,
        finalLoss: r.training.lastLoss,
        actualSparsity,
        ...ev.fields,
      },
      timings,
    };
  };

  const planned: PlannedSetting[] = [];
  if (!dry) mkdirSync(exp.output, { recursive: true });
  const shard = options.shard;
  const lock = dry ? null : acquireLock(exp.output, shard);
  try {
    const settings = expandSettings(exp);
    const grid: (PruneSetting | null)[] = [...(exp.dense ? [null] : []), ...settings];
    const idOf = (s: PruneSetting | null): string => (s ? s.id : DENSE_ID);
    const plan = shard ? grid.filter((s) => shardOf(idOf(s), shard.count) === shard.index) : grid;
    const mine = new Set(plan.map(idOf));
    const ownedBy = (name: string): boolean => mine.has(name) || [...mine].some((id) => name.startsWith(`${id}.`));
    const removed = dry ? [] : removeLeftovers(exp.output, shard ? ownedBy : undefined);
    if (removed.length) note(`removed leftovers of an interrupted run: ${removed.join(', ')}`);
    if (!dry) mkdirSync(join(exp.output, SETTINGS_DIR), { recursive: true });
    if (shard) note(`shard ${shard.index}/${shard.count}: ${plan.length} of the ${grid.length} settings (${[...mine].join(', ') || 'none'})`);
    const results: SettingResult[] = [];
    const computed: string[] = [];
    const reused: string[] = [];
    const finetuned: string[] = [];

    for (const [index, s] of plan.entries()) {
      const id = s ? s.id : DENSE_ID;
      const tag = `[${index + 1}/${plan.length}] ${id}`;
      const inputs = inputsOf(s);
      const print = fingerprint(inputs);
      const file = join(exp.output, SETTINGS_DIR, `${id}.json`);
      const ckptDir = join(exp.output, CHECKPOINTS_DIR, id);
      const ftDir = join(exp.output, FINETUNE_DIR, id);
      const ftInputs = s ? finetuneInputs : null; // the dense model is not fine-tuned
      const ftPrint = ftInputs ? fingerprint({ setting: print, finetune: ftInputs }) : null;
      /** Remove the setting's folders that the experiment does not keep; a line per folder removed. */
      const cleanUp = (): string[] => {
        if (!s) return [];
        const lines: string[] = [];
        if (!exp.keepCheckpoints && removeCheckpoint(exp.output, id)) lines.push(`${tag}: removed its checkpoint (keepCheckpoints is false)`);
        if ((!exp.keepCheckpoints || ftPrint === null) && removeFinetune(exp.output, id)) {
          lines.push(`${tag}: removed its fine-tune folder (${ftPrint === null ? 'the experiment has no finetune section' : 'keepCheckpoints is false'})`);
        }
        return lines;
      };

      // The pruned model's result, finished earlier?
      let stored: StoredSetting | null = null;
      if (existsSync(file)) {
        const got = readStored(file, id);
        if ('stored' in got && got.stored.fingerprint === print) {
          if (s && exp.keepCheckpoints && !existsSync(ckptDir)) {
            note(`${tag}: redoing: finished earlier but its kept checkpoint ${ckptDir} is missing`);
          } else {
            stored = got.stored;
          }
        } else if ('stored' in got) {
          const keys = changedKeys(got.stored.inputs, inputs);
          const shown = keys.slice(0, 4).join(', ') + (keys.length > 4 ? `, ... (${keys.length} in all)` : '');
          note(`${tag}: redoing: the stored result was made from different inputs (changed: ${shown})`);
        } else {
          note(`${tag}: redoing: ${join(SETTINGS_DIR, `${id}.json`)} ${got.problem}`);
        }
        if (!stored && !dry) rmSync(file, { force: true });
      }

      // ... and its fine-tune?
      let finetuneWhy: string | null = null; // why the fine-tune is (re)done; null: nothing to do
      let resumeFinetune = false;
      if (stored && ftPrint !== null) {
        const was = stored.finetune;
        if (was === undefined) finetuneWhy = 'it was not fine-tuned';
        else if (was.fingerprint !== ftPrint) {
          const keys = changedKeys({ finetune: was.inputs }, { finetune: ftInputs });
          finetuneWhy = `its fine-tune was made from different inputs (changed: ${keys.slice(0, 4).join(', ')}${keys.length > 4 ? ', ...' : ''})`;
        } else if (stored.result.finetune === undefined) {
          finetuneWhy = 'its fine-tune was interrupted';
          resumeFinetune = existsSync(ckptDir);
        } else if (exp.keepCheckpoints && !existsSync(ftDir)) finetuneWhy = `its kept fine-tune folder ${ftDir} is missing`;
      }

      if (dry) {
        planned.push({ id, setting: s, action: !stored ? 'compute' : ftPrint === null || finetuneWhy === null ? 'reuse' : 'finetune' });
        continue;
      }
      if (stored && (ftPrint === null || finetuneWhy === null)) {
        // Nothing to compute. A fine-tune result of an experiment that no longer fine-tunes is dropped.
        let result = stored.result;
        if (ftPrint === null && (result.finetune !== undefined || stored.finetune !== undefined)) {
          result = withoutFinetune(result);
          const { finetune: _dropped, ...rest } = stored;
          writeJsonAtomic(file, { ...rest, result });
          note(`${tag}: dropped its fine-tune result (the experiment has no finetune section)`);
        }
        for (const line of cleanUp()) note(line);
        note(`${tag}: reused (finished earlier: ${join(SETTINGS_DIR, `${id}.json`)})`);
        results.push(result);
        reused.push(id);
        continue;
      }

      let base: StoredSetting;
      if (stored) {
        base = stored;
        reused.push(id);
        note(`${tag}: reusing the pruned model's result; fine-tuning again: ${finetuneWhy}`);
      } else {
        // Never trust folders of an unfinished setting: they may be from other inputs.
        if (s) {
          removeCheckpoint(exp.output, id);
          removeFinetune(exp.output, id);
        }
        let result: SettingResult;
        let calibrationHash: string | null = null;
        if (s === null) {
          note(`${tag}: evaluating the dense model`);
          const ev = await evaluateFolder(id, modelDir, true);
          result = {
            id,
            method: 'dense',
            structure: null,
            sparsity: 0,
            useVariant: false,
            actualSparsity: ev.sparsity ?? 0,
            ...ev.fields,
            blockSparsity: [],
            timings: ev.timings,
          };
        } else {
          note(`${tag}: pruning`);
          const report = await pruneSetting(s, ckptDir);
          calibrationHash = report.calibration?.hash ?? null;
          note(`${tag}: pruned to ${(100 * report.sparsity.overall).toFixed(2)}% zeros in ${report.times.total.toFixed(1)}s; evaluating`);
          const ev = await evaluateFolder(id, ckptDir, false);
          result = {
            id,
            method: s.method,
            structure: structureLabel(s.structure),
            sparsity: s.sparsity,
            useVariant: s.useVariant,
            ...(planTag(s) !== '' && planTag(s) !== '-variant' ? { plan: planTag(s).replace(/^[-+]/, '') } : {}),
            actualSparsity: report.sparsity.overall,
            ...ev.fields,
            blockSparsity: report.sparsity.blocks.map((b) => b.sparsity),
            ...(s.layerwise ? { blockAllocated: report.sparsity.blocks.map((b) => b.allocated) } : {}),
            timings: { prune: report.times.total, ...ev.timings },
          };
        }
        base = { format: FORMAT, id, fingerprint: print, inputs, result, calibrationHash };
        computed.push(id);
      }

      let result = base.result;
      if (s && ftInputs && ftPrint !== null) {
        // The pruned checkpoint: still there (this run's, kept, or left by an interrupted fine-tune), else pruned
        // again from the same inputs (checked to give the same model).
        if (!existsSync(ckptDir)) {
          note(`${tag}: pruning again for the fine-tune (its checkpoint was not kept)`);
          const report = await pruneSetting(s, ckptDir);
          const hash = report.calibration?.hash ?? null;
          if (hash !== base.calibrationHash || report.sparsity.overall !== base.result.actualSparsity) {
            note(`${tag}: the new pruning differs from the stored one (calibration or zeros); evaluating it again`);
            const ev = await evaluateFolder(id, ckptDir, false);
            base = {
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
            if (!computed.includes(id)) computed.push(id);
            const at = reused.indexOf(id);
            if (at >= 0) reused.splice(at, 1);
          }
          resumeFinetune = false;
        }
        // Saved before fine-tuning: a run killed from here on keeps the pruned model's numbers and continues the
        // fine-tune (same inputs) from its last trainer checkpoint.
        const pending: StoredSetting = { ...base, result: withoutFinetune(base.result), finetune: { fingerprint: ftPrint, inputs: ftInputs } };
        writeJsonAtomic(file, pending);
        if (!resumeFinetune) removeFinetune(exp.output, id);
        note(`${tag}: fine-tuning (LoRA rank ${ft!.rank} on ${ft!.targets.join(', ')}, ${ft!.maxSteps} steps)${resumeFinetune ? ', continuing the interrupted fine-tune' : ''}`);
        const tuned = await finetuneSetting(id, ckptDir, ftDir, resumeFinetune, tag);
        result = { ...pending.result, timings: { ...pending.result.timings, ...tuned.timings }, finetune: tuned.block };
        writeJsonAtomic(file, { ...pending, result });
        finetuned.push(id);
      } else {
        writeJsonAtomic(file, base);
      }
      cleanUp();
      const took = Object.values(result.timings).reduce((a, b) => a + b, 0);
      note(`${tag}: done in ${took.toFixed(1)}s, saved ${join(SETTINGS_DIR, `${id}.json`)}`);
      results.push(result);
    }

    if (dry) return planned;
    const report: ResultsInput = {
      version: 1,
      title: exp.name,
      meanMetric: exp.eval.meanMetric,
      meta: meta(exp, backend.name, calibSeqlen, evalSeqlen, dataDir, ft),
      results,
    };
    const manifest: ExperimentFile = { version: 1, title: exp.name, meanMetric: exp.eval.meanMetric, meta: report.meta ?? {}, settings: grid.map(idOf) };
    writeJsonAtomic(join(exp.output, EXPERIMENT_FILE), manifest);
    if (shard) {
      note(`shard ${shard.index}/${shard.count} done; merge the shards with: llm-prune report ${exp.output} [more folders] --out DIR`);
      const results = validateResults(report, join(exp.output, 'results.json'));
      return { output: exp.output, results, files: [join(exp.output, EXPERIMENT_FILE)], computed, reused, finetuned, seconds: (performance.now() - t0) / 1000 };
    }
    const files = await writeReport(exp.output, report);
    const written = JSON.parse(readFileSync(join(exp.output, 'results.json'), 'utf8')) as ResultsFile;
    note(`wrote ${join(exp.output, 'results.md')} (${files.length} files)`);
    return { output: exp.output, results: written, files, computed, reused, finetuned, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (lock !== null) releaseLock(lock);
  }
}

/** The report's header lines: what was run, without anything that changes from run to run. */
function meta(exp: Experiment, backend: string, calibSeqlen: number, evalSeqlen: number, dataDir: string, ft: ResolvedFinetune | null): Record<string, string> {
  const c = exp.calibration;
  const e = exp.eval;
  const out: Record<string, string> = {
    model: exp.model,
    backend,
    calibration: `${c.nsamples} windows of ${calibSeqlen} tokens from ${c.source}, seed ${c.seed}`,
  };
  if (e.ppl.length) {
    out['perplexity'] = `${e.ppl.join(', ')}: windows of ${evalSeqlen} tokens, ${e.maxWindows === undefined ? 'all windows' : `first ${e.maxWindows} windows`}`;
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
  out['data'] = dataDir;
  return out;
}
