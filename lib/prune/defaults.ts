/**
 * THE defaults of the pruning stage (as the reference: 128 calibration windows, seed 0; seqlen: the model context).
 * `prune()` applies them, the CLI's prune flags show them, the experiment schema fills them in.
 */
export const PRUNE_DEFAULTS = {
  sparsity: 0.5, // when neither given nor implied by N:M (the CLI's default; an experiment lists its own)
  nsamples: 128,
  seed: 0,
  batchSize: 1, // calibration windows per forward: speed and memory only, results identical for any value
  calibrationField: 'text',
  overwrite: false,
  resume: false, // continue the killed run staged in <out>.partial (lib/prune/resume.ts)
  resumable: true, // keep a resume state after every block
  resumeActivations: 'F32', // stored activations: F32 (exact) or 'input' (the checkpoint's dtype, half the disk)
} as const;
