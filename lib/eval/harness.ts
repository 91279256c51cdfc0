/**
 * The zero-shot multiple-choice harness (docs/methods.md section 5), written against an abstract scorer so that any
 * model plugs in: tokenize every (context, continuation) pair exactly as lm-evaluation-harness does, ask the scorer
 * for the summed log-probability of each continuation, and turn those into acc / acc_norm with lm-eval's standard
 * errors.
 */
import { DataError, ConfigError, LlmPruneError } from '../errors.js';
import type { TextTokenizer } from '../model/tokenizer-types.js';
import type { AccuracyMetric, MeanContribution, TaskResult, ZeroShotResults } from './results.js';
import { pyRstrip, type LoadedTask, type TaskItem } from './tasks.js';
import { EVAL_DEFAULTS } from './defaults.js';

/** One continuation to score: token ids of the context and of the continuation (never empty). */
export interface Request {
  context: number[];
  continuation: number[];
}

/** The scorer's answer for one request. */
export interface Score {
  /** Sum over the continuation's tokens of log p(token | everything before it), natural log. */
  logprob: number;
  /** Whether every continuation token is the argmax of its prediction (lm-eval's is_greedy; not used by acc). */
  greedy: boolean;
}

/**
 * Scores a batch of requests, answering in the same order. The requests of one item are adjacent in a batch (and
 * share their context when the task has one context), so a model can encode a shared prefix once. A model whose
 * context is shorter than a request should cut the context from the left as lm-eval does (see fitToContext).
 */
export type Scorer = (requests: Request[]) => Promise<Score[]>;

export interface EncodeOptions {
  /** Prepend the tokenizer's BOS id to every context. The reference ran without (add_special_tokens=False). */
  addBos?: boolean;
}

/**
 * Tokenize one (context, continuation) pair as lm-eval's `_encode_pair`: trailing whitespace of the context (Python
 * `rstrip`) moves to the front of the continuation; `context + continuation` and the context are encoded without
 * special tokens; the continuation's tokens are the whole's tokens after the context's count. With `addBos` the
 * BOS id is prepended to the context. An empty context is scored after a single BOS (or EOS when the tokenizer has
 * no BOS), as lm-eval's prefix token.
 */
export function encodePair(
  tokenizer: TextTokenizer,
  context: string,
  continuation: string,
  options: EncodeOptions = {},
): Request {
  return encodePairCached(tokenizer, context, continuation, options.addBos === true, new Map());
}

function encodePairCached(
  tokenizer: TextTokenizer,
  context: string,
  continuation: string,
  addBos: boolean,
  cache: Map<string, number[]>,
): Request {
  const encode = (text: string): number[] => {
    let ids = cache.get(text);
    if (ids === undefined) {
      ids = tokenizer.encode(text, { addSpecialTokens: false });
      cache.set(text, ids);
    }
    return ids;
  };
  if (continuation === '') throw new DataError(`empty continuation after context ${JSON.stringify(context)}`);
  if (context === '') {
    const prefix = tokenizer.bosId ?? tokenizer.eosId;
    if (prefix === null) {
      throw new DataError(`empty context before ${JSON.stringify(continuation)} and the tokenizer has no BOS or EOS token`);
    }
    return { context: [prefix], continuation: encode(continuation) };
  }
  // `context + continuation` is unchanged by moving the whitespace; only the context's own encoding loses it.
  const whole = encode(context + continuation);
  const contextIds = encode(pyRstrip(context));
  const continuationIds = whole.slice(contextIds.length);
  const bos = addBos ? tokenizer.bosId : null;
  if (addBos && bos === null) throw new ConfigError('addBos: the tokenizer has no BOS token');
  const fullContext = bos === null ? contextIds : [bos, ...contextIds];
  if (fullContext.length === 0) {
    throw new DataError(
      `context ${JSON.stringify(context)} is only whitespace: no token to predict ${JSON.stringify(continuation)} from (use addBos)`,
    );
  }
  if (continuationIds.length === 0) {
    throw new DataError(`continuation ${JSON.stringify(continuation)} adds no token to context ${JSON.stringify(context)}`);
  }
  return { context: fullContext, continuation: continuationIds };
}

/**
 * Cut a request's context from the left so that context + continuation is at most `maxLength + 1` tokens (the
 * model then reads at most `maxLength`: everything but the last token), as lm-eval's
 * `(context + continuation)[-(max_length + 1):]`. Throws when the continuation alone does not fit.
 */
export function fitToContext(request: Request, maxLength: number): Request {
  const { context, continuation } = request;
  if (continuation.length > maxLength) {
    throw new DataError(`continuation of ${continuation.length} tokens does not fit a model context of ${maxLength}`);
  }
  const keep = maxLength + 1 - continuation.length;
  return context.length <= keep ? request : { context: context.slice(context.length - keep), continuation };
}

/** Index of the first maximum (numpy `argmax`: ties go to the lower index). */
function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/** lm-eval `mean_stderr`: sample standard deviation (ddof = 1) over sqrt(n); null when n < 2. */
export function meanStderr(values: number[]): number | null {
  const n = values.length;
  if (n < 2) return null;
  const mu = values.reduce((a, b) => a + b, 0) / n;
  const ss = values.reduce((a, b) => a + (b - mu) ** 2, 0);
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}

/** Choices of an item: contexts and continuations broadcast against each other. */
function choicesOf(task: LoadedTask, item: TaskItem, index: number): { context: string; continuation: string }[] {
  const n = Math.max(item.contexts.length, item.continuations.length);
  const where = `${task.file}: item ${index + 1}`;
  for (const [field, list] of [['contexts', item.contexts], ['continuations', item.continuations]] as const) {
    if (list.length !== 1 && list.length !== n) {
      throw new DataError(`${where}: ${list.length} ${field} for ${n} choices (expected 1 or ${n})`);
    }
  }
  if (!Number.isInteger(item.gold) || item.gold < 0 || item.gold >= n) {
    throw new DataError(`${where}: gold ${item.gold} is out of range for ${n} choices`);
  }
  if (task.reportsAccNorm && (item.normLengths === null || item.normLengths.length !== n)) {
    throw new DataError(`${where}: task ${task.name} reports acc_norm but the item has no length for each of ${n} choices`);
  }
  return Array.from({ length: n }, (_, i) => ({
    context: (item.contexts.length === 1 ? item.contexts[0] : item.contexts[i]) as string,
    continuation: (item.continuations.length === 1 ? item.continuations[0] : item.continuations[i]) as string,
  }));
}

export interface EvaluateOptions {
  tasks: LoadedTask[];
  tokenizer: TextTokenizer;
  scorer: Scorer;
  /** Most requests per scorer call (default EVAL_DEFAULTS.taskBatchSize, 16); an item's choices are never split. */
  batchSize?: number;
  /** Score only the first N items of each task. */
  limit?: number;
  /** Prepend BOS to every context (default false, as the reference). */
  addBos?: boolean;
  /**
   * Metric each task contributes to the mean. `acc` (default): accuracy for all tasks, the paper's convention —
   * the Wanda paper's zero-shot tables (LLaMA-7B dense: HellaSwag 56.92, ARC-c 41.89, OBQA 34.40, mean 59.99) are
   * lm-eval `acc` for all seven tasks and their unweighted mean. `acc_norm`: acc_norm for the tasks that report
   * it (HellaSwag, ARC-e, ARC-c, OBQA), acc for the others, as some later papers do.
   */
  meanMetric?: AccuracyMetric;
  /** Called after every scorer batch with items scored so far and the total over all tasks. */
  onProgress?: (done: number, total: number) => void;
}

function positiveInteger(value: number | undefined, name: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new ConfigError(`${name}: ${value} is not a positive integer`);
  }
}

/** An item's encoded choices, adjacent in a scorer batch. */
interface EncodedItem {
  item: TaskItem;
  requests: Request[];
}

/**
 * Whole items from `items[start]` on until the next would overflow `batchSize` requests (a batch holds at least one
 * item, whatever its size). Returns the batch and the index after it.
 */
function nextBatch(
  task: LoadedTask,
  items: TaskItem[],
  start: number,
  batchSize: number,
  tokenizer: TextTokenizer,
  addBos: boolean,
): { batch: EncodedItem[]; next: number } {
  const batch: EncodedItem[] = [];
  let size = 0;
  let i = start;
  while (i < items.length) {
    const item = items[i] as TaskItem;
    const choices = choicesOf(task, item, i);
    if (batch.length > 0 && size + choices.length > batchSize) break;
    const cache = new Map<string, number[]>();
    const requests = choices.map(({ context, continuation }) => {
      try {
        return encodePairCached(tokenizer, context, continuation, addBos, cache);
      } catch (e) {
        if (e instanceof DataError) throw new DataError(`${task.file}: item ${i + 1}: ${e.message}`);
        throw e;
      }
    });
    batch.push({ item, requests });
    size += requests.length;
    i++;
  }
  return { batch, next: i };
}

/** Ask the scorer for a batch's log-probabilities, checking that it answered one number per request. */
async function scoreBatch(task: LoadedTask, batch: EncodedItem[], scorer: Scorer): Promise<number[][]> {
  const requests = batch.flatMap((b) => b.requests);
  const scores = await scorer(requests);
  if (!Array.isArray(scores) || scores.length !== requests.length) {
    throw new LlmPruneError(
      `scorer answered ${Array.isArray(scores) ? scores.length : typeof scores} scores for ${requests.length} requests`,
    );
  }
  let k = 0;
  return batch.map(({ requests: itemRequests }) => {
    const lls = itemRequests.map(() => (scores[k++] as Score).logprob);
    if (lls.some((x) => typeof x !== 'number' || Number.isNaN(x))) {
      throw new LlmPruneError(`scorer returned a log-probability that is not a number (task ${task.name}): ${lls.join(', ')}`);
    }
    return lls;
  });
}

/** acc and acc_norm of one task over `items`, batch by batch; `onBatch` gets the number of items each batch scored. */
async function evaluateTask(
  task: LoadedTask,
  items: TaskItem[],
  o: { tokenizer: TextTokenizer; scorer: Scorer; batchSize: number; addBos: boolean; onBatch: (items: number) => void },
): Promise<TaskResult> {
  if (items.length === 0) throw new DataError(`${task.file}: task ${task.name} has no items`);
  const correct: number[] = [];
  const correctNorm: number[] = [];
  for (let start = 0; start < items.length; ) {
    const { batch, next } = nextBatch(task, items, start, o.batchSize, o.tokenizer, o.addBos);
    const lls = await scoreBatch(task, batch, o.scorer);
    for (const [b, { item }] of batch.entries()) {
      const ll = lls[b] as number[];
      correct.push(argmax(ll) === item.gold ? 1 : 0);
      if (task.reportsAccNorm) {
        const lengths = item.normLengths as number[];
        correctNorm.push(argmax(ll.map((x, i) => x / (lengths[i] as number))) === item.gold ? 1 : 0);
      }
    }
    start = next;
    o.onBatch(batch.length);
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    task: task.name,
    displayName: task.displayName,
    file: task.file,
    n: items.length,
    acc: mean(correct),
    accStderr: meanStderr(correct),
    accNorm: task.reportsAccNorm ? mean(correctNorm) : null,
    accNormStderr: task.reportsAccNorm ? meanStderr(correctNorm) : null,
  };
}

/**
 * Evaluate zero-shot tasks: per task acc (argmax of summed log-probs), acc_norm (argmax of log-prob divided by
 * the choice's length in characters) where the task reports it, their lm-eval standard errors, and the mean over
 * the tasks of the metric chosen by `meanMetric`.
 */
export async function evaluateTasks(options: EvaluateOptions): Promise<ZeroShotResults> {
  const { tasks, tokenizer, scorer } = options;
  positiveInteger(options.batchSize, 'batchSize');
  positiveInteger(options.limit, 'limit');
  if (tasks.length === 0) throw new ConfigError('evaluateTasks: no tasks given');
  const batchSize = options.batchSize ?? EVAL_DEFAULTS.taskBatchSize;
  const addBos = options.addBos ?? EVAL_DEFAULTS.addBos;
  const meanMetric = options.meanMetric ?? EVAL_DEFAULTS.meanMetric;
  const counts = tasks.map((t) => Math.min(t.items.length, options.limit ?? Infinity));
  const total = counts.reduce((a, b) => a + b, 0);
  let done = 0;
  const onBatch = (items: number): void => {
    done += items;
    options.onProgress?.(done, total);
  };

  const results: TaskResult[] = [];
  for (const [t, task] of tasks.entries()) {
    results.push(await evaluateTask(task, task.items.slice(0, counts[t]), { tokenizer, scorer, batchSize, addBos, onBatch }));
  }
  const contributions: MeanContribution[] = results.map((r) =>
    meanMetric === 'acc_norm' && r.accNorm !== null
      ? { task: r.task, metric: 'acc_norm', value: r.accNorm }
      : { task: r.task, metric: 'acc', value: r.acc },
  );
  const value = contributions.reduce((a, c) => a + c.value, 0) / contributions.length;
  return { tasks: results, mean: { value, contributions }, addBos, limit: options.limit ?? null };
}
