/** What a fine-tuning run tells its caller: progress events while it runs, report.json when it ends. */
import { activeBackend } from '../model/backend.js';
import type { PerplexitySet } from '../eval/perplexity.js';
import type { LoraConfig } from './lora.js';
import type { MergeReport } from './peft.js';
import type { TrainerOptions } from './trainer.js';
import type { TrainingData } from './data.js';
import type { TrainerState } from './state.js';
import type { ResolvedFinetuneOptions } from './options.js';
import { platform } from '../platform/index.js';

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

/** What the steps of one run found out, for the report. */
export interface RunFacts {
  model: string; // the model folder (resolved)
  out: string; // the output folder (resolved)
  seqlen: number;
  evalSeqlen: number;
  trainableParams: number;
  data: TrainingData;
  calibrationReport: string | null;
  state: TrainerState; // after the last step
  startStep: number;
  resumedFrom: number | null;
  stoppedBy: 'maxSteps' | 'timeBudget';
  trainSeconds: number;
  after: { ppl: number; windows: number } | null;
  merge: MergeReport | null;
  mergedPpl: number | null;
  tStart: number; // performance.now() when the call started
}

/** Mean of a list (null when empty). */
function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** The report of a run from its resolved options and what its steps found. */
export function buildReport(r: ResolvedFinetuneOptions, f: RunFacts): FinetuneReport {
  const losses = f.state.losses;
  const tail = losses.slice(-Math.min(10, losses.length));
  const head = losses.slice(0, tail.length); // the same number of steps as `tail`: both are means
  const perStep = r.batchSize * r.gradAccum;
  const stepsThisRun = f.state.step - f.startStep;
  return {
    model: f.model,
    out: f.out,
    adapters: { ...r.lora, scale: r.lora.alpha / r.lora.rank, trainableParams: f.trainableParams, dir: f.out },
    optimizer: { ...r.trainer, batchSize: r.batchSize, gradAccum: r.gradAccum, seqlen: f.seqlen, tokensPerStep: perStep * f.seqlen },
    data: {
      file: r.data, // as the user gave it (the fingerprint uses the real path)
      mode: f.data.mode,
      seed: r.seed,
      documents: f.data.documents,
      excludedDocuments: f.data.excludedDocuments,
      calibrationReport: f.calibrationReport,
      windowsDrawn: f.data.windows.length,
      windowsHash: f.data.hash,
    },
    training: {
      steps: f.state.step,
      stepsThisRun,
      resumedFrom: f.resumedFrom,
      stoppedBy: f.stoppedBy,
      seconds: f.trainSeconds,
      totalSeconds: f.state.totalSeconds,
      tokensPerSecond: f.trainSeconds > 0 ? (stepsThisRun * perStep * f.seqlen) / f.trainSeconds : 0,
      losses,
      firstLoss: mean(head),
      lastLoss: mean(tail),
      lossWindow: tail.length,
    },
    eval: r.eval
      ? {
          file: r.eval.file,
          set: r.eval.set,
          seqlen: f.evalSeqlen,
          windows: f.after?.windows ?? 0,
          before: f.state.before!,
          after: f.after!.ppl,
          merged: f.mergedPpl,
          periodic: f.state.periodic,
        }
      : null,
    merge: f.merge,
    backend: activeBackend()?.name ?? 'unknown',
    seconds: (performance.now() - f.tStart) / 1000,
    peakRssMB: platform().peakMemoryMB() ?? 0,
  };
}
