/**
 * The first step of an experiment run (lib/experiment/run.ts): choose the backend, check every input before any
 * work (the model and its context, the data files, the fine-tuning data), and gather what the later steps read:
 * window lengths, the evaluation config, the inputs every setting's fingerprint shares.
 */
import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, DataError, keyPath } from '../errors.js';
import { perplexitySetFile, defaultDataDir } from '../eval/datasets.js';
import type { EvaluateConfig, EvaluationIdsCache } from '../eval/evaluate.js';
import { TASKS } from '../eval/tasks.js';
import { initBackend } from '../model/backend.js';
import { Checkpoint } from '../model/checkpoint.js';
import { resolveModelPath } from '../model/hub.js';
import { finetuneInputs, modelFiles, stamp, type FinetuneInputs, type SharedInputs } from './fingerprint.js';
import { FINETUNE_DEFAULTS } from '../finetune/defaults.js';
import type { Experiment, FinetuneConfig } from './schema.js';
import type { Shard } from './shard.js';

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
  /** Hub token for a gated hub `model:` (the CLI: --hf-token, else $HF_TOKEN). */
  hubToken?: string | undefined;
  /** Disk cache of tokenized evaluation sets (default tokenCacheDir(): no environment read; the CLI passes its env's). */
  tokenCacheDir?: string | undefined;
  /** Take over the output folder's lock even when its holder looks alive (lib/output-lock.ts). */
  forceUnlock?: boolean;
}

/** The finetune section with every default filled in and the window length resolved. */
export type ResolvedFinetune = { [K in keyof FinetuneConfig]-?: NonNullable<FinetuneConfig[K]> };

/**
 * The finetune section as the fingerprint and the report header read it: the stage's defaults
 * (FINETUNE_DEFAULTS of lib/finetune/defaults.ts, the same as the CLI's) under the keys the file leaves out,
 * and the window length (default: the model's context). The fine-tune itself is passed what the file says and
 * fills in the same defaults (lib/experiment/stages.ts).
 */
export function resolveFinetune(f: FinetuneConfig, maxPositions: number): ResolvedFinetune {
  const { data, maxSteps, targets } = f; // the keys without a default
  return { ...FINETUNE_DEFAULTS, ...definedOnly(f), data, maxSteps, targets: [...targets], seqlen: f.seqlen ?? maxPositions };
}

/** `o` without its undefined members: an optional key left out stays out, so a default spread under it shows. */
export function definedOnly<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** Progress of long work: what, done of total units, an extra text (tokens/s, loss). */
export type ProgressFn = (label: string, done: number, total: number, extra?: string) => void;

/** What the steps of a run read: the experiment, its checked inputs, the callbacks. */
export interface RunContext {
  exp: Experiment;
  note: (line: string) => void;
  progress: ProgressFn;
  backend: string; // the tfjs backend in use
  modelDir: string;
  calibSeqlen: number;
  evalSeqlen: number;
  dataDir: string;
  ft: ResolvedFinetune | null; // null: no finetune section
  evalConfig: EvaluateConfig; // everything but the progress callback and the adapters
  shared: SharedInputs; // what every setting's fingerprint covers
  ftInputs: FinetuneInputs | null; // what every fine-tune's fingerprint covers
}

/** Real path when the file exists (for "is this the same file" checks). */
function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** The model's context length (max_position_embeddings). */
function modelContext(modelDir: string): number {
  const ckpt = Checkpoint.open(modelDir);
  try {
    return ckpt.config.maxPositions;
  } finally {
    ckpt.close();
  }
}

/** The evaluation's data files, each checked to exist. */
async function evaluationFiles(exp: Experiment, dataDir: string): Promise<{ ppl: { set: string; file: string }[]; tasks: { task: string; file: string }[] }> {
  const ppl: { set: string; file: string }[] = [];
  for (const set of exp.eval.ppl) ppl.push({ set, file: await perplexitySetFile(set, dataDir) });
  const tasks = exp.eval.tasks.map((task) => {
    const spec = TASKS[task];
    const file = spec ? join(dataDir, spec.defaultFile) : task;
    if (!existsSync(file)) throw new DataError(`eval.tasks: the file of task '${task}' does not exist: ${file} (eval.dataDir is ${dataDir})`);
    return { task, file };
  });
  return { ppl, tasks };
}

/**
 * Choose the backend and check the inputs: seqlens within the model context (ConfigError), data files present
 * (DataError), fine-tuning data that is not an evaluation file (ConfigError).
 */
export async function prepareRun(exp: Experiment, options: RunOptions): Promise<RunContext> {
  const note = (line: string): void => options.onNote?.(line);
  const progress: ProgressFn = (label, done, total, extra) => options.onProgress?.(label, done, total, extra);
  const backend = await initBackend(exp.backend, exp.threads !== undefined ? { threads: exp.threads } : {});
  note(backend.note);

  const modelDir = await resolveModelPath(exp.model, { token: options.hubToken });
  const maxPositions = modelContext(modelDir);
  const calibSeqlen = exp.calibration.seqlen ?? maxPositions;
  const evalSeqlen = exp.eval.seqlen ?? maxPositions;
  const ft = exp.finetune ? resolveFinetune(exp.finetune, maxPositions) : null;
  const seqlens: [string, number][] = [['calibration.seqlen', calibSeqlen], ['eval.seqlen', evalSeqlen], ...(ft ? [['finetune.seqlen', ft.seqlen] as [string, number]] : [])];
  for (const [key, v] of seqlens) {
    if (v > maxPositions) throw new ConfigError(`${key}: ${v} exceeds the model context (max_position_embeddings = ${maxPositions} in ${modelDir})`);
  }
  const dataDir = exp.eval.dataDir ?? options.dataDir ?? defaultDataDir();
  const files = await evaluationFiles(exp, dataDir);
  const same = ft ? files.ppl.find((p) => realPath(p.file) === realPath(ft.data)) : undefined;
  if (ft && same) {
    throw new ConfigError(
      `finetune.data: ${ft.data} is also the ${same.set} evaluation file; training on the evaluation text would make its perplexity meaningless`,
    );
  }

  const shared: SharedInputs = {
    model: { ref: exp.model, files: modelFiles(modelDir) },
    backend: backend.name,
    calibration: { source: stamp(exp.calibration.source), nsamples: exp.calibration.nsamples, seqlen: calibSeqlen, seed: exp.calibration.seed },
    eval: {
      ppl: files.ppl.map((p) => ({ set: p.set, file: stamp(p.file) })),
      seqlen: evalSeqlen,
      maxWindows: exp.eval.maxWindows ?? null,
      tasks: files.tasks.map((t) => ({ task: t.task, file: stamp(t.file) })),
      limit: exp.eval.limit ?? null,
      addBos: exp.eval.addBos,
      meanMetric: exp.eval.meanMetric,
    },
  };
  const evalConfig: EvaluateConfig = {
    ppl: exp.eval.ppl,
    pplFiles: Object.fromEntries(files.ppl.map((p) => [p.set, p.file])),
    seqlen: evalSeqlen,
    tasks: exp.eval.tasks,
    dataDir,
    addBos: exp.eval.addBos,
    meanMetric: exp.eval.meanMetric,
    optionName: keyPath('eval'),
    ...(options.idsCache ? { idsCache: options.idsCache } : {}),
    tokenCacheDir: options.tokenCacheDir,
    ...(exp.eval.maxWindows !== undefined ? { maxWindows: exp.eval.maxWindows } : {}),
    ...(exp.eval.limit !== undefined ? { limit: exp.eval.limit } : {}),
  };
  const ftInputs = ft ? finetuneInputs(ft) : null;
  return { exp, note, progress, backend: backend.name, modelDir, calibSeqlen, evalSeqlen, dataDir, ft, evalConfig, shared, ftInputs };
}
