/**
 * LoRA fine-tuning of a (pruned) checkpoint with the plain next-token objective, as the Wanda reference's
 * lora_ft/finetune_lm.py does with Hugging Face's Trainer (rank 8, alpha 16, dropout 0.05 on q_proj and v_proj,
 * AdamW, learning rate 1e-4, linear decay, gradient clipping at 1.0, no weight decay), in tfjs:
 *
 *   windows of `seqlen` tokens drawn from the training file with the seeded sampler (calibration.ts), skipping the
 *   documents the pruning run calibrated on; per optimizer step `gradAccum` micro-batches of `batchSize` windows;
 *   loss = mean cross-entropy of tokens 1..seqlen-1 (perplexity.ts's per-window loss); gradients of the adapters
 *   only, by tfjs autodiff (tf.variableGrads over the adapter variables); global-norm clipping; AdamW.
 *
 * An output folder holds the final adapters (PEFT layout), report.json, a resumable checkpoint/ (adapters,
 * optimizer moments, step, dropout generator state) rewritten atomically every `checkpointEvery` steps, and an
 * optional merged checkpoint (merged/). A run that is killed or stopped resumes from checkpoint/ with
 * `resume: true` and ends exactly where an uninterrupted run ends (same windows, same dropout masks, same updates).
 *
 * Memory ownership: everything created here is disposed before `finetune` returns or throws.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, DataError, cliFlag, type OptionName } from '../errors.js';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { SafetensorsFile, SafetensorsWriter } from '../model/safetensors.js';
import { StagedFolder, writeJsonAtomic } from '../model/save.js';
import { activeBackend } from '../model/backend.js';
import type { TextTokenizer } from '../model/tokenizer-types.js';
import { sampleWindows, sampleWindowsFromText, windowsHash } from '../data/calibration.js';
import { detectFormat, readTexts } from '../data/sources.js';
import { evaluationIds, perplexityOfIds, type PerplexitySet, PERPLEXITY_SETS } from '../eval/perplexity.js';
import type { LinearName } from '../model/architecture.js';
import { FINETUNE_DEFAULTS } from './defaults.js';
import { LoraAdapters, SeededRandom, frozenMatMul, validateLoraConfig, type LoraConfig } from './lora.js';
import { readAdapterFiles, saveAdapters, writeMergedCheckpoint, type MergeReport } from './peft.js';
import type { CheckpointFormat } from '../model/compressed-tensors.js';

// ---------------------------------------------------------------------------------------------------------------
// gradients

let gradientsReady: Promise<void> | null = null;

/**
 * tfjs-core registers no gradient functions by itself; the @tensorflow/tfjs package registers all of tfjs's
 * (into tfjs-core's global registry). Loaded on first use so that code that never trains does not pay for it.
 */
export function ensureGradients(): Promise<void> {
  gradientsReady ??= import('@tensorflow/tfjs').then(() => undefined);
  return gradientsReady;
}

// ---------------------------------------------------------------------------------------------------------------
// loss

/**
 * Mean next-token cross-entropy over the predicted tokens of ids [b][s] (tokens 1..s-1 of every window; equal to
 * the mean over windows of perplexity.ts's `windowLosses`), as a scalar differentiable in the adapter variables.
 * The final RMSNorm and lm_head are the model's (`LlamaModel.headFlat`), with lm_head as a frozen matMul (fast backward),
 * and the cross-entropy has its analytic gradient (softmax - onehot) / n. The caller owns the scalar.
 */
export function causalLmLoss(model: LlamaModel, ids: number[][], forward: ForwardOptions): tf.Scalar {
  const b = ids.length;
  const s = ids[0]?.length ?? 0;
  if (s < 2) throw new ConfigError(`loss: windows of ${s} tokens predict nothing; need at least 2`);
  const c = model.config;
  const n = b * (s - 1);
  const targets = new Int32Array(n);
  for (let i = 0; i < b; i++) for (let j = 1; j < s; j++) targets[i * (s - 1) + j - 1] = ids[i]![j]!;
  if (!model.lmHeadT) throw new ConfigError('fine-tuning needs a model loaded with its lm_head');
  return tf.tidy(() => {
    const hidden = model.hidden(ids, forward); // [b, s, hidden]
    const x = tf.slice(hidden, [0, 0, 0], [b, s - 1, c.hiddenSize]); // the positions that predict a next token
    const logits = model.headFlat(x, frozenMatMul); // [n, vocab]
    return crossEntropyMean(logits, targets);
  });
}

/** mean_i (logsumexp(logits_i) - logits_i[target_i]) for logits [n, vocab]; gradient (softmax - onehot) / n. */
function crossEntropyMean(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [n, v] = logits.shape;
  const f = tf.customGrad((lg: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const l = lg as tf.Tensor2D;
    (save as tf.GradSaveFunc)([l]); // kept by the tape until the backward pass
    const value = tf.tidy(() => {
      const flat = new Int32Array(n);
      for (let i = 0; i < n; i++) flat[i] = i * v + targets[i]!;
      const picked = tf.gather(tf.reshape(l, [-1]), tf.tensor1d(flat, 'int32')); // [n]
      return tf.mean(tf.sub(tf.logSumExp(l, 1), picked)) as tf.Scalar;
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          // int32 one-hot, then cast: the wasm OneHot kernel writes int bits into a float32 output when asked for one
          const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), v), 'float32');
          return tf.mul(tf.sub(tf.softmax(saved[0]!), onehot), tf.div(dy, n));
        }),
    };
  });
  return f(logits) as tf.Scalar;
}

// ---------------------------------------------------------------------------------------------------------------
// learning-rate schedule and AdamW

/** Learning-rate schedule, as transformers' get_*_schedule_with_warmup (step counted from 0). */
export interface ScheduleOptions {
  lr: number; // peak learning rate
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number; // linear warmup from 0 over these steps
  totalSteps: number; // linear / cosine decay to 0 at this step
}

/** Learning rate of optimizer step `step` (0-based): warmup step/warmup, then constant, linear or cosine decay. */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (step < o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  if (o.schedule === 'constant') return o.lr;
  const progress = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
  if (o.schedule === 'linear') return o.lr * Math.max(0, (o.totalSteps - step) / Math.max(1, o.totalSteps - o.warmupSteps));
  return o.lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export interface AdamWOptions {
  beta1: number; // default 0.9
  beta2: number; // default 0.999
  eps: number; // default 1e-8
  weightDecay: number; // decoupled: p <- p (1 - lr wd) before the Adam step (default 0, as transformers' Trainer)
}

/**
 * AdamW (Loshchilov & Hutter) exactly as torch.optim.AdamW updates one parameter p with gradient g at step t:
 *   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * tfjs has Adam without decoupled decay, so the update is written out here on the adapter variables.
 */
export class AdamW {
  readonly vars: tf.Variable[];
  readonly m: tf.Variable[]; // first moments, shaped as vars
  readonly v: tf.Variable[]; // second moments
  t = 0; // steps taken

  constructor(
    vars: tf.Variable[],
    readonly options: AdamWOptions,
  ) {
    this.vars = vars;
    const zeros = (x: tf.Variable): tf.Variable => tf.tidy(() => tf.variable(tf.zerosLike(x), false));
    this.m = vars.map(zeros);
    this.v = vars.map(zeros);
  }

  /** One update with gradients `grads` (same order as vars; not consumed) and learning rate `lr`. */
  step(grads: tf.Tensor[], lr: number): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = this.options;
    this.t++;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      this.vars.forEach((p, i) => {
        const g = grads[i]!;
        const m = tf.add(tf.mul(this.m[i]!, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[i]!, b2), tf.mul(tf.square(g), 1 - b2));
        const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
      });
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// one training step

export interface TrainerOptions extends ScheduleOptions, AdamWOptions {
  maxGradNorm: number; // clip the global gradient norm to this (0 = no clipping); default 1.0
}

/** What one optimizer step did. */
export interface StepResult {
  step: number; // optimizer steps done, this one included
  loss: number; // mean loss over the step's micro-batches (before the update)
  gradNorm: number; // global gradient norm before clipping
  lr: number; // learning rate used
}

/**
 * Trains LoRA adapters on a resident model: gradients by tf.variableGrads over the adapter variables, summed over
 * micro-batches and averaged, clipped to a global norm, applied by AdamW. Dropout masks come from `rng`.
 */
export class LoraTrainer {
  readonly optimizer: AdamW;
  readonly rng: SeededRandom;
  step = 0; // optimizer steps done

  constructor(
    readonly model: LlamaModel,
    readonly adapters: LoraAdapters,
    readonly options: TrainerOptions,
    dropoutSeed: number,
  ) {
    this.optimizer = new AdamW(adapters.variables(), options);
    this.rng = SeededRandom.derive(dropoutSeed, 2);
  }

  /** One optimizer step over `microBatches` (each ids [batch][seqlen]). Leaves no tensors behind. */
  trainStep(microBatches: number[][][]): StepResult {
    if (microBatches.length === 0) throw new ConfigError('trainStep: no micro-batches');
    const vars = this.optimizer.vars;
    const forward = this.adapters.trainingForward(this.rng);
    let acc: tf.Tensor[] | null = null;
    let lossSum = 0;
    for (const mb of microBatches) {
      const { value, grads } = tf.variableGrads(() => causalLmLoss(this.model, mb, forward), vars);
      lossSum += value.dataSync()[0]!;
      value.dispose();
      const g = vars.map((v) => grads[v.name]!);
      if (acc === null) acc = g;
      else {
        const prev: tf.Tensor[] = acc;
        acc = prev.map((a, i) => tf.add(a, g[i]!));
        tf.dispose(prev);
        tf.dispose(g);
      }
    }
    const lr = learningRate(this.step, this.options);
    let gradNorm = 0;
    const grads = acc!;
    try {
      const k = microBatches.length;
      const scaled = tf.tidy(() => grads.map((g) => (k === 1 ? tf.clone(g) : tf.div(g, k))));
      tf.dispose(grads);
      grads.splice(0, grads.length, ...scaled);
      const sumSq = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
      gradNorm = Math.sqrt(sumSq.dataSync()[0]!);
      sumSq.dispose();
      if (this.options.maxGradNorm > 0) {
        // torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6))
        const coef = Math.min(1, this.options.maxGradNorm / (gradNorm + 1e-6));
        if (coef < 1) {
          const clipped = tf.tidy(() => grads.map((g) => tf.mul(g, coef)));
          tf.dispose(grads);
          grads.splice(0, grads.length, ...clipped);
        }
      }
      this.optimizer.step(grads, lr);
    } finally {
      tf.dispose(grads);
    }
    this.step++;
    return { step: this.step, loss: lossSum / microBatches.length, gradNorm, lr };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// training data

/** The pruning run's calibration windows, from its report.json. */
interface CalibrationInfo {
  report: string;
  file: string;
  windows: [number, number][];
}

function readCalibrationInfo(reportFile: string): CalibrationInfo | null {
  if (!existsSync(reportFile)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(reportFile, 'utf8'));
  } catch (e) {
    throw new DataError(`${reportFile}: cannot read as JSON (${(e as Error).message})`);
  }
  const cal = (raw as { calibration?: unknown } | null)?.calibration;
  if (cal === undefined || cal === null) return null;
  const c = cal as { file?: unknown; windows?: unknown };
  if (typeof c.file !== 'string' || !Array.isArray(c.windows)) {
    throw new DataError(`${reportFile}: field 'calibration' must have 'file' (string) and 'windows' ([doc, offset] pairs)`);
  }
  for (const w of c.windows) {
    if (!Array.isArray(w) || w.length !== 2 || !w.every((x) => Number.isInteger(x) && x >= 0)) {
      throw new DataError(`${reportFile}: calibration.windows entry ${JSON.stringify(w)} is not a [doc, offset] pair`);
    }
  }
  return { report: reportFile, file: c.file, windows: c.windows as [number, number][] };
}

/** Real path when the file exists, else the resolved path (for "is this the same file" checks). */
function canonical(path: string): string {
  const p = resolve(path);
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The training windows and where they came from. */
export interface TrainingData {
  file: string;
  mode: 'documents' | 'joined';
  documents: number; // rows in the file
  excludedDocuments: number; // calibration documents skipped
  windows: { doc: number; offset: number; ids: number[] }[]; // doc = row index in the file
  hash: string;
}

export interface TrainingDataOptions {
  file: string;
  tokenizer: TextTokenizer;
  seqlen: number;
  count: number; // windows to draw
  seed: number;
  field?: string;
  excludeDocuments?: ReadonlySet<number>; // row indices never drawn (the calibration documents)
  optionName?: OptionName; // how messages name the file option (default `--data`)
}

/**
 * Training windows with the reference's seeded sampler: rows of JSONL/JSON/Parquet files are documents drawn as
 * C4's (excluded rows removed first, indices mapped back to the file's); a plain-text file is one text cut at
 * random offsets. The first k windows of a draw of n > k are the windows of a draw of k (a resumed run that
 * trains longer sees the same data first).
 */
export async function trainingWindows(o: TrainingDataOptions): Promise<TrainingData> {
  const dataName = (o.optionName ?? cliFlag)('data');
  const format = detectFormat(o.file).format;
  const texts = await readTexts(o.file, { format, ...(o.field !== undefined ? { field: o.field } : {}) });
  if (format === 'text') {
    if (o.excludeDocuments && o.excludeDocuments.size > 0) {
      throw new ConfigError(
        `${dataName} ${o.file}: the pruning run calibrated on windows of this same text; training windows cut from it ` +
          'could overlap them. Use another file',
      );
    }
    const set = sampleWindowsFromText(texts.join(' '), o.tokenizer, o.count, o.seqlen, o.seed);
    return { file: o.file, mode: 'joined', documents: 1, excludedDocuments: 0, windows: set.windows, hash: set.hash };
  }
  const keep: number[] = [];
  texts.forEach((_, i) => {
    if (!o.excludeDocuments?.has(i)) keep.push(i);
  });
  if (keep.length === 0) {
    throw new DataError(`${dataName} ${o.file}: all ${texts.length} documents were used for calibration; nothing is left to train on`);
  }
  let set;
  try {
    set = sampleWindows({ documents: keep.map((i) => texts[i]!), tokenizer: o.tokenizer, nsamples: o.count, seqlen: o.seqlen, seed: o.seed });
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${dataName} ${o.file}: ${e.message}`);
    throw e;
  }
  const windows = set.windows.map((w) => ({ ...w, doc: keep[w.doc]! }));
  return {
    file: o.file,
    mode: 'documents',
    documents: texts.length,
    excludedDocuments: texts.length - keep.length,
    windows,
    hash: windowsHash(windows),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// finetune(): options, report, checkpoints

/** Held-out evaluation during and after training. */
export interface FinetuneEvalOptions {
  file: string; // evaluation text (e.g. WikiText-2 test); must not be the training file
  set?: PerplexitySet; // how it is built (default 'wikitext2': rows joined with "\n\n")
  seqlen?: number; // window length (default: the training seqlen)
  maxWindows?: number; // windows scored before and after training (default: all, as the reference)
  every?: number; // also score `periodicWindows` windows every this many steps (default 0: never)
  periodicWindows?: number; // default 4
  merged?: boolean; // also score the merged checkpoint (default true when merging)
}

export interface FinetuneOptions {
  model: string; // the (pruned) checkpoint folder or hub id
  data: string; // training file: JSONL/JSON/Parquet rows (documents) or plain text, optionally .gz
  out: string; // output folder
  dataField?: string; // text field of rows (default "text")
  rank?: number; // default 8
  alpha?: number; // default 16
  dropout?: number; // default 0.05
  targets?: LinearName[]; // default q_proj, v_proj
  lr?: number; // peak learning rate, default 1e-4
  schedule?: 'constant' | 'linear' | 'cosine'; // default 'linear' (transformers' Trainer default)
  warmupSteps?: number; // default 0
  totalSteps?: number; // schedule length (default maxSteps); fixed across resumed runs
  weightDecay?: number; // AdamW decoupled weight decay, default 0
  beta1?: number;
  beta2?: number;
  eps?: number;
  maxGradNorm?: number; // default 1.0; 0 disables clipping
  seqlen?: number; // tokens per window, default the model context
  batchSize?: number; // windows per micro-batch, default 1
  gradAccum?: number; // micro-batches per optimizer step, default 1
  maxSteps: number; // optimizer steps to reach (counting steps of resumed runs)
  timeBudget?: number; // stop (with a checkpoint) once training in this call has run this many seconds
  seed?: number; // data sampler, adapter init and dropout (default 0)
  checkpointEvery?: number; // steps between checkpoints (default 50; one is always written at the end)
  resume?: boolean; // continue from out/checkpoint when there is one (wins over overwrite)
  overwrite?: boolean; // otherwise start over in an existing, non-empty out folder (deleting its contents)
  calibrationReport?: string; // report.json of the pruning run (default <model>/report.json)
  eval?: FinetuneEvalOptions;
  merge?: 'none' | 'masked' | 'dense'; // also write out/merged (default none)
  mergeDtype?: 'F32' | 'F16' | 'BF16'; // default the base's dtype
  mergeFormat?: CheckpointFormat; // dense (default) or compressed (compressed-tensors; merge masked only)
  optionName?: OptionName; // how messages name options (default the CLI's flags; experiments pass key paths)
  onProgress?: (p: FinetuneProgress) => void;
}

/** Progress events. */
export type FinetuneProgress =
  | {
      phase: 'train';
      step: number;
      maxSteps: number;
      loss: number;
      lr: number;
      gradNorm: number;
      tokensPerSecond: number;
      elapsedSeconds: number; // this call's training time
      etaSeconds: number; // to maxSteps (or to the time budget, whichever is first)
    }
  | { phase: 'eval'; step: number; ppl: number; windows: number; seconds: number; which: 'before' | 'periodic' | 'after' | 'merged' }
  | { phase: 'checkpoint'; step: number; dir: string }
  | { phase: 'data'; windows: number; documents: number; excludedDocuments: number };

/** report.json of a fine-tuning run. */
export interface FinetuneReport {
  model: string;
  out: string;
  adapters: LoraConfig & { scale: number; trainableParams: number; dir: string };
  optimizer: TrainerOptions & { batchSize: number; gradAccum: number; seqlen: number; tokensPerStep: number };
  data: {
    file: string;
    mode: 'documents' | 'joined';
    seed: number;
    documents: number;
    excludedDocuments: number; // calibration documents skipped
    calibrationReport: string | null; // where they came from (null: no calibration windows known)
    windowsDrawn: number;
    windowsHash: string; // sha256 of all drawn windows
  };
  training: {
    steps: number; // optimizer steps done in all
    stepsThisRun: number;
    resumedFrom: number | null; // step of the checkpoint this call started from
    stoppedBy: 'maxSteps' | 'timeBudget';
    seconds: number; // training time of this call
    totalSeconds: number; // training time of all calls
    tokensPerSecond: number; // this call
    losses: number[]; // per optimizer step, all calls
    firstLoss: number | null;
    lastLoss: number | null; // mean of the last min(10, steps) steps
  };
  eval: null | {
    file: string;
    set: PerplexitySet;
    seqlen: number;
    windows: number;
    before: number; // perplexity of the base
    after: number; // with the adapters (unmerged)
    merged: number | null; // of the merged checkpoint
    periodic: { step: number; ppl: number; windows: number }[];
  };
  merge: MergeReport | null;
  backend: string;
  seconds: number; // whole call
  peakRssMB: number;
}

const CHECKPOINT = 'checkpoint';
const STATE_FILE = 'trainer_state.json';
const OPTIMIZER_FILE = 'optimizer.safetensors';

/** trainer_state.json: everything besides tensors a resumed run needs. */
interface TrainerState {
  version: 1;
  step: number;
  rngState: number;
  optimizerT: number;
  fingerprint: Record<string, unknown>; // options that must not change between resumed runs
  losses: number[];
  periodic: { step: number; ppl: number; windows: number }[];
  before: number | null;
  totalSeconds: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
}

function checkNumber(name: string, v: number, lo: number, hi: number, loOpen = false): void {
  if (!Number.isFinite(v) || v < lo || (loOpen && v === lo) || v > hi) {
    throw new ConfigError(`${name} must be in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${v}`);
  }
}

/** The checkpoint folder of `out`, recovering one left as `checkpoint.old-*` by a run killed while replacing it. */
function findCheckpoint(out: string): string | null {
  const dir = join(out, CHECKPOINT);
  if (existsSync(join(dir, STATE_FILE))) return dir;
  if (!existsSync(out)) return null;
  const olds = readdirSync(out).filter((f) => f.startsWith(`${CHECKPOINT}.old-`) && existsSync(join(out, f, STATE_FILE)));
  if (olds.length === 0) return null;
  const step = (f: string): number => (JSON.parse(readFileSync(join(out, f, STATE_FILE), 'utf8')) as TrainerState).step;
  const best = olds.sort((a, b) => step(b) - step(a))[0]!;
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(out, best), dir);
  return dir;
}

/** Remove leftovers of killed checkpoint writes (`checkpoint.partial-*`, `checkpoint.old-*`). */
function cleanStaging(out: string): void {
  for (const f of readdirSync(out)) {
    if (f.startsWith(`${CHECKPOINT}.partial-`) || f.startsWith(`${CHECKPOINT}.old-`)) rmSync(join(out, f), { recursive: true, force: true });
  }
}

function writeCheckpoint(out: string, trainer: LoraTrainer, baseModel: string, state: TrainerState): string {
  const staged = new StagedFolder(join(out, CHECKPOINT), { overwrite: true });
  try {
    saveAdapters(staged.tmp, trainer.adapters, baseModel);
    const opt = trainer.optimizer;
    const tensors = trainer.adapters.pairs.flatMap((p, i) =>
      (['aT', 'bT'] as const).flatMap((which, k) => {
        const idx = 2 * i + k;
        const shape = (which === 'aT' ? p.aT : p.bT).shape as number[];
        const base = `layers.${p.layer}.${p.name}.${which}`;
        return [
          { name: `${base}.exp_avg`, shape, values: opt.m[idx]!.dataSync() as Float32Array },
          { name: `${base}.exp_avg_sq`, shape, values: opt.v[idx]!.dataSync() as Float32Array },
        ];
      }),
    );
    const w = new SafetensorsWriter(staged.path(OPTIMIZER_FILE), tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const })));
    try {
      for (const t of tensors) w.write(t.name, t.values);
      w.finish();
    } catch (e) {
      w.abort();
      throw e;
    }
    writeJsonAtomic(staged.path(STATE_FILE), state);
    staged.commit();
    return staged.out;
  } catch (e) {
    staged.abandon();
    throw e;
  }
}

function readCheckpoint(dir: string, trainer: LoraTrainer, fingerprint: Record<string, unknown>): TrainerState {
  const stateFile = join(dir, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as TrainerState;
  } catch (e) {
    throw new DataError(`${stateFile}: cannot read as JSON (${(e as Error).message})`);
  }
  if (state.version !== 1 || !Number.isInteger(state.step) || !Number.isInteger(state.rngState)) {
    throw new DataError(`${stateFile}: not a trainer state of this version (fields version, step, rngState)`);
  }
  for (const k of new Set([...Object.keys(fingerprint), ...Object.keys(state.fingerprint)])) {
    const was = JSON.stringify(state.fingerprint[k]);
    const now = JSON.stringify(fingerprint[k]);
    if (was !== now) {
      throw new ConfigError(
        `resume from ${dir}: option '${k}' was ${was} in the checkpoint and is ${now} now; a resumed run must use ` +
          `the same setting${k === 'totalSteps' ? ' (pass totalSteps explicitly to keep the schedule length when raising maxSteps)' : ''} ` +
          '(or start over with overwrite)',
      );
    }
  }
  const files = readAdapterFiles(dir, trainer.model.config);
  trainer.adapters.assign(files.arrays);
  const opt = trainer.optimizer;
  const f = SafetensorsFile.open(join(dir, OPTIMIZER_FILE));
  try {
    trainer.adapters.pairs.forEach((p, i) => {
      (['aT', 'bT'] as const).forEach((which, k) => {
        const idx = 2 * i + k;
        const base = `layers.${p.layer}.${p.name}.${which}`;
        for (const [suffix, target] of [['exp_avg', opt.m[idx]!], ['exp_avg_sq', opt.v[idx]!]] as const) {
          const name = `${base}.${suffix}`;
          if (!f.entries.has(name)) throw new DataError(`${f.path}: tensor '${name}' is missing`);
          const values = f.readFloat32(name);
          if (values.length !== target.size) throw new DataError(`${f.path}: tensor '${name}' has ${values.length} values, expected ${target.size}`);
          tf.tidy(() => target.assign(tf.tensor(values, target.shape)));
        }
      });
    });
  } finally {
    f.close();
  }
  opt.t = state.optimizerT;
  trainer.step = state.step;
  trainer.rng.state = state.rngState >>> 0;
  return state;
}

/**
 * Fine-tune LoRA adapters on a (pruned) checkpoint; see the file comment. Returns the report, also written to
 * `out/report.json`. The final adapters are in `out` (PEFT layout); `loadAdapters(out, model)` evaluates them.
 */
export async function finetune(o: FinetuneOptions): Promise<FinetuneReport> {
  const tStart = performance.now();
  const name = o.optionName ?? cliFlag;
  const lora = validateLoraConfig(
    {
      rank: o.rank ?? FINETUNE_DEFAULTS.rank,
      alpha: o.alpha ?? FINETUNE_DEFAULTS.alpha,
      dropout: o.dropout ?? FINETUNE_DEFAULTS.dropout,
      targets: o.targets ?? [...FINETUNE_DEFAULTS.targets],
    },
    name,
  );
  checkPositiveInt(name('maxSteps'), o.maxSteps);
  const batchSize = o.batchSize ?? FINETUNE_DEFAULTS.batchSize;
  const gradAccum = o.gradAccum ?? FINETUNE_DEFAULTS.gradAccum;
  checkPositiveInt(name('batchSize'), batchSize);
  checkPositiveInt(name('gradAccum'), gradAccum);
  const seed = o.seed ?? FINETUNE_DEFAULTS.seed;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ConfigError(`${name('seed')} must be a non-negative integer, got ${seed}`);
  const schedule = o.schedule ?? FINETUNE_DEFAULTS.schedule;
  if (!['constant', 'linear', 'cosine'].includes(schedule)) {
    throw new ConfigError(`${name('schedule')}: '${String(schedule)}' is not one of constant, linear, cosine`);
  }
  const trainerOptions: TrainerOptions = {
    lr: o.lr ?? FINETUNE_DEFAULTS.lr,
    schedule,
    warmupSteps: o.warmupSteps ?? FINETUNE_DEFAULTS.warmupSteps,
    totalSteps: o.totalSteps ?? o.maxSteps,
    weightDecay: o.weightDecay ?? FINETUNE_DEFAULTS.weightDecay,
    beta1: o.beta1 ?? FINETUNE_DEFAULTS.beta1,
    beta2: o.beta2 ?? FINETUNE_DEFAULTS.beta2,
    eps: o.eps ?? FINETUNE_DEFAULTS.eps,
    maxGradNorm: o.maxGradNorm ?? FINETUNE_DEFAULTS.maxGradNorm,
  };
  checkNumber(name('lr'), trainerOptions.lr, 0, 1, true);
  if (!Number.isSafeInteger(trainerOptions.warmupSteps) || trainerOptions.warmupSteps < 0) {
    throw new ConfigError(`${name('warmupSteps')} must be a non-negative integer, got ${trainerOptions.warmupSteps}`);
  }
  checkPositiveInt(name('totalSteps'), trainerOptions.totalSteps);
  checkNumber(name('weightDecay'), trainerOptions.weightDecay, 0, 1);
  checkNumber(name('beta1'), trainerOptions.beta1, 0, 1);
  checkNumber(name('beta2'), trainerOptions.beta2, 0, 1);
  checkNumber(name('eps'), trainerOptions.eps, 0, 1, true);
  checkNumber(name('maxGradNorm'), trainerOptions.maxGradNorm, 0, Infinity);
  if (trainerOptions.beta1 === 1 || trainerOptions.beta2 === 1) throw new ConfigError(`${name('beta1')} and ${name('beta2')} must be below 1`);
  const checkpointEvery = o.checkpointEvery ?? FINETUNE_DEFAULTS.checkpointEvery;
  checkPositiveInt(name('checkpointEvery'), checkpointEvery);
  if (o.timeBudget !== undefined) checkNumber(name('timeBudget'), o.timeBudget, 0, Infinity, true);
  const mergeMode = o.merge ?? FINETUNE_DEFAULTS.merge;
  if (!['none', 'masked', 'dense'].includes(mergeMode)) throw new ConfigError(`${name('merge')}: '${String(mergeMode)}' is not none, masked or dense`);
  if (o.mergeFormat !== undefined && o.mergeFormat !== 'dense' && !(o.mergeFormat === 'compressed' && mergeMode === 'masked')) {
    throw new ConfigError(`--format ${String(o.mergeFormat)}: only dense, or compressed with --merge masked (a dense merge fills the pruned zeros in)`);
  }
  const ev = o.eval;
  if (ev) {
    const set = ev.set ?? 'wikitext2';
    if (!PERPLEXITY_SETS.includes(set)) throw new ConfigError(`${name('evalSet')}: '${String(set)}' is not one of ${PERPLEXITY_SETS.join(', ')}`);
    if (ev.maxWindows !== undefined) checkPositiveInt(name('evalWindows'), ev.maxWindows);
    if (ev.every !== undefined && !(Number.isSafeInteger(ev.every) && ev.every >= 0)) {
      throw new ConfigError(`${name('evalEvery')} must be a non-negative integer, got ${ev.every}`);
    }
    if (ev.periodicWindows !== undefined) checkPositiveInt(name('evalPeriodicWindows'), ev.periodicWindows);
    if (canonical(ev.file) === canonical(o.data)) {
      throw new ConfigError(`${name('data')} ${o.data} is also the evaluation file: training on the evaluation text would make its perplexity meaningless`);
    }
  }

  await ensureGradients();
  const out = resolve(o.out);
  let loaded: LoadedModel | null = null;
  let adapters: LoraAdapters | null = null;
  let trainer: LoraTrainer | null = null;
  try {
    loaded = await loadModel(o.model);
    const model = loaded.model;
    const c = model.config;
    const seqlen = o.seqlen ?? c.maxPositions;
    if (!Number.isInteger(seqlen) || seqlen < 2 || seqlen > c.maxPositions) {
      throw new ConfigError(`${name('seqlen')} ${seqlen}: must be an integer in 2..${c.maxPositions} (the model context)`);
    }
    const evalSeqlen = ev?.seqlen ?? seqlen;
    if (ev && (!Number.isInteger(evalSeqlen) || evalSeqlen < 2 || evalSeqlen > c.maxPositions)) {
      throw new ConfigError(`${name('evalSeqlen')} ${evalSeqlen}: must be an integer in 2..${c.maxPositions}`);
    }

    // Output folder: resume, start over, or refuse.
    mkdirSync(out, { recursive: true });
    const existing = findCheckpoint(out);
    if (existing && !(o.resume ?? FINETUNE_DEFAULTS.resume) && !o.overwrite) {
      const step = (JSON.parse(readFileSync(join(existing, STATE_FILE), 'utf8')) as TrainerState).step;
      throw new ConfigError(`${name('out')} ${o.out}: holds a training checkpoint at step ${step}; pass ${name('resume')} to continue it or ${name('overwrite')} to start over`);
    }
    const resuming = existing !== null && (o.resume ?? FINETUNE_DEFAULTS.resume);
    if (!resuming) {
      if (readdirSync(out).length > 0) {
        if (!o.overwrite) throw new ConfigError(`${name('out')} ${o.out}: folder exists and is not empty (pass ${name('overwrite')} to replace it)`);
        for (const f of readdirSync(out)) rmSync(join(out, f), { recursive: true, force: true });
      }
    } else cleanStaging(out);

    // Data: the pruning run's calibration documents are skipped when training on the same file.
    const calReport = o.calibrationReport ?? join(loaded.dir, 'report.json');
    const cal = readCalibrationInfo(calReport);
    const exclude = cal && canonical(cal.file) === canonical(o.data) ? new Set(cal.windows.map((w) => w[0])) : undefined;
    const perStep = batchSize * gradAccum;
    const data = await trainingWindows({
      file: o.data,
      tokenizer: loaded.tokenizer,
      seqlen,
      count: o.maxSteps * perStep,
      seed,
      ...(o.dataField !== undefined ? { field: o.dataField } : {}),
      ...(exclude ? { excludeDocuments: exclude } : {}),
      optionName: name,
    });
    o.onProgress?.({ phase: 'data', windows: data.windows.length, documents: data.documents, excludedDocuments: data.excludedDocuments });

    adapters = LoraAdapters.create(c, lora, seed);
    const trainableParams = adapters.parameterCount();
    trainer = new LoraTrainer(model, adapters, trainerOptions, seed);
    const fingerprint: Record<string, unknown> = {
      model: loaded.dir,
      data: canonical(o.data),
      dataField: o.dataField ?? 'text',
      seqlen,
      batchSize,
      gradAccum,
      seed,
      lora,
      ...trainerOptions,
      totalSteps: schedule === 'constant' ? null : trainerOptions.totalSteps,
    };
    let state: TrainerState = {
      version: 1,
      step: 0,
      rngState: trainer.rng.state,
      optimizerT: 0,
      fingerprint,
      losses: [],
      periodic: [],
      before: null,
      totalSeconds: 0,
    };
    let resumedFrom: number | null = null;
    if (resuming) {
      state = readCheckpoint(existing!, trainer, fingerprint);
      resumedFrom = state.step;
    }

    // Held-out perplexity before training (kept in the checkpoint, so a resumed run reports the same number).
    const evalIds = ev ? await evaluationIds(ev.set ?? 'wikitext2', ev.file, loaded.tokenizer, evalSeqlen) : null;
    const scoreEval = (forward: ForwardOptions, maxWindows: number | undefined, m: LlamaModel = model) =>
      perplexityOfIds(m, evalIds!, { seqlen: evalSeqlen, forward, ...(maxWindows !== undefined ? { maxWindows } : {}) });
    if (ev && state.before === null) {
      const r = scoreEval({}, ev.maxWindows);
      state.before = r.ppl;
      o.onProgress?.({ phase: 'eval', step: state.step, ppl: r.ppl, windows: r.windows, seconds: r.seconds, which: 'before' });
    }

    // The training loop.
    const tLoop = performance.now();
    const elapsed = (): number => (performance.now() - tLoop) / 1000;
    const startStep = trainer.step;
    let stoppedBy: 'maxSteps' | 'timeBudget' = 'maxSteps';
    let lastCheckpoint = trainer.step;
    let checkpointed = resuming; // out/checkpoint holds this run's state
    const save = (): void => {
      state = { ...state, step: trainer!.step, rngState: trainer!.rng.state, optimizerT: trainer!.optimizer.t };
      const dir = writeCheckpoint(out, trainer!, loaded!.dir, state);
      lastCheckpoint = trainer!.step;
      checkpointed = true;
      o.onProgress?.({ phase: 'checkpoint', step: trainer!.step, dir });
    };
    let secondsCounted = 0;
    while (trainer.step < o.maxSteps) {
      if (o.timeBudget !== undefined && elapsed() >= o.timeBudget) {
        stoppedBy = 'timeBudget';
        break;
      }
      const first = trainer.step * perStep;
      const micro: number[][][] = [];
      for (let k = 0; k < gradAccum; k++) {
        micro.push(data.windows.slice(first + k * batchSize, first + (k + 1) * batchSize).map((w) => w.ids));
      }
      const r = trainer.trainStep(micro);
      state.losses.push(r.loss);
      const secs = elapsed();
      state.totalSeconds += secs - secondsCounted;
      secondsCounted = secs;
      const done = trainer.step - startStep;
      const perStepSeconds = secs / done;
      let eta = (o.maxSteps - trainer.step) * perStepSeconds;
      if (o.timeBudget !== undefined) eta = Math.min(eta, Math.max(0, o.timeBudget - secs));
      o.onProgress?.({
        phase: 'train',
        step: trainer.step,
        maxSteps: o.maxSteps,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        tokensPerSecond: (done * perStep * seqlen) / secs,
        elapsedSeconds: secs,
        etaSeconds: eta,
      });
      if (ev && ev.every && trainer.step % ev.every === 0 && trainer.step < o.maxSteps) {
        const p = scoreEval(adapters.forward(), ev.periodicWindows ?? 4);
        state.periodic.push({ step: trainer.step, ppl: p.ppl, windows: p.windows });
        o.onProgress?.({ phase: 'eval', step: trainer.step, ppl: p.ppl, windows: p.windows, seconds: p.seconds, which: 'periodic' });
      }
      if (trainer.step % checkpointEvery === 0) save();
    }
    const trainSeconds = elapsed();
    if (trainer.step !== lastCheckpoint || !checkpointed) save();

    // Final adapters, held-out perplexity, merge.
    saveAdapters(out, adapters, loaded.dir);
    let after: number | null = null;
    let evalWindows = 0;
    if (ev) {
      const r = scoreEval(adapters.forward(), ev.maxWindows);
      after = r.ppl;
      evalWindows = r.windows;
      o.onProgress?.({ phase: 'eval', step: trainer.step, ppl: r.ppl, windows: r.windows, seconds: r.seconds, which: 'after' });
    }
    let merge: MergeReport | null = null;
    let mergedPpl: number | null = null;
    if (mergeMode !== 'none') {
      merge = writeMergedCheckpoint({
        checkpoint: loaded.checkpoint,
        adapters,
        mode: mergeMode,
        out: join(out, 'merged'),
        overwrite: true,
        ...(o.mergeDtype !== undefined ? { dtype: o.mergeDtype } : {}),
        ...(o.mergeFormat !== undefined ? { format: o.mergeFormat } : {}),
      });
      if (ev && ev.merged !== false) {
        trainer.dispose();
        trainer = null;
        adapters.dispose();
        adapters = null;
        loaded.dispose();
        loaded = null;
        const m = await loadModel(merge.dir);
        try {
          const r = scoreEval({}, ev.maxWindows, m.model);
          mergedPpl = r.ppl;
          o.onProgress?.({ phase: 'eval', step: state.step, ppl: r.ppl, windows: r.windows, seconds: r.seconds, which: 'merged' });
        } finally {
          m.dispose();
        }
      }
    }

    const losses = state.losses;
    const tail = losses.slice(-Math.min(10, losses.length));
    const stepsThisRun = state.step - startStep;
    const report: FinetuneReport = {
      model: fingerprint['model'] as string,
      out,
      adapters: {
        ...lora,
        scale: lora.alpha / lora.rank,
        trainableParams,
        dir: out,
      },
      optimizer: { ...trainerOptions, batchSize, gradAccum, seqlen, tokensPerStep: perStep * seqlen },
      data: {
        file: canonical(o.data),
        mode: data.mode,
        seed,
        documents: data.documents,
        excludedDocuments: data.excludedDocuments,
        calibrationReport: cal ? cal.report : null,
        windowsDrawn: data.windows.length,
        windowsHash: data.hash,
      },
      training: {
        steps: state.step,
        stepsThisRun,
        resumedFrom,
        stoppedBy,
        seconds: trainSeconds,
        totalSeconds: state.totalSeconds,
        tokensPerSecond: trainSeconds > 0 ? (stepsThisRun * perStep * seqlen) / trainSeconds : 0,
        losses,
        firstLoss: losses[0] ?? null,
        lastLoss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
      },
      eval: ev
        ? {
            file: canonical(ev.file),
            set: ev.set ?? 'wikitext2',
            seqlen: evalSeqlen,
            windows: evalWindows,
            before: state.before!,
            after: after!,
            merged: mergedPpl,
            periodic: state.periodic,
          }
        : null,
      merge,
      backend: activeBackend()?.name ?? 'unknown',
      seconds: (performance.now() - tStart) / 1000,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    };
    writeJsonAtomic(join(out, 'report.json'), report);
    return report;
  } finally {
    trainer?.dispose();
    adapters?.dispose();
    loaded?.dispose();
  }
}
