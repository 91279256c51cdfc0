/** The model side of the zero-shot harness: log-likelihood of continuations in batched forwards. */
import * as tf from '@tensorflow/tfjs-core';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { fitToContext, type Request, type Score, type Scorer } from './harness.js';

/**
 * A Scorer over `model`: each request's input is (context + continuation) minus its last token (as lm-eval),
 * left-truncated to the model context. Requests that share a context (the choices of one item) run the context once
 * (`prefill`) and their continuations in one batched forward after it (`continueFrom`); the others go through
 * right-padded forwards grouped by length (causal attention makes padding after the real tokens invisible to them).
 * Returns the summed log-probability of the continuation tokens and whether each was the greedy choice.
 */
export function modelScorer(model: LlamaModel, forward: ForwardOptions = {}): Scorer {
  return async (requests: Request[]): Promise<Score[]> => {
    const fitted = requests.map((r) => fitToContext(r, model.config.maxPositions));
    const scores: Score[] = fitted.map(() => ({ logprob: 0, greedy: true }));
    const byContext = new Map<string, number[]>();
    fitted.forEach((r, k) => {
      const key = r.context.join(',');
      byContext.set(key, [...(byContext.get(key) ?? []), k]);
    });
    const rest: number[] = [];
    for (const members of byContext.values()) {
      const ctx = fitted[members[0]!]!.context;
      if (members.length > 1 && ctx.length > 0) await scoreSharedContext(model, forward, ctx, members.map((k) => ({ req: fitted[k]!, out: scores[k]! })));
      else rest.push(...members);
    }
    await scorePadded(model, forward, rest.map((k) => ({ req: fitted[k]!, out: scores[k]! })));
    return scores;
  };
}

interface Target {
  req: Request;
  out: Score;
}

/**
 * Add log-probs/greedy of `tokens` at logits rows `rowPos` of `logits` ([rows, vocab]) to the owners' scores.
 * One read per forward, awaited (no synchronous read: WebGPU has none).
 */
async function accumulate(logits: tf.Tensor2D, rowPos: number[], tokens: number[], owners: Score[]): Promise<void> {
  if (rowPos.length === 0) return;
  const v = logits.shape[1];
  const [picked, lse, argmax] = tf.tidy(() => {
    const at = tf.gather(logits, tf.tensor1d(rowPos, 'int32')); // [tokens, vocab]
    const flat = tf.tensor1d(rowPos.map((r, i) => r * v + tokens[i]!), 'int32');
    return [tf.gather(tf.reshape(logits, [-1]), flat), tf.logSumExp(at, 1), tf.argMax(at, 1)];
  });
  let p, l, a;
  try {
    [p, l, a] = await Promise.all([picked.data(), lse.data(), argmax.data()]);
  } finally {
    tf.dispose([picked, lse, argmax]);
  }
  owners.forEach((out, i) => {
    out.logprob += p[i]! - l[i]!;
    if (a[i] !== tokens[i]) out.greedy = false;
  });
}

/** Choices sharing one context: the context once, then every continuation (minus its last token) after it. */
async function scoreSharedContext(model: LlamaModel, forward: ForwardOptions, context: number[], targets: Target[]): Promise<void> {
  const { logits, cache } = model.prefill(context, forward);
  try {
    // The context's last position predicts every continuation's first token.
    const last = tf.tidy(() => tf.reshape(tf.slice(logits, [0, context.length - 1, 0], [1, 1, -1]), [1, -1]) as tf.Tensor2D);
    try {
      await accumulate(last, targets.map(() => 0), targets.map((t) => t.req.continuation[0]!), targets.map((t) => t.out));
    } finally {
      last.dispose();
    }
    const longer = targets.filter((t) => t.req.continuation.length > 1);
    if (longer.length > 0) {
      const len = Math.max(...longer.map((t) => t.req.continuation.length - 1));
      const rows = longer.map((t) => {
        const x = t.req.continuation.slice(0, -1);
        return [...x, ...new Array<number>(len - x.length).fill(0)];
      });
      const v = model.config.vocabSize;
      const out = tf.tidy(() => tf.reshape(model.continueFrom(cache, rows, forward), [rows.length * len, v]) as tf.Tensor2D);
      const rowPos: number[] = [];
      const tokens: number[] = [];
      const owners: Score[] = [];
      longer.forEach((t, i) => {
        for (let j = 1; j < t.req.continuation.length; j++) {
          rowPos.push(i * len + j - 1); // position j-1 after the context predicts continuation token j
          tokens.push(t.req.continuation[j]!);
          owners.push(t.out);
        }
      });
      try {
        await accumulate(out, rowPos, tokens, owners);
      } finally {
        out.dispose();
      }
    }
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

/** Requests with distinct contexts: right-padded forwards, identical inputs deduplicated, grouped by length. */
async function scorePadded(model: LlamaModel, forward: ForwardOptions, targets: Target[]): Promise<void> {
  if (targets.length === 0) return;
  const inputs = targets.map((t) => [...t.req.context, ...t.req.continuation].slice(0, -1));
  const rowOf = new Map<string, number>();
  const rows: number[][] = [];
  const row = inputs.map((x) => {
    const key = x.join(',');
    let r = rowOf.get(key);
    if (r === undefined) {
      r = rows.length;
      rowOf.set(key, r);
      rows.push(x);
    }
    return r;
  });
  // Rows sorted by length and cut into groups with little padding.
  const order = rows.map((_, i) => i).sort((a, b) => rows[b]!.length - rows[a]!.length);
  const groups: number[][] = [];
  for (const i of order) {
    const g = groups[groups.length - 1];
    if (g && rows[g[0]!]!.length * (g.length + 1) <= 1.25 * (g.reduce((a, j) => a + rows[j]!.length, 0) + rows[i]!.length)) g.push(i);
    else groups.push([i]);
  }
  for (const g of groups) {
    const members = targets.map((_, k) => k).filter((k) => g.includes(row[k]!));
    await scoreGroup(model, forward, g.map((i) => rows[i]!), members.map((k) => ({ req: targets[k]!.req, row: g.indexOf(row[k]!), out: targets[k]!.out })));
  }
}

/** One right-padded forward of `rows`; adds each target's log-probs and greedy flags. */
async function scoreGroup(model: LlamaModel, forward: ForwardOptions, rows: number[][], targets: (Target & { row: number })[]): Promise<void> {
  const len = Math.max(...rows.map((x) => x.length));
  const padded = rows.map((x) => [...x, ...new Array<number>(len - x.length).fill(0)]);
  const v = model.config.vocabSize;
  const rowPos: number[] = [];
  const tokens: number[] = [];
  const owners: Score[] = [];
  for (const t of targets) {
    t.req.continuation.forEach((tok, j) => {
      rowPos.push(t.row * len + t.req.context.length - 1 + j); // logits at pos predict token pos + 1
      tokens.push(tok);
      owners.push(t.out);
    });
  }
  const logits = tf.tidy(() => tf.reshape(model.logits(padded, forward), [padded.length * len, v]) as tf.Tensor2D);
  try {
    await accumulate(logits, rowPos, tokens, owners);
  } finally {
    logits.dispose();
  }
}
