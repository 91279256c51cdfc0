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
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { acquireOutputLock } from '../output-lock.js';
import { writeJsonAtomic } from '../model/save.js';
import { evaluationCut, evaluationText, perplexityOfIds } from '../eval/perplexity.js';
import type { WindowPerplexity } from '../eval/results.js';
import { cachedTextIds } from '../eval/token-cache.js';
import { LoraAdapters } from './lora.js';
import { saveAdapters, writeMergedCheckpoint, type MergeReport } from './peft.js';
import { ensureGradients } from './loss.js';
import { LoraTrainer } from './trainer.js';
import { canonical, readCalibrationInfo, trainingWindows, type TrainingData } from './data.js';
import { prepareOutputFolder, readCheckpoint, writeCheckpoint, type TrainerState } from './state.js';
import { resolveFinetuneOptions, windowLengths, type FinetuneOptions, type ResolvedFinetuneOptions } from './options.js';
import { buildReport, type FinetuneProgress, type FinetuneReport } from './report.js';

export type { FinetuneProgress, FinetuneReport } from './report.js';

// ---------------------------------------------------------------------------------------------------------------
// finetune(): the steps

/** Scores held-out perplexity with some forward options, on `model` (default: the one being trained). */
type HeldOutScorer = (forward: ForwardOptions, maxWindows: number | null, model?: LlamaModel) => Promise<WindowPerplexity>;

/**
 * The tensors and files a run holds: the base model, the adapters, the trainer. `release()` frees them (the merge
 * step frees them early, before it loads the merged checkpoint); freeing twice is harmless.
 */
class Held {
  constructor(
    public loaded: LoadedModel | null = null,
    public adapters: LoraAdapters | null = null,
    public trainer: LoraTrainer | null = null,
  ) {}

  release(): void {
    this.trainer?.dispose();
    this.adapters?.dispose();
    this.loaded?.dispose();
    this.trainer = null;
    this.adapters = null;
    this.loaded = null;
  }
}

/** Everything the steps after loading share. */
interface Run {
  r: ResolvedFinetuneOptions;
  out: string; // resolved output folder
  modelDir: string;
  model: LlamaModel;
  adapters: LoraAdapters;
  trainer: LoraTrainer;
  state: TrainerState;
  seqlen: number;
  score: HeldOutScorer | null; // null: no evaluation file
  onProgress: (p: FinetuneProgress) => void;
}

/** Training windows; the pruning run's calibration documents are skipped when training on the same file. */
async function loadTrainingData(
  r: ResolvedFinetuneOptions,
  loaded: LoadedModel,
  seqlen: number,
): Promise<{ data: TrainingData; calibrationReport: string | null }> {
  const cal = readCalibrationInfo(r.calibrationReport ?? join(loaded.dir, 'report.json'));
  const exclude = cal && canonical(cal.file) === canonical(r.data) ? new Set(cal.windows.map((w) => w[0])) : undefined;
  const data = await trainingWindows({
    file: r.data,
    tokenizer: loaded.tokenizer,
    seqlen,
    count: r.maxSteps * r.batchSize * r.gradAccum,
    seed: r.seed,
    field: r.dataField,
    ...(exclude ? { excludeDocuments: exclude } : {}),
    optionName: r.optionName,
  });
  return { data, calibrationReport: cal ? cal.report : null };
}

/** The options a resumed run must share with the run that wrote the checkpoint. */
function fingerprintOf(r: ResolvedFinetuneOptions, modelDir: string, seqlen: number): Record<string, unknown> {
  return {
    model: modelDir,
    data: canonical(r.data),
    dataField: r.dataField,
    seqlen,
    batchSize: r.batchSize,
    gradAccum: r.gradAccum,
    seed: r.seed,
    lora: r.lora,
    ...r.trainer,
    totalSteps: r.trainer.schedule === 'constant' ? null : r.trainer.totalSteps,
  };
}

/** Fresh trainer state at step 0, or the state of the checkpoint `resumeFrom` (loaded into the trainer). */
function startOrResume(trainer: LoraTrainer, fingerprint: Record<string, unknown>, resumeFrom: string | null): TrainerState {
  if (resumeFrom !== null) return readCheckpoint(resumeFrom, trainer, fingerprint);
  return { version: 1, step: 0, rngState: trainer.rng.state, optimizerT: 0, fingerprint, losses: [], periodic: [], before: null, totalSeconds: 0 };
}

/** The held-out scorer (the evaluation text tokenized once, cached), or null without an evaluation file. */
async function heldOutScorer(r: ResolvedFinetuneOptions, loaded: LoadedModel, evalSeqlen: number): Promise<HeldOutScorer | null> {
  const ev = r.eval;
  if (!ev) return null;
  const ids = evaluationCut(ev.set, await cachedTextIds(ev.set, ev.file, loaded.tokenizer, () => evaluationText(ev.set, ev.file), undefined, r.tokenCacheDir ?? undefined), evalSeqlen);
  const base = loaded.model;
  return (forward, maxWindows, model = base) =>
    perplexityOfIds(model, ids, { seqlen: evalSeqlen, forward, ...(maxWindows !== null ? { maxWindows } : {}) });
}

/** Save the trainer's state into out/checkpoint (atomically) and report it. */
async function saveCheckpoint(run: Run): Promise<void> {
  const { trainer, state } = run;
  Object.assign(state, { step: trainer.step, rngState: trainer.rng.state, optimizerT: trainer.optimizer.t });
  const dir = await writeCheckpoint(run.out, trainer, run.modelDir, state);
  run.onProgress({ phase: 'checkpoint', step: trainer.step, dir });
}

/** The micro-batches of optimizer step `step`: windows step*perStep .. (step+1)*perStep, `batchSize` at a time. */
function microBatches(run: Run, data: TrainingData): number[][][] {
  const { batchSize, gradAccum } = run.r;
  const first = run.trainer.step * batchSize * gradAccum;
  const micro: number[][][] = [];
  for (let k = 0; k < gradAccum; k++) {
    micro.push(data.windows.slice(first + k * batchSize, first + (k + 1) * batchSize).map((w) => w.ids));
  }
  return micro;
}

/**
 * Optimizer steps until maxSteps or the time budget, with progress, periodic held-out perplexity and a checkpoint
 * every `checkpointEvery` steps and at the end (unless out/checkpoint already holds the last step).
 */
async function trainLoop(run: Run, data: TrainingData, resumed: boolean): Promise<{ stoppedBy: 'maxSteps' | 'timeBudget'; seconds: number }> {
  const { r, trainer, state } = run;
  const tLoop = performance.now();
  const elapsed = (): number => (performance.now() - tLoop) / 1000;
  const startStep = trainer.step;
  const tokensPerStep = r.batchSize * r.gradAccum * run.seqlen;
  let stoppedBy: 'maxSteps' | 'timeBudget' = 'maxSteps';
  let lastCheckpoint = resumed ? trainer.step : null; // step that out/checkpoint holds for this run
  let secondsCounted = 0;
  while (trainer.step < r.maxSteps) {
    if (r.timeBudget !== null && elapsed() >= r.timeBudget) {
      stoppedBy = 'timeBudget';
      break;
    }
    const step = await trainer.trainStep(microBatches(run, data));
    state.losses.push(step.loss);
    const secs = elapsed();
    state.totalSeconds += secs - secondsCounted;
    secondsCounted = secs;
    const done = trainer.step - startStep;
    let eta = (r.maxSteps - trainer.step) * (secs / done);
    if (r.timeBudget !== null) eta = Math.min(eta, Math.max(0, r.timeBudget - secs));
    run.onProgress({
      phase: 'train',
      step: trainer.step,
      maxSteps: r.maxSteps,
      loss: step.loss,
      lr: step.lr,
      gradNorm: step.gradNorm,
      tokensPerSecond: (done * tokensPerStep) / secs,
      elapsedSeconds: secs,
      etaSeconds: eta,
    });
    if (run.score && r.eval!.every && trainer.step % r.eval!.every === 0 && trainer.step < r.maxSteps) {
      const p = await run.score(run.adapters.forward(), r.eval!.periodicWindows);
      state.periodic.push({ step: trainer.step, ppl: p.ppl, windows: p.windows });
      run.onProgress({ phase: 'eval', step: trainer.step, ppl: p.ppl, windows: p.windows, seconds: p.seconds, which: 'periodic' });
    }
    if (trainer.step % r.checkpointEvery === 0) {
      await saveCheckpoint(run);
      lastCheckpoint = trainer.step;
    }
  }
  const seconds = elapsed();
  if (lastCheckpoint !== trainer.step) await saveCheckpoint(run);
  return { stoppedBy, seconds };
}

/**
 * Write out/merged when asked, and score it when there is an evaluation file (and `eval.merged`). The base model,
 * adapters and trainer are released before the merged checkpoint is loaded, so the two never share memory.
 */
async function mergeStep(run: Run, held: Held): Promise<{ merge: MergeReport | null; mergedPpl: number | null }> {
  const { r } = run;
  if (r.merge === 'none') return { merge: null, mergedPpl: null };
  const merge = await writeMergedCheckpoint({
    checkpoint: held.loaded!.checkpoint,
    adapters: run.adapters,
    mode: r.merge,
    out: join(run.out, 'merged'),
    overwrite: true,
    ...(r.mergeDtype !== null ? { dtype: r.mergeDtype } : {}),
    format: r.mergeFormat,
  });
  if (!run.score || !r.eval!.merged) return { merge, mergedPpl: null };
  held.release();
  const m = await loadModel(merge.dir);
  try {
    const p = await run.score({}, r.eval!.maxWindows, m.model);
    run.onProgress({ phase: 'eval', step: run.state.step, ppl: p.ppl, windows: p.windows, seconds: p.seconds, which: 'merged' });
    return { merge, mergedPpl: p.ppl };
  } finally {
    m.dispose();
  }
}

/**
 * Fine-tune LoRA adapters on a (pruned) checkpoint; see the file comment. Returns the report, also written to
 * `out/report.json`. The final adapters are in `out` (PEFT layout); `loadAdapters(out, model)` evaluates them.
 * Steps: resolve the options; load the model; prepare the output folder (resume, start over or refuse); draw the
 * training windows; create the adapters and trainer (from the checkpoint when resuming); score the base; train;
 * save the adapters and score them; merge; report.
 */
export async function finetune(o: FinetuneOptions): Promise<FinetuneReport> {
  const tStart = performance.now();
  const r = resolveFinetuneOptions(o);
  const onProgress = o.onProgress ?? ((): void => undefined);
  await ensureGradients();
  const out = resolve(r.out);
  const held = new Held();
  mkdirSync(dirname(out), { recursive: true }); // the lock file sits beside the output (an experiment's finetune/ may not exist yet)
  const lock = acquireOutputLock(`${out}.lock`, { command: 'llm-prune finetune', forceUnlock: o.forceUnlock ?? false, forceOption: r.optionName('forceUnlock') });
  try {
    const loaded = (held.loaded = await loadModel(r.model, { hubToken: r.hubToken ?? undefined }));
    const { seqlen, evalSeqlen } = windowLengths(r, loaded.model.config.maxPositions);
    const resumeFrom = prepareOutputFolder({ dir: out, shownAs: r.out, resume: r.resume, overwrite: r.overwrite, optionName: r.optionName });
    const { data, calibrationReport } = await loadTrainingData(r, loaded, seqlen);
    onProgress({ phase: 'data', windows: data.windows.length, documents: data.documents, excludedDocuments: data.excludedDocuments });

    const adapters = (held.adapters = LoraAdapters.create(loaded.model.config, r.lora, r.seed));
    const trainer = (held.trainer = new LoraTrainer(loaded.model, adapters, r.trainer, r.seed));
    const trainableParams = adapters.parameterCount();
    const state = startOrResume(trainer, fingerprintOf(r, loaded.dir, seqlen), resumeFrom);
    const resumedFrom = resumeFrom !== null ? state.step : null;
    const startStep = trainer.step;
    const score = await heldOutScorer(r, loaded, evalSeqlen);
    const run: Run = { r, out, modelDir: loaded.dir, model: loaded.model, adapters, trainer, state, seqlen, score, onProgress };

    // Held-out perplexity before training (kept in the checkpoint, so a resumed run reports the same number).
    if (score && state.before === null) {
      const p = await score({}, r.eval!.maxWindows);
      state.before = p.ppl;
      onProgress({ phase: 'eval', step: state.step, ppl: p.ppl, windows: p.windows, seconds: p.seconds, which: 'before' });
    }
    const loop = await trainLoop(run, data, resumeFrom !== null);

    await saveAdapters(out, adapters, loaded.dir);
    let after: WindowPerplexity | null = null;
    if (score) {
      after = await score(adapters.forward(), r.eval!.maxWindows);
      onProgress({ phase: 'eval', step: trainer.step, ppl: after.ppl, windows: after.windows, seconds: after.seconds, which: 'after' });
    }
    const { merge, mergedPpl } = await mergeStep(run, held);

    const report = buildReport(r, {
      model: loaded.dir,
      out,
      seqlen,
      evalSeqlen,
      trainableParams,
      data,
      calibrationReport,
      state,
      startStep,
      resumedFrom,
      stoppedBy: loop.stoppedBy,
      trainSeconds: loop.seconds,
      after,
      merge,
      mergedPpl,
      tStart,
    });
    writeJsonAtomic(join(out, 'report.json'), report);
    return report;
  } finally {
    held.release();
    lock.release();
  }
}
