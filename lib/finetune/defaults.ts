/** The fine-tuning stage's defaults, in a module without tensor code (the CLI and the schema read it). */
import type { FinetuneOptions } from './options.js';

/**
 * THE defaults of the fine-tuning stage: `finetune()` applies them (all in one function, resolveFinetuneOptions in
 * lib/finetune/options.ts), the CLI shows them as its flag defaults, the experiment schema and runner fill them in
 * (lib/experiment/schema.ts, context.ts): one value each, on every route. Not here: `seqlen` (default: the model
 * context) and `totalSteps` (default: maxSteps).
 */
export const FINETUNE_DEFAULTS = {
  // LoRA: PEFT's defaults as the Wanda reference's LoRA script (lora_ft/finetune_lm.py) sets them
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targets: ['q_proj', 'v_proj'],
  lr: 1e-4,
  schedule: 'linear', // transformers' Trainer default
  warmupSteps: 0,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  maxGradNorm: 1,
  batchSize: 1,
  gradAccum: 1,
  seed: 0,
  checkpointEvery: 50,
  resume: true, // continue from <out>/checkpoint when there is one (running the same command again goes on)
  // Also write a merged checkpoint: masked re-applies the base's zeros, so a pruned model stays exactly as sparse (an
  // experiment evaluates this merge; the PEFT adapters are written whatever the value; 'none' skips the copy)
  merge: 'masked',
  mergeFormat: 'dense', // the merged checkpoint's format: dense, or compressed (compressed-tensors; masked merge only)
  dataField: 'text',
  overwrite: false,
  // held-out evaluation (when an evaluation file is given)
  eval: { set: 'wikitext2', every: 0, periodicWindows: 4, merged: true },
} as const satisfies Partial<Record<keyof FinetuneOptions, unknown>>;
