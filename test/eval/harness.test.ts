import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DataError, LlmPruneError } from '../../lib/errors.js';
import {
  encodePair,
  evaluateTasks,
  fitToContext,
  meanStderr,
  type Request,
  type Score,
  type Scorer,
} from '../../lib/eval/harness.js';
import { resultsTable, type EvaluationRow, type ZeroShotResults } from '../../lib/eval/results.js';
import type { LoadedTask } from '../../lib/eval/tasks.js';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import type { TextTokenizer } from '../../lib/model/tokenizer-types.js';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

describe('encodePair with a SentencePiece-style BPE tokenizer (lm-eval _encode_pair)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llm-prune-harness-tok-'));
  writeTinyTokenizer(dir);
  let tok: HfTokenizer;
  beforeAll(async () => {
    tok = await HfTokenizer.fromFolder(dir);
  });
  const enc = (text: string): number[] => tok.encode(text, { addSpecialTokens: false });
  /** lm-eval: trailing whitespace of the context moves to the continuation; the continuation is what the whole
   * text's tokens add after the (moved) context's tokens. */
  const reference = (context: string, continuation: string) => {
    const n = context.length - context.replace(/\s+$/, '').length;
    const [c, x] = [context.slice(0, context.length - n), context.slice(context.length - n) + continuation];
    const whole = enc(c + x);
    const ctx = enc(c);
    return { context: ctx, continuation: whole.slice(ctx.length) };
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a trailing space of the context moves to the continuation', () => {
    expect(enc('Answer: ').slice(0, -1)).toEqual(enc('Answer:')); // a lone "▁" token at the end
    const answer = enc('Answer:');
    const yes = enc('Answer: yes').slice(answer.length);
    expect(encodePair(tok, 'Answer: ', 'yes')).toEqual({ context: answer, continuation: yes });
    expect(encodePair(tok, 'Answer:', ' yes')).toEqual({ context: answer, continuation: yes });
    expect(encodePair(tok, 'Answer: ', 'yes')).toEqual(reference('Answer: ', 'yes'));
    // encoding the continuation alone gives other tokens (a leading "▁" is prepended)
    expect(enc(' yes')).not.toEqual(yes);
  });

  test('a trailing newline moves too (Python rstrip)', () => {
    const r = encodePair(tok, 'Question: Is the sky blue?\n', 'Answer: yes');
    expect(r).toEqual(reference('Question: Is the sky blue?\n', 'Answer: yes'));
    expect(r.context).toEqual(enc('Question: Is the sky blue?'));
    expect(tok.decode(r.continuation)).toContain('Answer: yes');
  });

  test('WinoGrande pair, BOS flag, empty context', () => {
    const wino = ['Sarah was a much better surgeon than Maria so Maria', ' always got the easier cases.'] as const;
    expect(encodePair(tok, ...wino)).toEqual(reference(...wino));
    const plain = encodePair(tok, 'The cat', ' sat on the mat.');
    expect(plain).toEqual(reference('The cat', ' sat on the mat.'));
    expect(encodePair(tok, 'The cat', ' sat on the mat.', { addBos: true })).toEqual({ context: [tok.bosId, ...plain.context], continuation: plain.continuation });
    // lm-eval scores a continuation without context after the prefix token (BOS).
    expect(encodePair(tok, '', 'The cat')).toEqual({ context: [tok.bosId], continuation: enc('The cat') });
  });

  test('a whitespace-only context has nothing to predict from unless BOS is added', () => {
    expect(() => encodePair(tok, '  ', 'yes')).toThrow(
      new DataError('context "  " is only whitespace: no token to predict "yes" from (use addBos)'),
    );
    expect(encodePair(tok, '  ', 'yes', { addBos: true }).context).toEqual([tok.bosId]);
  });
});

test('fitToContext cuts the context from the left as (context + continuation)[-(max + 1):]', () => {
  const r: Request = { context: [1, 2, 3, 4, 5], continuation: [6, 7] };
  expect(fitToContext(r, 10)).toBe(r);
  expect(fitToContext(r, 6)).toEqual(r); // 7 tokens = max + 1: the model reads 6
  expect(fitToContext(r, 4)).toEqual({ context: [3, 4, 5], continuation: [6, 7] });
  expect(fitToContext(r, 2)).toEqual({ context: [5], continuation: [6, 7] });
  expect(() => fitToContext(r, 1)).toThrow(new DataError('continuation of 2 tokens does not fit a model context of 1'));
});

test('meanStderr is lm-eval mean_stderr (ddof = 1)', () => {
  expect(meanStderr([1, 1, 1, 0])).toBeCloseTo(0.25, 15); // var = 0.75 / 3, / 4, sqrt
  expect(meanStderr([0, 1, 1, 0])).toBeCloseTo(Math.sqrt(1 / 3) / 2, 15);
  expect(meanStderr([1])).toBeNull();
});

/** One token per character: requests can be read back as text. */
const charTokenizer: TextTokenizer = {
  encode: (text) => [...text].map((c) => c.codePointAt(0) as number),
  decode: (ids) => String.fromCodePoint(...ids),
  bosId: 0x2402, // "␂"
  eosId: null,
};
const text = (ids: number[]): string => charTokenizer.decode(ids);

/** A scorer with known log-probs per "context|continuation", recording every batch. */
function fakeScorer(table: Record<string, number>): { scorer: Scorer; batches: string[][] } {
  const batches: string[][] = [];
  const scorer: Scorer = async (requests) => {
    const keys = requests.map((r) => `${text(r.context)}|${text(r.continuation)}`);
    batches.push(keys);
    return keys.map((k): Score => {
      const logprob = table[k];
      if (logprob === undefined) throw new Error(`no log-prob for ${k}`);
      return { logprob, greedy: false };
    });
  };
  return { scorer, batches };
}

// Task A (acc and acc_norm): 4 items, choice lengths exclude the leading space as lm-eval's completion_len.
const taskA: LoadedTask = {
  name: 'a',
  displayName: 'A',
  file: 'a.jsonl',
  reportsAccNorm: true,
  items: [
    // acc picks " aa" (-3 > -5): wrong. acc_norm: -3/2 = -1.5 < -5/4 = -1.25: right. (Dividing by the
    // continuation lengths 3 and 5 would tie at -1 and pick choice 0.)
    { contexts: ['Q1'], continuations: [' aa', ' bbbb'], gold: 1, normLengths: [2, 4] },
    { contexts: ['Q2'], continuations: [' x', ' y'], gold: 0, normLengths: [1, 1] }, // both right
    { contexts: ['Q3'], continuations: [' p', ' q', ' r'], gold: 2, normLengths: [1, 1, 1] }, // both right
    { contexts: ['Q4'], continuations: [' t', ' u'], gold: 1, normLengths: [1, 1] }, // tie -> index 0: both wrong
  ],
};
// Task B (WinoGrande layout, acc only): the continuation is scored under each context.
const taskB: LoadedTask = {
  name: 'b',
  displayName: 'B',
  file: 'b.jsonl',
  reportsAccNorm: false,
  items: [
    { contexts: ['A x', 'A y'], continuations: [' rest.'], gold: 1, normLengths: null }, // right
    { contexts: ['B x', 'B y'], continuations: [' rest.'], gold: 0, normLengths: null }, // wrong
    { contexts: ['C x', 'C y'], continuations: [' rest.'], gold: 0, normLengths: null }, // right
  ],
};
const table: Record<string, number> = {
  'Q1| aa': -3, 'Q1| bbbb': -5,
  'Q2| x': -1, 'Q2| y': -2,
  'Q3| p': -2, 'Q3| q': -2, 'Q3| r': -1,
  'Q4| t': -4, 'Q4| u': -4,
  'A x| rest.': -9, 'A y| rest.': -8,
  'B x| rest.': -9, 'B y| rest.': -1,
  'C x| rest.': -2, 'C y| rest.': -3,
};

describe('evaluateTasks with a fake scorer', () => {
  test('acc, acc_norm and their standard errors are exact; the mean uses acc by default', async () => {
    const { scorer } = fakeScorer(table);
    const r = await evaluateTasks({ tasks: [taskA, taskB], tokenizer: charTokenizer, scorer });
    expect(r.tasks).toEqual([
      {
        task: 'a', displayName: 'A', file: 'a.jsonl', n: 4,
        acc: 0.5, accStderr: Math.sqrt(1 / 3) / 2, // [0, 1, 1, 0]
        accNorm: 0.75, accNormStderr: 0.25, // [1, 1, 1, 0]
      },
      {
        task: 'b', displayName: 'B', file: 'b.jsonl', n: 3,
        acc: 2 / 3, accStderr: expect.closeTo(1 / 3, 15), // [1, 0, 1]: var = (1/9 + 4/9 + 1/9) / 2 = 1/3, / 3, sqrt
        accNorm: null, accNormStderr: null,
      },
    ]);
    expect(r.mean).toEqual({
      value: (0.5 + 2 / 3) / 2,
      contributions: [
        { task: 'a', metric: 'acc', value: 0.5 },
        { task: 'b', metric: 'acc', value: 2 / 3 },
      ],
    });
    expect(r.addBos).toBe(false);
    expect(r.limit).toBeNull();
  });

  test('meanMetric acc_norm takes acc_norm where the task reports it', async () => {
    const { scorer } = fakeScorer(table);
    const r = await evaluateTasks({ tasks: [taskA, taskB], tokenizer: charTokenizer, scorer, meanMetric: 'acc_norm' });
    expect(r.mean.contributions.map((c) => c.metric)).toEqual(['acc_norm', 'acc']);
    expect(r.mean.value).toBeCloseTo((0.75 + 2 / 3) / 2, 15);
  });

  test('batches hold whole items with adjacent choices; progress counts items', async () => {
    const { scorer, batches } = fakeScorer(table);
    const progress: [number, number][] = [];
    await evaluateTasks({
      tasks: [taskA, taskB],
      tokenizer: charTokenizer,
      scorer,
      batchSize: 5,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(batches).toEqual([
      ['Q1| aa', 'Q1| bbbb', 'Q2| x', 'Q2| y'], // the 3-choice item would make 7
      ['Q3| p', 'Q3| q', 'Q3| r', 'Q4| t', 'Q4| u'],
      ['A x| rest.', 'A y| rest.', 'B x| rest.', 'B y| rest.'], // batches do not cross tasks
      ['C x| rest.', 'C y| rest.'],
    ]);
    expect(progress).toEqual([[2, 7], [4, 7], [6, 7], [7, 7]]);

    // An item with more choices than batchSize goes alone.
    const small = fakeScorer(table);
    await evaluateTasks({ tasks: [taskA], tokenizer: charTokenizer, scorer: small.scorer, batchSize: 2 });
    expect(small.batches.map((b) => b.length)).toEqual([2, 2, 3, 2]);
  });

  test('limit scores the first N items of each task; addBos prefixes every context', async () => {
    const bos = '\u2402';
    const withBos = Object.fromEntries(Object.entries(table).map(([k, v]) => [bos + k, v]));
    const { scorer, batches } = fakeScorer(withBos);
    const r = await evaluateTasks({ tasks: [taskA, taskB], tokenizer: charTokenizer, scorer, limit: 2, addBos: true });
    expect(r.tasks.map((t) => [t.n, t.acc])).toEqual([[2, 0.5], [2, 0.5]]);
    expect(r.limit).toBe(2);
    expect(r.addBos).toBe(true);
    expect(batches.flat()).toHaveLength(8);
    expect(batches.flat().every((k) => k.startsWith(bos))).toBe(true);
  });

  test('errors: bad options, a scorer answering the wrong count or NaN, an unscorable item', async () => {
    const { scorer } = fakeScorer(table);
    const base = { tasks: [taskA], tokenizer: charTokenizer, scorer };
    await expect(evaluateTasks({ ...base, batchSize: 0 })).rejects.toThrow(new ConfigError('batchSize: 0 is not a positive integer'));
    await expect(evaluateTasks({ ...base, limit: 1.5 })).rejects.toThrow(new ConfigError('limit: 1.5 is not a positive integer'));
    await expect(evaluateTasks({ ...base, tasks: [] })).rejects.toThrow(new ConfigError('evaluateTasks: no tasks given'));
    await expect(evaluateTasks({ ...base, scorer: async (reqs) => reqs.slice(1).map(() => ({ logprob: -1, greedy: false })) })).rejects.toThrow(
      new LlmPruneError('scorer answered 8 scores for 9 requests'), // one batch of 32 at most,
    );
    await expect(evaluateTasks({ ...base, scorer: async (reqs) => reqs.map(() => ({ logprob: NaN, greedy: false })) })).rejects.toThrow(
      new LlmPruneError('scorer returned a log-probability that is not a number (task a): NaN, NaN'),
    );
    const blank: LoadedTask = { ...taskB, items: [{ contexts: [' ', 'ok'], continuations: [' rest.'], gold: 0, normLengths: null }] };
    await expect(evaluateTasks({ ...base, tasks: [blank] })).rejects.toThrow(
      new DataError('b.jsonl: item 1: context " " is only whitespace: no token to predict " rest." from (use addBos)'),
    );
    const badGold: LoadedTask = { ...taskB, items: [{ contexts: ['a', 'b'], continuations: [' c'], gold: 2, normLengths: null }] };
    await expect(evaluateTasks({ ...base, tasks: [badGold] })).rejects.toThrow(
      new DataError('b.jsonl: item 1: gold 2 is out of range for 2 choices'),
    );
  });
});

describe('results', () => {
  const zeroShot: ZeroShotResults = {
    tasks: [
      { task: 'boolq', displayName: 'BoolQ', file: 'b', n: 4, acc: 0.751, accStderr: 0.0123, accNorm: null, accNormStderr: null },
      { task: 'hellaswag', displayName: 'HellaSwag', file: 'h', n: 4, acc: 0.5694, accStderr: 0.005, accNorm: 0.762, accNormStderr: 0.004 },
    ],
    mean: {
      value: (0.751 + 0.5694) / 2,
      contributions: [
        { task: 'boolq', metric: 'acc', value: 0.751 },
        { task: 'hellaswag', metric: 'acc', value: 0.5694 },
      ],
    },
    addBos: false,
    limit: null,
  };
  const rows: EvaluationRow[] = [
    { label: 'dense', zeroShot, perplexity: [{ dataset: 'wikitext2', ppl: 5.677, windows: 10, tokens: 20480, tokensPerSecond: 100 }] },
    { label: 'wanda | 50%', zeroShot: null, perplexity: [{ dataset: 'wikitext2', ppl: 7.26, windows: 10, tokens: 20480, tokensPerSecond: 90 }] },
  ];

  test('Markdown table: tasks, Mean, perplexity columns; "-" where absent', () => {
    expect(resultsTable(rows)).toBe(
      [
        '| Model | BoolQ | HellaSwag | Mean | wikitext2 ppl |',
        '|---|---:|---:|---:|---:|',
        '| dense | 75.10 | 56.94 | 66.02 | 5.68 |',
        '| wanda \\| 50% | - | - | - | 7.26 |',
        '',
      ].join('\n'),
    );
    expect(resultsTable(rows.slice(0, 1), { stderr: true, digits: 1 })).toBe(
      ['| Model | BoolQ | HellaSwag | Mean | wikitext2 ppl |', '|---|---:|---:|---:|---:|', '| dense | 75.1 ± 1.2 | 56.9 ± 0.5 | 66.0 | 5.7 |', ''].join('\n'),
    );
  });

  test('results survive a JSON round trip', () => {
    expect(JSON.parse(JSON.stringify(rows))).toEqual(rows);
  });
});
