/**
 * THE defaults of the pruning stage (as the reference: 128 calibration windows, seed 0; seqlen: the model context).
 * `prune()` applies them, the CLI's prune flags show them, the experiment schema fills them in: one value each.
 */
export const PRUNE_DEFAULTS = {
  structure: 'unstructured', // or 'N:M' (2:4, 4:8)
  sparsity: 0.5, // when neither given nor implied by N:M (the CLI's default; an experiment lists its own)
  nsamples: 128,
  seed: 0,
  // Calibration windows per forward: speed and memory only, results identical for any value. 1 on both routes (the
  // experiment schema's was 8): each window adds 3 x heads x seqlen^2 + 25 x seqlen x hidden float32 of work to a
  // forward, 2.4 GB for LLaMA-7B at seqlen 2048, so 8 would hold ~30 GB instead of ~13 GB (bench/calibration-memory.ts)
  batchSize: 1,
  calibrationField: 'text',
  format: 'dense', // output checkpoint format: dense, or compressed (compressed-tensors)
  overwrite: false,
  resume: false, // continue the killed run staged in <out>.partial (lib/prune/resume.ts)
  resumable: true, // keep a resume state after every block
  resumeActivations: 'F32', // stored activations: F32 (exact) or 'input' (the checkpoint's dtype, half the disk)
} as const;
