/**
 * The messages between the page (main.ts) and the pruning worker (worker.ts). The page sends one `run`; the worker
 * answers with `stage` / `progress` / `estimate` lines while it works, then one `done` or `error`.
 */

/** Where an input comes from: a URL (a folder URL for the model), or local files (the model: every file of its folder). */
export type InputSource = { kind: 'url'; url: string } | { kind: 'files'; files: File[] };

export type BackendChoice = 'auto' | 'webgpu' | 'wasm';
export type OutputFormat = 'dense' | 'compressed';

/** One run: the options of the CLI's `prune` and `eval --ppl` that the page offers. */
export interface RunParams {
  method: string;
  sparsity: number;
  structure: string; // 'unstructured' or 'N:M'
  nsamples: number;
  seqlen: number;
  windows: number; // perplexity: the first `windows` windows of `seqlen` tokens
  seed: number;
  backend: BackendChoice;
  format: OutputFormat;
  methodOptions: Record<string, unknown>;
  layerwise: string | null; // 'owl' or none
  refine: string | null; // 'dsnot' or none
}

export interface RunInputs {
  model: InputSource;
  calibration: InputSource | null; // magnitude needs none
  eval: InputSource;
}

export type ToWorker = { type: 'run'; params: RunParams; inputs: RunInputs };

/** The line `<pre id="result">` shows at the end (the URL contract). */
export type RunResult =
  | { backend: string; adapter: string; pplDense: number; pplPruned: number; sparsity: number; seconds: number }
  | { error: string };

export interface BlockBar {
  layer: number;
  sparsity: number;
  allocated: number;
}

export interface MemoryEstimate {
  needBytes: number;
  limitBytes: number;
  largestTensorBytes: number;
  bindingLimitBytes: number | null; // webgpu: the adapter's maxStorageBufferBindingSize
  fits: boolean;
  lines: string[]; // how the figures were found, for the page
}

export type Stage = 'backend' | 'inputs' | 'estimate' | 'dense' | 'prune' | 'pruned' | 'package';

export type FromWorker =
  | { type: 'ready'; methods: string[]; layerwise: string[]; refiners: string[] }
  | { type: 'stage'; stage: Stage; note: string }
  | { type: 'progress'; stage: Stage; done: number; total: number; eta: number | null }
  | { type: 'estimate'; estimate: MemoryEstimate }
  | { type: 'block'; bar: BlockBar }
  | { type: 'done'; result: RunResult; blocks: BlockBar[]; report: unknown; zip: Uint8Array; zipName: string }
  | { type: 'error'; message: string };
