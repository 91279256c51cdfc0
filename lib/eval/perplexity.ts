/**
 * Perplexity, docs/methods.md section 4: text tokenized once (one BOS at the start), non-overlapping windows of
 * `seqlen` tokens (tail dropped), per window the mean cross-entropy of tokens 1..seqlen-1 given their prefix,
 * ppl = exp(mean over windows).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, DataError, optionKey, type OptionName } from '../errors.js';
import type { LlamaModel, ForwardOptions } from '../model/llama.js';
import type { TextTokenizer } from '../model/tokenizer-types.js';
import { readTexts } from '../data/sources.js';
import { EVAL_DEFAULTS } from './defaults.js';
import type { WindowPerplexity } from './results.js';
import { kernels } from '../model/backend.js';
import { ForwardPool, poolWorkers, wantedWorkers } from '../model/forward-pool.js';

export interface PerplexityOptions {
  seqlen: number; // window length; the reference uses the model context
  batchSize?: number; // windows per forward (default EVAL_DEFAULTS.batchSize); results do not depend on it
  maxWindows?: number; // score only the first N windows (quick checks; the reference scores all)
  onProgress?: (done: number, total: number) => void;
  forward?: ForwardOptions; // e.g. LoRA adapters
  optionName?: OptionName; // how messages name the options (default the library's names: seqlen)
  /**
   * Worker threads to shard the windows over (lib/model/forward-pool.ts); 1 evaluates in-process. Default: the active backend's
   * thread count when its kernels say `windows: 'workers'` (wasm), else 1. Results do not depend on it.
   */
  workers?: number;
}

/**
 * Mean next-token cross-entropy of each sequence: ids [b][s] -> b numbers (mean over the s-1 predicted tokens).
 * Sums in float32 per window as torch's CrossEntropyLoss does; the mean over windows is taken in float64.
 */
export async function windowLosses(model: LlamaModel, ids: number[][], forward: ForwardOptions = {}): Promise<number[]> {
  const b = ids.length;
  const s = ids[0]!.length;
  const v = model.config.vocabSize;
  const losses = tf.tidy(() => {
    const logits = model.logits(ids, forward); // [b, s, vocab]
    // every row's logsumexp (rows are independent: the last position's, unused, costs 1/s more and saves copying
    // the other s-1 rows out), then the rows that predict tokens 1..s-1
    const lse = tf.slice(tf.reshape(tf.logSumExp(tf.reshape(logits, [b * s, v]), 1), [b, s]), [0, 0], [b, s - 1]);
    const target = new Int32Array(b * (s - 1));
    for (let i = 0; i < b; i++) for (let j = 1; j < s; j++) target[i * (s - 1) + j - 1] = (i * s + j - 1) * v + ids[i]![j]!;
    const picked = tf.reshape(tf.gather(tf.reshape(logits, [-1]), tf.tensor1d(target, 'int32')), [b, s - 1]);
    const nll = tf.sub(lse, picked);
    return tf.mean(nll, 1);
  });
  try {
    return Array.from(await losses.data()); // one read per forward; no synchronous read (WebGPU has none)
  } finally {
    losses.dispose(); // the tidy's result is ours
  }
}

/** Split token ids into floor(n / seqlen) windows. */
export function makeWindows(ids: number[], seqlen: number): number[][] {
  const n = Math.floor(ids.length / seqlen);
  const out: number[][] = [];
  for (let i = 0; i < n; i++) out.push(ids.slice(i * seqlen, (i + 1) * seqlen));
  return out;
}

/** Perplexity over windows of already tokenized text. */
export async function perplexityOfIds(model: LlamaModel, ids: number[], options: PerplexityOptions): Promise<WindowPerplexity> {
  const { seqlen } = options;
  const name = options.optionName ?? optionKey;
  if (!Number.isInteger(seqlen) || seqlen < 2) throw new ConfigError(`${name('seqlen')} must be an integer >= 2, got ${seqlen}`);
  if (seqlen > model.config.maxPositions) {
    throw new ConfigError(`${name('seqlen')} ${seqlen} exceeds the model context (max_position_embeddings = ${model.config.maxPositions})`);
  }
  const batch = options.batchSize ?? EVAL_DEFAULTS.batchSize;
  if (!Number.isInteger(batch) || batch < 1) throw new ConfigError(`${name('batchSize')} must be a positive integer, got ${batch}`);
  const { maxWindows } = options;
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new ConfigError(`${name('maxWindows')} must be a positive integer, got ${maxWindows}`);
  }
  let windows = makeWindows(ids, seqlen);
  if (maxWindows !== undefined) windows = windows.slice(0, maxWindows);
  if (windows.length === 0) throw new DataError(`text of ${ids.length} tokens is shorter than one window of ${seqlen}`);
  const t0 = performance.now();
  options.onProgress?.(0, windows.length);
  const losses = await allLosses(model, windows, batch, options);
  let sum = 0;
  for (const l of losses) sum += l; // in window order, whoever computed them
  const seconds = (performance.now() - t0) / 1000;
  const tokens = windows.length * seqlen;
  return {
    ppl: Math.exp(sum / windows.length),
    windows: windows.length,
    tokens,
    seqlen,
    seconds,
    tokensPerSecond: tokens / seconds,
  };
}

/** Loss of every window, in order: in-process, or over a pool of workers (same batches, same losses). */
async function allLosses(model: LlamaModel, windows: number[][], batch: number, options: PerplexityOptions): Promise<number[]> {
  const batches: number[][][] = [];
  for (let i = 0; i < windows.length; i += batch) batches.push(windows.slice(i, i + batch));
  const done = (k: number): number => Math.min((k + 1) * batch, windows.length);
  const wanted = wantedWorkers(model.kernels ?? kernels(), options.workers);
  const workers = options.forward ? 0 : poolWorkers(model, batches.length, wanted); // adapters stay in-process
  if (workers === 0) {
    const out: number[] = [];
    for (const [k, b] of batches.entries()) {
      out.push(...(await windowLosses(model, b, options.forward)));
      options.onProgress?.(done(k), windows.length);
    }
    return out;
  }
  let pool: ForwardPool;
  try {
    pool = await ForwardPool.forModel(model, workers);
  } catch (e) {
    // the environment cannot start the workers (a bundled build, a missing loader): the in-process loop still works
    process.emitWarning(`perplexity: worker pool unavailable (${(e as Error).message}); evaluating in-process`);
    return allLosses(model, windows, batch, { ...options, workers: 1 });
  }
  try {
    let finished = 0;
    const per = await pool.losses(batches, (k) => options.onProgress?.((finished += done(k) - k * batch), windows.length));
    return per.flat();
  } finally {
    await pool.close();
  }
}

/** The perplexity sets of the reference. */
export type PerplexitySet = 'wikitext2' | 'c4';
export const PERPLEXITY_SETS: readonly PerplexitySet[] = ['wikitext2', 'c4'];

/**
 * Token ids of an evaluation set, as the reference builds them:
 * - wikitext2: rows joined with "\n\n", tokenized once;
 * - c4: the first 1100 documents joined with " ", tokenized, cut to 256 x seqlen tokens.
 */
export async function evaluationIds(set: PerplexitySet, file: string, tokenizer: TextTokenizer, seqlen: number): Promise<number[]> {
  return evaluationCut(set, tokenizer.encode(await evaluationText(set, file), { addSpecialTokens: true }), seqlen);
}

/** The text an evaluation set tokenizes (see evaluationIds). */
export async function evaluationText(set: PerplexitySet, file: string): Promise<string> {
  if (set === 'wikitext2') return (await readTexts(file)).join('\n\n');
  return (await readTexts(file, { limit: 1100 })).join(' ');
}

/** The ids an evaluation set scores, from the ids of its whole text (c4: the first 256 x seqlen). */
export function evaluationCut(set: PerplexitySet, ids: number[], seqlen: number): number[] {
  return set === 'c4' ? ids.slice(0, 256 * seqlen) : ids;
}
