/**
 * The options of `finetune()` and the one function that fills in their defaults (FINETUNE_DEFAULTS) and checks them.
 * A caller with a partial set of values (the CLI, an experiment file's `finetune` section) passes them as they are:
 * every optional key may be absent or `undefined`.
 */
import { ConfigError, optionKey, type OptionName } from '../errors.js';
import type { LinearName } from '../model/architecture.js';
import type { CheckpointFormat } from '../model/compressed-tensors.js';
import type { DType } from '../model/safetensors.js';
import { PERPLEXITY_SETS, type PerplexitySet } from '../eval/perplexity.js';
import { FINETUNE_DEFAULTS } from './defaults.js';
import { validateLoraConfig, type LoraConfig } from './lora.js';
import type { TrainerOptions } from './trainer.js';
import { canonical } from './data.js';
import type { FinetuneProgress } from './report.js';

/** Held-out evaluation during and after training. */
export interface FinetuneEvalOptions {
  file: string; // evaluation text (e.g. WikiText-2 test); must not be the training file
  set?: PerplexitySet | undefined; // how it is built (default 'wikitext2': rows joined with "\n\n")
  seqlen?: number | undefined; // window length (default: the training seqlen)
  maxWindows?: number | undefined; // windows scored before and after training (default: all, as the reference)
  every?: number | undefined; // also score `periodicWindows` windows every this many steps (default 0: never)
  periodicWindows?: number | undefined; // default 4
  merged?: boolean | undefined; // also score the merged checkpoint (default true when merging)
}

export interface FinetuneOptions {
  model: string; // the (pruned) checkpoint folder or hub id
  data: string; // training file: JSONL/JSON/Parquet rows (documents) or plain text, optionally .gz
  out: string; // output folder
  dataField?: string | undefined; // text field of rows (default "text")
  rank?: number | undefined; // default 8
  alpha?: number | undefined; // default 16
  dropout?: number | undefined; // default 0.05
  targets?: readonly LinearName[] | undefined; // default q_proj, v_proj
  lr?: number | undefined; // peak learning rate, default 1e-4
  schedule?: 'constant' | 'linear' | 'cosine' | undefined; // default 'linear' (transformers' Trainer default)
  warmupSteps?: number | undefined; // default 0
  totalSteps?: number | undefined; // schedule length (default maxSteps); fixed across resumed runs
  weightDecay?: number | undefined; // AdamW decoupled weight decay, default 0
  beta1?: number | undefined;
  beta2?: number | undefined;
  eps?: number | undefined;
  maxGradNorm?: number | undefined; // default 1.0; 0 disables clipping
  seqlen?: number | undefined; // tokens per window, default the model context
  batchSize?: number | undefined; // windows per micro-batch, default 1
  gradAccum?: number | undefined; // micro-batches per optimizer step, default 1
  maxSteps: number; // optimizer steps to reach (counting steps of resumed runs)
  timeBudget?: number | undefined; // stop (with a checkpoint) once training in this call has run this many seconds
  seed?: number | undefined; // data sampler, adapter init and dropout (default 0)
  checkpointEvery?: number | undefined; // steps between checkpoints (default 50; one is always written at the end)
  resume?: boolean | undefined; // continue from out/checkpoint when there is one (wins over overwrite; default true)
  overwrite?: boolean | undefined; // otherwise start over in an existing, non-empty out folder (deleting its contents)
  forceUnlock?: boolean | undefined; // take over `<out>.lock` even when its holder looks alive (lib/output-lock.ts)
  calibrationReport?: string | undefined; // report.json of the pruning run (default <model>/report.json)
  eval?: FinetuneEvalOptions | undefined;
  merge?: 'none' | 'masked' | 'dense' | undefined; // also write out/merged (default masked)
  mergeDtype?: 'F32' | 'F16' | 'BF16' | undefined; // default the base's dtype
  mergeFormat?: CheckpointFormat | undefined; // dense (default) or compressed (compressed-tensors; merge masked only)
  optionName?: OptionName | undefined; // how messages name options (default the library's names; the CLI passes its flags, experiments key paths)
  hubToken?: string | undefined; // for a gated hub model (the CLI: --hf-token, else $HF_TOKEN)
  tokenCacheDir?: string | undefined; // disk cache of the tokenized eval file (default tokenCacheDir(): no environment read)
  onProgress?: ((p: FinetuneProgress) => void) | undefined;
}

/** The evaluation options with their defaults; `seqlen` null means the training seqlen. */
export interface ResolvedEvalOptions {
  file: string;
  set: PerplexitySet;
  seqlen: number | null;
  maxWindows: number | null; // null: all windows
  every: number; // 0: no periodic evaluation
  periodicWindows: number;
  merged: boolean;
}

/**
 * Every option of a fine-tuning run with its default filled in and checked, except what depends on the model:
 * `seqlen` null means the model context (checked against it by `windowLengths` once the model is loaded).
 */
export interface ResolvedFinetuneOptions {
  model: string;
  data: string;
  out: string;
  dataField: string;
  lora: LoraConfig; // rank, alpha, dropout, targets (targets in LINEAR_NAMES order)
  trainer: TrainerOptions; // lr, schedule, warmupSteps, totalSteps, weightDecay, beta1, beta2, eps, maxGradNorm
  seqlen: number | null;
  batchSize: number;
  gradAccum: number;
  maxSteps: number;
  timeBudget: number | null;
  seed: number;
  checkpointEvery: number;
  resume: boolean;
  overwrite: boolean;
  calibrationReport: string | null; // null: <model folder>/report.json
  eval: ResolvedEvalOptions | null;
  merge: 'none' | 'masked' | 'dense';
  mergeDtype: DType | null; // null: the base's dtype
  mergeFormat: CheckpointFormat;
  optionName: OptionName;
  hubToken: string | null; // null: none
  tokenCacheDir: string | null; // null: tokenCacheDir()'s default
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
}

function checkNonNegativeInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new ConfigError(`${name} must be a non-negative integer, got ${v}`);
}

function checkNumber(name: string, v: number, lo: number, hi: number, loOpen = false): void {
  if (!Number.isFinite(v) || v < lo || (loOpen && v === lo) || v > hi) {
    throw new ConfigError(`${name} must be in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${v}`);
  }
}

function oneOf<T extends string>(name: string, v: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(v)) throw new ConfigError(`${name}: '${String(v)}' is not ${what}`);
  return v;
}

/** The optimizer and schedule options, defaults filled in, checked. */
function resolveTrainerOptions(o: FinetuneOptions, name: OptionName): TrainerOptions {
  const D = FINETUNE_DEFAULTS;
  const t: TrainerOptions = {
    lr: o.lr ?? D.lr,
    schedule: oneOf(name('schedule'), o.schedule ?? D.schedule, ['constant', 'linear', 'cosine'], 'one of constant, linear, cosine'),
    warmupSteps: o.warmupSteps ?? D.warmupSteps,
    totalSteps: o.totalSteps ?? o.maxSteps,
    weightDecay: o.weightDecay ?? D.weightDecay,
    beta1: o.beta1 ?? D.beta1,
    beta2: o.beta2 ?? D.beta2,
    eps: o.eps ?? D.eps,
    maxGradNorm: o.maxGradNorm ?? D.maxGradNorm,
  };
  checkNumber(name('lr'), t.lr, 0, 1, true);
  checkNonNegativeInt(name('warmupSteps'), t.warmupSteps);
  checkPositiveInt(name('totalSteps'), t.totalSteps);
  checkNumber(name('weightDecay'), t.weightDecay, 0, 1);
  checkNumber(name('beta1'), t.beta1, 0, 1);
  checkNumber(name('beta2'), t.beta2, 0, 1);
  checkNumber(name('eps'), t.eps, 0, 1, true);
  checkNumber(name('maxGradNorm'), t.maxGradNorm, 0, Infinity);
  if (t.beta1 === 1 || t.beta2 === 1) throw new ConfigError(`${name('beta1')} and ${name('beta2')} must be below 1`);
  return t;
}

/** The held-out evaluation options, defaults filled in, checked (the evaluation file must not be the training file). */
function resolveEvalOptions(ev: FinetuneEvalOptions, data: string, name: OptionName): ResolvedEvalOptions {
  const D = FINETUNE_DEFAULTS.eval;
  const r: ResolvedEvalOptions = {
    file: ev.file,
    set: oneOf(name('evalSet'), ev.set ?? D.set, PERPLEXITY_SETS, `one of ${PERPLEXITY_SETS.join(', ')}`),
    seqlen: ev.seqlen ?? null,
    maxWindows: ev.maxWindows ?? null,
    every: ev.every ?? D.every,
    periodicWindows: ev.periodicWindows ?? D.periodicWindows,
    merged: ev.merged ?? D.merged,
  };
  if (r.maxWindows !== null) checkPositiveInt(name('evalWindows'), r.maxWindows);
  checkNonNegativeInt(name('evalEvery'), r.every);
  checkPositiveInt(name('evalPeriodicWindows'), r.periodicWindows);
  if (canonical(ev.file) === canonical(data)) {
    throw new ConfigError(`${name('data')} ${data} is also the evaluation file: training on the evaluation text would make its perplexity meaningless`);
  }
  return r;
}

/**
 * THE place where fine-tuning options get their defaults (FINETUNE_DEFAULTS) and are checked, before any file is
 * read. Messages name options with `o.optionName` (default: the library's names).
 */
export function resolveFinetuneOptions(o: FinetuneOptions): ResolvedFinetuneOptions {
  const D = FINETUNE_DEFAULTS;
  const name = o.optionName ?? optionKey;
  const lora = validateLoraConfig(
    { rank: o.rank ?? D.rank, alpha: o.alpha ?? D.alpha, dropout: o.dropout ?? D.dropout, targets: [...(o.targets ?? D.targets)] },
    name,
  );
  checkPositiveInt(name('maxSteps'), o.maxSteps);
  const batchSize = o.batchSize ?? D.batchSize;
  const gradAccum = o.gradAccum ?? D.gradAccum;
  checkPositiveInt(name('batchSize'), batchSize);
  checkPositiveInt(name('gradAccum'), gradAccum);
  const seed = o.seed ?? D.seed;
  checkNonNegativeInt(name('seed'), seed);
  const trainer = resolveTrainerOptions(o, name);
  const checkpointEvery = o.checkpointEvery ?? D.checkpointEvery;
  checkPositiveInt(name('checkpointEvery'), checkpointEvery);
  const timeBudget = o.timeBudget ?? null;
  if (timeBudget !== null) checkNumber(name('timeBudget'), timeBudget, 0, Infinity, true);
  const merge = oneOf(name('merge'), o.merge ?? D.merge, ['none', 'masked', 'dense'], 'none, masked or dense');
  const mergeFormat = o.mergeFormat ?? D.mergeFormat;
  if (mergeFormat !== 'dense' && !(mergeFormat === 'compressed' && merge === 'masked')) {
    // experiments set it from output.format, always valid
    throw new ConfigError(
      `${name('mergeFormat')} ${String(mergeFormat)}: only dense, or compressed with ${name('merge')} masked (a dense merge fills the pruned zeros in)`,
    );
  }
  return {
    model: o.model,
    data: o.data,
    out: o.out,
    dataField: o.dataField ?? D.dataField,
    lora,
    trainer,
    seqlen: o.seqlen ?? null,
    batchSize,
    gradAccum,
    maxSteps: o.maxSteps,
    timeBudget,
    seed,
    checkpointEvery,
    resume: o.resume ?? D.resume,
    overwrite: o.overwrite ?? D.overwrite,
    calibrationReport: o.calibrationReport ?? null,
    eval: o.eval ? resolveEvalOptions(o.eval, o.data, name) : null,
    merge,
    mergeDtype: o.mergeDtype ?? null,
    mergeFormat,
    optionName: name,
    hubToken: o.hubToken ?? null,
    tokenCacheDir: o.tokenCacheDir ?? null,
  };
}

/** Training and evaluation window lengths for a model of context `maxPositions` (default: the whole context). */
export function windowLengths(r: ResolvedFinetuneOptions, maxPositions: number): { seqlen: number; evalSeqlen: number } {
  const name = r.optionName;
  const seqlen = r.seqlen ?? maxPositions;
  if (!Number.isInteger(seqlen) || seqlen < 2 || seqlen > maxPositions) {
    throw new ConfigError(`${name('seqlen')} ${seqlen}: must be an integer in 2..${maxPositions} (the model context)`);
  }
  const evalSeqlen = r.eval?.seqlen ?? seqlen;
  if (r.eval && (!Number.isInteger(evalSeqlen) || evalSeqlen < 2 || evalSeqlen > maxPositions)) {
    throw new ConfigError(`${name('evalSeqlen')} ${evalSeqlen}: must be an integer in 2..${maxPositions}`);
  }
  return { seqlen, evalSeqlen };
}
