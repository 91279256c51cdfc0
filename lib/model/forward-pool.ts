/**
 * Forward passes sharded over a pool of `worker_threads`, each running its own single-threaded wasm backend: the
 * perplexity windows (lib/eval/perplexity.ts) and the layer loop's calibration windows (lib/prune/pipeline.ts: the
 * unpruned block's forward with its statistics, and the pruned block's forward).
 *
 * Why a pool and not only the wasm backend's own threads (lib/model/wasm-threads.ts): XNNPACK's pool splits the
 * matMuls, but about a quarter of the forward is in kernels tfjs-backend-wasm runs on one thread (softmax, the
 * loss's exp, slices, unstack, elementwise ops), and each threaded matMul ends in a barrier. Windows are independent,
 * so N workers with one thread each keep N cores busy on whole forwards instead. Measured: docs/benchmarks.md.
 *
 * Results do not depend on the worker count. Evaluation: the windows are cut into the same batches as in-process
 * ([i, i + batchSize)), each batch runs whole in one worker, the losses come back per window and the caller sums
 * them in window order. Calibration: each input tensor runs whole in one worker; the statistics come back as
 * per-sample reductions (lib/prune/stats.ts `reduceSamples`) that the caller folds in input order with the same
 * operations as in-process, and the outputs come back in input order. XNNPACK's results do not depend on its thread
 * count either, so both equal the in-process ones bit for bit (test/model/forward-pool.test.ts,
 * test/prune/pipeline.test.ts).
 *
 * The worker is started by the platform layer (`Platform.startForwardWorker`; in Node lib/node/forward-worker.ts, a
 * worker thread that answers with `forwardWorkerHandler`); where there is none, everything runs in-process. For evaluation it receives the model's weights once (float32
 * copies) and each worker holds a full copy: `poolWorkers` uses the pool only when the copies fit in a quarter of
 * the free memory (affordableWorkers: about 4 bytes of worker memory per byte of weights sent). For calibration it receives one block per pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import { INPUT_GROUP, LINEAR_NAMES, linearShape, type LinearName, type NormKey } from './architecture.js';
import { activeBackend, type Kernels } from './backend.js';
import type { LlamaConfig } from './config.js';
import { LlamaModel, disposeBlock, linearParts, wholeWT, type BlockWeights, type Linear } from './llama.js';
import { hasPlatform, platform, type PoolWorker } from '../platform/index.js';

/** A statistic's name (lib/prune/stats.ts StatName) and one sample's reductions of it (SampleReductions there). */
type StatName = string;
type SampleReductions = Partial<Record<string, Float32Array>>;
/** What the worker side needs from the layers above the model (lib/eval/perplexity.ts, lib/prune/stats.ts). */
export interface WorkerDeps {
  windowLosses(model: LlamaModel, windows: number[][]): Promise<number[]>;
  reduceSamples(input: tf.Tensor3D, needs: ReadonlySet<StatName>): SampleReductions[];
}

type Worker = PoolWorker;
const freemem = (): number => platform().freeMemory();

interface ArrayOf {
  data: Float32Array;
  shape: number[];
}
interface BlockSnapshot {
  norms: Partial<Record<NormKey, ArrayOf>>;
  linears: Record<string, { wT: ArrayOf; bias: ArrayOf | null }>;
}
/** Everything a worker needs to rebuild the model: the config and float32 copies of every weight. */
export interface ModelSnapshot {
  config: LlamaConfig;
  embed: ArrayOf;
  finalNorm: ArrayOf;
  lmHeadT: ArrayOf;
  blocks: BlockSnapshot[];
}

/** One calibration pass of a block over some inputs: with `needs` (input group -> statistics) the statistics'
 * per-sample reductions of each input come back, with `outputs` the block's outputs. */
interface BlockRequest {
  kind: 'block';
  layer: number;
  block: BlockSnapshot;
  inputs: ArrayOf[];
  needs: Record<string, StatName[]> | null;
  outputs: boolean;
}
export type Request =
  | { kind: 'init'; config: LlamaConfig; snapshot: ModelSnapshot | null; kernels: Kernels | null }
  | { kind: 'batch'; windows: number[][] }
  | BlockRequest;
type BlockReply = { kind: 'block'; outputs: ArrayOf[] | null; reductions: Record<string, SampleReductions[]>[] | null };
export type Reply = { kind: 'ready'; backend: string } | { kind: 'losses'; losses: number[] } | BlockReply | { kind: 'error'; message: string };

/** A float32 copy of t that owns its buffer (a view into a backend's heap would be cloned whole by postMessage). */
async function arrayOf(t: tf.Tensor): Promise<ArrayOf> {
  const data = (await t.data()) as Float32Array;
  return { data: data.byteLength === data.buffer.byteLength ? data : data.slice(), shape: t.shape };
}

async function blockSnapshot(b: BlockWeights): Promise<BlockSnapshot> {
  const linears: BlockSnapshot['linears'] = {};
  for (const n of LINEAR_NAMES) {
    const l = b.linears[n];
    linears[n] = { wT: await arrayOf(wholeWT(l, n)), bias: l.bias ? await arrayOf(l.bias) : null }; // wasm: never chunked
  }
  const norms: BlockSnapshot['norms'] = {};
  for (const [key, t] of Object.entries(b.norms) as [NormKey, tf.Tensor1D][]) norms[key] = await arrayOf(t);
  return { norms, linears };
}

/** Float32 copies of a resident model's weights (throws when a block or the head is not loaded). */
export async function snapshotModel(model: LlamaModel): Promise<ModelSnapshot> {
  if (!model.lmHeadT) throw new Error('forward pool: the model was loaded without lm_head');
  const blocks: BlockSnapshot[] = [];
  for (const [i, b] of model.blocks.entries()) {
    if (!b) throw new Error(`forward pool: block ${i} is not loaded`);
    blocks.push(await blockSnapshot(b));
  }
  return {
    config: model.config,
    embed: await arrayOf(model.embedTable),
    finalNorm: await arrayOf(model.finalNorm),
    lmHeadT: await arrayOf(model.lmHeadT),
    blocks,
  };
}

/** Bytes of float32 weights a worker holds for this model (embedding, blocks and head). */
export function modelBytes(model: LlamaModel): number {
  let n = model.embedTable.size + model.finalNorm.size + (model.lmHeadT?.size ?? 0);
  for (const b of model.blocks) {
    if (!b) continue;
    for (const t of Object.values(b.norms)) n += t.size;
    for (const name of LINEAR_NAMES) n += linearParts(b.linears[name]).reduce((a, p) => a + p.size, 0) + (b.linears[name].bias?.size ?? 0);
  }
  return 4 * n;
}

/**
 * The workers a caller asks for: `explicit` when given, else the started backend's thread count where the kernels
 * shard windows over workers (`Kernels.windows` 'workers': wasm), else 1 (in-process).
 */
export function wantedWorkers(k: Kernels, explicit?: number): number {
  if (!hasPlatform() || !platform().startForwardWorker) return 1; // no worker threads here: in-process
  return explicit ?? (k.windows === 'workers' ? (activeBackend()?.threads ?? 1) : 1);
}

/**
 * Memory a worker takes per byte of float32 weights it is sent: the structured-clone copy in its JS heap, the copy
 * in its wasm heap (which never shrinks) and the working copies of a block's forward. Measured on the 13B shape
 * (bench/scale.ts, 4 layers, 2 workers): peak RSS 14.8 GB with the pool against 5.6 GB in-process, about 3.6 bytes
 * per byte of the 1.27 GB block per worker; 4 keeps a margin.
 */
const WORKER_COPIES = 4;

/**
 * The most workers (at most `wanted`) whose memory fits in a quarter of the free memory (`freeBytes`, default the
 * system's) beside `sharedBytes`; 0 (run in-process) below 2. The pool must never be what makes a model too large
 * for the machine: in-process, memory is bounded by one block (docs/scaling.md, "Larger than RAM").
 */
export function affordableWorkers(wanted: number, weightBytesPerWorker: number, sharedBytes = 0, freeBytes = freemem()): number {
  const budget = freeBytes / 4 - sharedBytes;
  const n = Math.min(wanted, Math.floor(budget / (WORKER_COPIES * Math.max(1, weightBytesPerWorker))));
  return n >= 2 ? n : 0;
}

/**
 * How many workers to use for `batches` batches of this model with `threads` cores available: min(threads, batches),
 * or 0 (evaluate in-process) when that is below 2, when a block or the head is not resident, or fewer when the
 * workers' copies of the weights would not fit (affordableWorkers).
 */
export function poolWorkers(model: LlamaModel, batches: number, threads: number, freeBytes = freemem()): number {
  const n = Math.min(threads, batches);
  if (n < 2 || !model.lmHeadT || model.blocks.some((b) => b === null)) return 0;
  return affordableWorkers(n, modelBytes(model), 0, freeBytes);
}

/**
 * How many workers the layer loop's calibration forwards should use: min(threads, inputs), or 0 (in-process) below
 * 2, when a statistic cannot be folded from reductions (SparseGPT's Hessian, the ADMM update's Gram matrix), or fewer when the workers' copies of a
 * block beside the inputs (sent and returned) would not fit (affordableWorkers).
 */
export function calibrationWorkers(
  c: LlamaConfig,
  inputs: readonly tf.Tensor3D[],
  needs: Iterable<ReadonlySet<StatName>>,
  threads: number,
  freeBytes = freemem(),
): number {
  const n = Math.min(threads, inputs.length);
  if (n < 2) return 0;
  for (const s of needs) if (s.has('hessian') || s.has('gram')) return 0; // stats.ts MATRIX_STATS
  let blockValues = 0;
  for (const name of LINEAR_NAMES) blockValues += linearShape(c, name)[0] * linearShape(c, name)[1];
  const inputBytes = inputs.reduce((a, x) => a + 4 * x.size, 0);
  return affordableWorkers(n, 4 * blockValues, 2 * inputBytes, freeBytes);
}

/** A started pool (always `close` it). */
export class ForwardPool {
  /** What each worker runs on, one line each (e.g. 'backend wasm (SIMD, single-threaded)'), once started. */
  readonly backends: string[] = [];

  private constructor(private readonly workers: Worker[]) {}

  /** Start `n` workers holding the model's weights, for `losses` (resolves once every worker has built it). */
  static async forModel(model: LlamaModel, n: number): Promise<ForwardPool> {
    const snapshot = await snapshotModel(model);
    return ForwardPool.start(n, { kind: 'init', config: model.config, snapshot, kernels: model.kernels });
  }

  /**
   * Start `n` workers that run blocks of a model of config `c` handed to them per pass, for `blockPass`, with the
   * caller's kernel choices (the attention must be the caller's for identical results).
   */
  static async forBlocks(c: LlamaConfig, n: number, kernels: Kernels | null = null): Promise<ForwardPool> {
    return ForwardPool.start(n, { kind: 'init', config: c, snapshot: null, kernels });
  }

  private static async start(n: number, init: Request): Promise<ForwardPool> {
    const workers: Worker[] = [];
    const pool = new ForwardPool(workers);
    try {
      for (let i = 0; i < n; i++) {
        const w = platform().startForwardWorker!();
        w.on('error', () => {}); // reported through the pending request (ask); never an uncaught 'error' event
        workers.push(w);
      }
      const ready = await Promise.all(workers.map((w) => ask(w, init, 'ready')));
      for (const r of ready) pool.backends.push((r as Extract<Reply, { kind: 'ready' }>).backend);
      return pool;
    } catch (e) {
      await pool.close();
      throw e;
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Per-window losses of every batch, in order (`result[k]` are the losses of `batches[k]`). Each worker takes the
   * next batch when it finishes one; `onBatch(k)` is called as batch k completes.
   */
  async losses(batches: number[][][], onBatch?: (k: number) => void): Promise<number[][]> {
    const out: number[][] = new Array(batches.length);
    let next = 0;
    const drain = async (w: Worker): Promise<void> => {
      while (next < batches.length) {
        const k = next++;
        const r = await ask(w, { kind: 'batch', windows: batches[k]! }, 'losses');
        out[k] = (r as Extract<Reply, { kind: 'losses' }>).losses;
        onBatch?.(k);
      }
    };
    await Promise.all(this.workers.map(drain));
    return out;
  }

  /**
   * Block `layer` (weights `block`) over every input [batch, seq, hidden], the inputs split into one contiguous
   * share per worker. With `needs` (input group -> statistics to reduce) returns each input's per-group, per-sample
   * reductions; with `outputs` the block's outputs (new tensors, the caller's); both in input order.
   */
  async blockPass(
    layer: number,
    block: BlockWeights,
    inputs: readonly tf.Tensor3D[],
    needs: ReadonlyMap<string, ReadonlySet<StatName>> | null,
    outputs: boolean,
  ): Promise<{ outputs: tf.Tensor3D[] | null; reductions: Map<string, SampleReductions[]>[] | null }> {
    const snapshot = await blockSnapshot(block);
    const arrays = await Promise.all(inputs.map(arrayOf));
    const per = Math.ceil(arrays.length / this.workers.length);
    const need = needs ? Object.fromEntries([...needs].map(([g, s]) => [g, [...s]])) : null;
    const replies = await Promise.all(
      this.workers.map((w, i) => {
        const share = arrays.slice(i * per, (i + 1) * per);
        const req: BlockRequest = { kind: 'block', layer, block: snapshot, inputs: share, needs: need, outputs };
        return share.length === 0 ? null : (ask(w, req, 'block') as Promise<BlockReply>);
      }),
    );
    const done = replies.filter((r): r is BlockReply => r !== null);
    return {
      outputs: outputs ? done.flatMap((r) => r.outputs!.map((a) => tensorOf<tf.Tensor3D>(a))) : null,
      reductions: needs ? done.flatMap((r) => r.reductions!.map((m) => new Map(Object.entries(m)))) : null,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Send one request and wait for its reply of kind `want` (an error reply, a worker error or exit rejects). */
function ask(w: Worker, req: Request, want: Reply['kind']): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const done = (): void => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    };
    const onMessage = (r: Reply): void => {
      done();
      if (r.kind === want) resolve(r);
      else reject(new Error(r.kind === 'error' ? `forward pool worker: ${r.message}` : `forward pool: unexpected reply ${r.kind}`));
    };
    const onError = (e: Error): void => {
      done();
      reject(e);
    };
    const onExit = (code: number): void => {
      done();
      reject(new Error(`forward pool worker exited with code ${code}`));
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.postMessage(req);
  });
}

// ---- the worker side ----

function tensorOf<T extends tf.Tensor>(a: ArrayOf): T {
  return tf.tensor(a.data, a.shape, 'float32') as T;
}

function blockFromSnapshot(b: BlockSnapshot): BlockWeights {
  const linears = {} as Record<LinearName, Linear>;
  for (const n of LINEAR_NAMES) {
    const l = b.linears[n]!;
    linears[n] = { wT: tensorOf<tf.Tensor2D>(l.wT), bias: l.bias ? tensorOf<tf.Tensor1D>(l.bias) : null };
  }
  const norms: BlockWeights['norms'] = {};
  for (const [key, a] of Object.entries(b.norms) as [NormKey, ArrayOf][]) norms[key] = tensorOf<tf.Tensor1D>(a);
  return { norms, linears };
}

function modelFromSnapshot(s: ModelSnapshot, kernels: Kernels | null): LlamaModel {
  const blocks = s.blocks.map(blockFromSnapshot);
  return new LlamaModel(s.config, tensorOf<tf.Tensor2D>(s.embed), tensorOf<tf.Tensor1D>(s.finalNorm), tensorOf<tf.Tensor2D>(s.lmHeadT), blocks, kernels);
}

/** A model without weights of its own, to run blocks handed to it (RoPE tables and causal mask only). */
function blockRunner(c: LlamaConfig, kernels: Kernels | null): LlamaModel {
  return new LlamaModel(c, tf.zeros([1, c.hiddenSize]), tf.ones([c.hiddenSize]), null, new Array<null>(c.numLayers).fill(null), kernels);
}

/** One calibration pass in a worker (see BlockRequest). */
function runBlockPass(runner: LlamaModel, req: BlockRequest, reduce: WorkerDeps['reduceSamples']): BlockReply {
  const block = blockFromSnapshot(req.block);
  const outputs: ArrayOf[] = [];
  const reductions: Record<string, SampleReductions[]>[] = [];
  try {
    for (const a of req.inputs) {
      const per: Record<string, SampleReductions[]> = {};
      const x = tensorOf<tf.Tensor3D>(a);
      try {
        const needs = req.needs;
        const tap = needs
          ? (name: LinearName, input: tf.Tensor3D): void => {
              const g = INPUT_GROUP[name];
              if (needs[g] && !per[g]) per[g] = reduce(input, new Set(needs[g])); // q/k/v and gate/up share their input
            }
          : undefined;
        const out = runner.block(req.layer, x, tap, block);
        if (req.outputs) outputs.push({ data: (out.dataSync() as Float32Array).slice(), shape: out.shape });
        out.dispose();
      } finally {
        x.dispose();
      }
      reductions.push(per);
    }
  } finally {
    disposeBlock(block);
  }
  return { kind: 'block', outputs: req.outputs ? outputs : null, reductions: req.needs ? reductions : null };
}

/**
 * The worker side of the protocol: answers one request at a time on a worker whose backend is started (`note` names
 * it). The platform layer's worker entry passes the layers above the model in `deps` and posts each reply back.
 */
export function forwardWorkerHandler(deps: WorkerDeps, note: string): (req: Request) => Promise<Reply> {
  let model: LlamaModel | null = null;
  return async (req) => {
    try {
      if (req.kind === 'init') {
        model = req.snapshot ? modelFromSnapshot(req.snapshot, req.kernels) : blockRunner(req.config, req.kernels);
        return { kind: 'ready', backend: note };
      }
      if (!model) throw new Error(`${req.kind} before init`);
      if (req.kind === 'batch') return { kind: 'losses', losses: await deps.windowLosses(model, req.windows) };
      return runBlockPass(model, req, deps.reduceSamples);
    } catch (e) {
      return { kind: 'error', message: (e as Error).message };
    }
  };
}
