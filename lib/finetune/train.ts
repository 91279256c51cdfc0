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
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, cliFlag, type OptionName } from '../errors.js';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { writeJsonAtomic } from '../model/save.js';
import { activeBackend, requireSyncReads } from '../model/backend.js';
import { evaluationCut, evaluationText, perplexityOfIds, type PerplexitySet, PERPLEXITY_SETS } from '../eval/perplexity.js';
import { cachedTextIds } from '../eval/token-cache.js';
import type { LinearName } from '../model/architecture.js';
import { FINETUNE_DEFAULTS } from './defaults.js';
import { LoraAdapters, validateLoraConfig, type LoraConfig } from './lora.js';
import { saveAdapters, writeMergedCheckpoint, type MergeReport } from './peft.js';
import type { CheckpointFormat } from '../model/compressed-tensors.js';
import { ensureGradients } from './loss.js';
import { LoraTrainer, type TrainerOptions } from './trainer.js';
import { canonical, readCalibrationInfo, trainingWindows } from './data.js';
import { STATE_FILE, cleanStaging, findCheckpoint, readCheckpoint, writeCheckpoint, type TrainerState } from './state.js';

// The steps of fine-tuning live in their own files; re-exported here for existing importers.
export { ensureGradients, causalLmLoss } from './loss.js';
export { AdamW, learningRate, type AdamWOptions, type ScheduleOptions } from './optim.js';
export { LoraTrainer, type StepResult, type TrainerOptions } from './trainer.js';
export { trainingWindows, type TrainingData, type TrainingDataOptions } from './data.js';

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
    firstLoss: number | null; // mean of the first min(10, steps) steps (measured like lastLoss)
    lastLoss: number | null; // mean of the last min(10, steps) steps
    lossWindow: number; // min(10, steps): how many steps each of the two means covers
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

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
}

function checkNumber(name: string, v: number, lo: number, hi: number, loOpen = false): void {
  if (!Number.isFinite(v) || v < lo || (loOpen && v === lo) || v > hi) {
    throw new ConfigError(`${name} must be in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${v}`);
  }
}

/**
 * Fine-tune LoRA adapters on a (pruned) checkpoint; see the file comment. Returns the report, also written to
 * `out/report.json`. The final adapters are in `out` (PEFT layout); `loadAdapters(out, model)` evaluates them.
 */
export async function finetune(o: FinetuneOptions): Promise<FinetuneReport> {
  requireSyncReads('finetune (the training loop reads losses and norms back each step)');
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
    const evalSet = ev?.set ?? 'wikitext2';
    const evalIds = ev
      ? evaluationCut(evalSet, await cachedTextIds(evalSet, ev.file, loaded.tokenizer, () => evaluationText(evalSet, ev.file)), evalSeqlen)
      : null;
    const scoreEval = (forward: ForwardOptions, maxWindows: number | undefined, m: LlamaModel = model) =>
      perplexityOfIds(m, evalIds!, { seqlen: evalSeqlen, forward, ...(maxWindows !== undefined ? { maxWindows } : {}) });
    if (ev && state.before === null) {
      const r = await scoreEval({}, ev.maxWindows);
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
        const p = await scoreEval(adapters.forward(), ev.periodicWindows ?? 4);
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
      const r = await scoreEval(adapters.forward(), ev.maxWindows);
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
          const r = await scoreEval({}, ev.maxWindows, m.model);
          mergedPpl = r.ppl;
          o.onProgress?.({ phase: 'eval', step: state.step, ppl: r.ppl, windows: r.windows, seconds: r.seconds, which: 'merged' });
        } finally {
          m.dispose();
        }
      }
    }

    const losses = state.losses;
    const tail = losses.slice(-Math.min(10, losses.length));
    const head = losses.slice(0, tail.length); // the same number of steps as `tail`: both are means
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
        file: o.data, // as the user gave it (the fingerprint uses the real path)
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
        firstLoss: head.length ? head.reduce((a, b) => a + b, 0) / head.length : null,
        lastLoss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
        lossWindow: tail.length,
      },
      eval: ev
        ? {
            file: ev.file,
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
