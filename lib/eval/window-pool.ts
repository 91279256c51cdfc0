/**
 * Perplexity windows sharded over a pool of `worker_threads`, each running its own single-threaded wasm backend
 * (issue 9: "a pool of worker_threads, each with its own single-threaded backend, sharding the evaluation windows").
 *
 * Why a pool and not only the wasm backend's own threads (lib/model/wasm-threads.ts): XNNPACK's pool splits the
 * matMuls, but about a quarter of the evaluation forward is in kernels tfjs-backend-wasm runs on one thread (softmax,
 * exp of the log-softmax, slices, unstack, elementwise ops), and each threaded matMul ends in a barrier. Windows are
 * independent, so N workers with one thread each keep N cores busy on whole forwards instead. Measured here: see the
 * README's backends section (`npx tsx bench/eval.ts --compare-pool`).
 *
 * Results do not depend on the worker count: the windows are cut into the same batches as in-process
 * ([i, i + batchSize)), each batch runs whole in one worker on the same kernels, the losses come back per window and
 * the caller sums them in window order. (XNNPACK's results do not depend on its thread count either, so the pool's
 * losses equal the in-process ones bit for bit: test/eval/window-pool.test.ts.)
 *
 * The worker is this same module started as a worker thread (from dist/ as .js; from the TypeScript sources through
 * tsx's loader, which tests and benchmarks use). It receives the model's weights once (float32 copies, the model's
 * own layout), builds a `LlamaModel` from them and answers batches with `windowLosses`. Each worker holds a full copy
 * of the weights: `poolWorkers` uses the pool only when the copies fit in a quarter of the free memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { LINEAR_NAMES, type LinearName } from '../model/architecture.js';
import type { LlamaConfig } from '../model/config.js';
import { LlamaModel, type BlockWeights, type Linear } from '../model/llama.js';

const ROLE = 'llm-prune:window-pool';

interface ArrayOf {
  data: Float32Array;
  shape: number[];
}
interface BlockSnapshot {
  inputNorm: ArrayOf;
  postNorm: ArrayOf;
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

type Request = { kind: 'init'; snapshot: ModelSnapshot } | { kind: 'batch'; id: number; windows: number[][] };
type Reply = { kind: 'ready'; backend: string } | { kind: 'losses'; id: number; losses: number[] } | { kind: 'error'; id: number | null; message: string };

async function arrayOf(t: tf.Tensor): Promise<ArrayOf> {
  return { data: (await t.data()) as Float32Array, shape: t.shape };
}

/** Float32 copies of a resident model's weights (throws when a block or the head is not loaded). */
export async function snapshotModel(model: LlamaModel): Promise<ModelSnapshot> {
  if (!model.lmHeadT) throw new Error('window pool: the model was loaded without lm_head');
  const blocks: BlockSnapshot[] = [];
  for (const [i, b] of model.blocks.entries()) {
    if (!b) throw new Error(`window pool: block ${i} is not loaded`);
    const linears: BlockSnapshot['linears'] = {};
    for (const n of LINEAR_NAMES) {
      const l = b.linears[n];
      linears[n] = { wT: await arrayOf(l.wT), bias: l.bias ? await arrayOf(l.bias) : null };
    }
    blocks.push({ inputNorm: await arrayOf(b.inputNorm), postNorm: await arrayOf(b.postNorm), linears });
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
    n += b.inputNorm.size + b.postNorm.size;
    for (const name of LINEAR_NAMES) n += b.linears[name].wT.size + (b.linears[name].bias?.size ?? 0);
  }
  return 4 * n;
}

/**
 * How many workers to use for `batches` batches of this model with `threads` cores available: min(threads, batches),
 * or 0 (evaluate in-process) when that is below 2, when a block or the head is not resident, or when the workers'
 * copies of the weights would take more than a quarter of the free memory.
 */
export function poolWorkers(model: LlamaModel, batches: number, threads: number): number {
  const n = Math.min(threads, batches);
  if (n < 2 || !model.lmHeadT || model.blocks.some((b) => b === null)) return 0;
  return n * modelBytes(model) <= os.freemem() / 4 ? n : 0;
}

/**
 * How a worker is started: from dist/ this module's own .js file; from the TypeScript sources (tests, `tsx` benches)
 * a small bootstrap that registers tsx's ESM loader in the worker first (a worker does not inherit the loader).
 */
function startWorker(): Worker {
  const file = fileURLToPath(import.meta.url);
  // bundled into another file (esbuild), this module's URL is the bundle's: starting it would run the bundle's main
  if (!basename(file).startsWith('window-pool.')) throw new Error(`this module is bundled into ${basename(file)}`);
  if (!file.endsWith('.ts')) return new Worker(file, { workerData: { role: ROLE } });
  // tsx's ESM API (the .mjs build: its CommonJS build resolves the loader from the wrong folder)
  const api = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new Worker(boot, { eval: true, workerData: { role: ROLE } });
}

/** A started pool: `losses` evaluates batches of windows, `close` ends the workers (always call it). */
export class WindowPool {
  private constructor(private readonly workers: Worker[]) {}

  /** Start `n` workers and hand each the model (resolves once every worker has built it). */
  static async start(model: LlamaModel, n: number): Promise<WindowPool> {
    const snapshot = await snapshotModel(model);
    const workers: Worker[] = [];
    const pool = new WindowPool(workers);
    try {
      for (let i = 0; i < n; i++) {
        const w = startWorker();
        w.on('error', () => {}); // reported through the pending request (ask); never an uncaught 'error' event
        workers.push(w);
      }
      const ready = await Promise.all(workers.map((w) => ask(w, { kind: 'init', snapshot }, 'ready')));
      if (process.env['LLM_PRUNE_POOL_DEBUG']) console.error(ready);
      return pool;
    } catch (e) {
      await pool.close();
      throw e;
    }
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
        const r = await ask(w, { kind: 'batch', id: k, windows: batches[k]! }, 'losses');
        out[k] = (r as Extract<Reply, { kind: 'losses' }>).losses;
        onBatch?.(k);
      }
    };
    await Promise.all(this.workers.map(drain));
    return out;
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
      else reject(new Error(r.kind === 'error' ? `window pool worker: ${r.message}` : `window pool: unexpected reply ${r.kind}`));
    };
    const onError = (e: Error): void => {
      done();
      reject(e);
    };
    const onExit = (code: number): void => {
      done();
      reject(new Error(`window pool worker exited with code ${code}`));
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

function modelFromSnapshot(s: ModelSnapshot): LlamaModel {
  const blocks: BlockWeights[] = s.blocks.map((b) => {
    const linears = {} as Record<LinearName, Linear>;
    for (const n of LINEAR_NAMES) {
      const l = b.linears[n]!;
      linears[n] = { wT: tensorOf<tf.Tensor2D>(l.wT), bias: l.bias ? tensorOf<tf.Tensor1D>(l.bias) : null };
    }
    return { inputNorm: tensorOf<tf.Tensor1D>(b.inputNorm), postNorm: tensorOf<tf.Tensor1D>(b.postNorm), linears };
  });
  return new LlamaModel(s.config, tensorOf<tf.Tensor2D>(s.embed), tensorOf<tf.Tensor1D>(s.finalNorm), tensorOf<tf.Tensor2D>(s.lmHeadT), blocks);
}

async function serve(): Promise<void> {
  const port = parentPort!;
  // imported here, not at the top: the main thread must not pull the evaluator in through this module
  const { initBackend } = await import('../model/backend.js');
  const { windowLosses } = await import('./perplexity.js');
  const info = await initBackend('wasm', { threads: 1 });
  let model: LlamaModel | null = null;
  port.on('message', (req: Request) => {
    void (async (): Promise<Reply> => {
      try {
        if (req.kind === 'init') {
          model = modelFromSnapshot(req.snapshot);
          return { kind: 'ready', backend: `${info.note}; simd ${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))}` };
        }
        if (!model) throw new Error('batch before init');
        return { kind: 'losses', id: req.id, losses: await windowLosses(model, req.windows) };
      } catch (e) {
        return { kind: 'error', id: req.kind === 'batch' ? req.id : null, message: (e as Error).message };
      }
    })().then((r) => port.postMessage(r));
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) void serve();
