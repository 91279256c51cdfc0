/**
 * Evaluation end to end: the model scorer of the zero-shot harness against the float64 reference forward (summed
 * log-softmax, greedy flags, padding/grouping/deduplication invariance), `evaluate()` with the seven paper tasks and
 * WikiText-2 on a real model, tensor bookkeeping over thousands of items, malformed task files, and the offline
 * messages of the perplexity-set resolver.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFlag, ConfigError, DataError } from '../../lib/errors.js';
import { defaultDataDir, perplexitySetFile } from '../../lib/eval/datasets.js';
import { evaluate, EvaluationIdsCache, evaluationIdsCache } from '../../lib/eval/evaluate.js';
import { encodePair, type Request, type Score } from '../../lib/eval/harness.js';
import { evaluationIds, perplexityOfIds } from '../../lib/eval/perplexity.js';
import { modelScorer } from '../../lib/eval/scorer.js';
import { PAPER_TASKS } from '../../lib/eval/tasks.js';
import { readTexts } from '../../lib/data/sources.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { useTestBackend } from '../helpers/backend.js';
import { ReferenceLlama } from '../helpers/reference-llama.js';
import { parquetOf } from '../helpers/parquet.js';
import { jsonl, syntheticDocs, syntheticWikiRows, writeSyntheticData } from '../helpers/synthetic-text.js';
import { TinyRandom, writeTinyCheckpoint, type TinyCheckpoint, randomIds } from '../helpers/tiny-checkpoint.js';

const CONTEXT = 64; // max_position_embeddings of the tiny checkpoint

let tmp: string;
let tiny: TinyCheckpoint;
let loaded: LoadedModel;
let ref: ReferenceLlama;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-evaluate-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 7, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numKvHeads: 2, maxPositions: CONTEXT });
  loaded = await loadModel(tiny.dir);
  ref = new ReferenceLlama(tiny.raw, tiny.tensors);
});

afterAll(() => {
  loaded?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Log-softmax of one row of float64 logits. */
function logSoftmax(row: Float64Array): Float64Array {
  let top = -Infinity;
  for (const x of row) top = Math.max(top, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - top);
  const lse = top + Math.log(z);
  return row.map((x) => x - lse);
}

/**
 * The reference score of a request, computed directly: the model reads (context + continuation) cut to the last
 * CONTEXT + 1 tokens, minus the last one; each continuation token's log-softmax value at the position before it.
 */
function refScore(r: Request): Score & { margins: number[] } {
  const whole = [...r.context, ...r.continuation].slice(-(CONTEXT + 1));
  const input = whole.slice(0, -1);
  const logits = ref.logits(input);
  const v = ref.c.vocab;
  const first = whole.length - r.continuation.length - 1; // position whose logits predict the first continuation token
  let logprob = 0;
  let greedy = true;
  const margins: number[] = []; // best minus second-best log-prob, to know the argmax is not a near tie
  r.continuation.forEach((tok, j) => {
    const lp = logSoftmax(logits.subarray((first + j) * v, (first + j + 1) * v));
    logprob += lp[tok]!;
    const sorted = [...lp].sort((a, b) => b - a);
    margins.push(sorted[0]! - sorted[1]!);
    if (lp.indexOf(sorted[0]!) !== tok) greedy = false;
  });
  return { logprob, greedy, margins };
}

describe('modelScorer against the float64 reference', () => {
  const base = [1, 5, 77, 300];
  const requests: Request[] = [
    { context: base, continuation: [12, 2047] },
    { context: base, continuation: [9] }, // same input as the next two (BoolQ-like: one context, one-token answers)
    { context: base, continuation: [400] },
    { context: base.slice(0, 3), continuation: [300, 12] }, // the same input again, scored at two positions
    { context: randomIds(30, 1), continuation: randomIds(5, 2) },
    { context: randomIds(70, 3), continuation: randomIds(3, 4) }, // longer than the context: cut from the left
    { context: [1], continuation: randomIds(10, 5) },
    { context: randomIds(12, 6), continuation: randomIds(1, 7) },
  ];

  test('logprob is the sum of log-softmax values (1e-4); greedy flags agree', async () => {
    const scores = await modelScorer(loaded.model)(requests);
    expect(scores).toHaveLength(requests.length);
    requests.forEach((r, i) => {
      const want = refScore(r);
      expect({ i, err: Math.abs(scores[i]!.logprob - want.logprob) < 1e-4 }).toEqual({ i, err: true });
      expect(scores[i]!.greedy).toBe(want.greedy);
    });
    // the requests sharing an input are still scored at their own positions
    expect(new Set(scores.slice(0, 4).map((s) => s.logprob)).size).toBe(4);
  });

  test('scoring together (padded, length-grouped, deduplicated) gives what scoring one by one gives', async () => {
    const scorer = modelScorer(loaded.model);
    const together = await scorer(requests);
    const alone: Score[] = [];
    for (const r of requests) alone.push(...(await scorer([r])));
    const reversed = (await scorer([...requests].reverse())).reverse();
    requests.forEach((_, i) => {
      expect(Math.abs(together[i]!.logprob - alone[i]!.logprob)).toBeLessThan(1e-6); // float32 summation order: 1.2e-7 seen
      expect(Math.abs(reversed[i]!.logprob - alone[i]!.logprob)).toBeLessThan(1e-6); // float32 summation order: 1.2e-7 seen
      expect(together[i]!.greedy).toBe(alone[i]!.greedy);
    });
  });

  test('identical inputs share one forward row without changing the results', async () => {
    const scorer = modelScorer(loaded.model);
    const same = requests.slice(1, 4); // three requests, one input [1, 5, 77, 300]
    const alone: Score[] = [];
    for (const r of same) alone.push(...(await scorer([r])));
    // record the batches the model is asked to run (an own property shadowing the class method, removed after)
    const model = loaded.model;
    const batches: number[][][] = [];
    const original = model.logits.bind(model);
    Object.defineProperty(model, 'logits', {
      configurable: true,
      value: (ids: number[][], ...rest: unknown[]) => {
        batches.push(ids.map((row) => [...row]));
        return (original as (...a: unknown[]) => tf.Tensor3D)(ids, ...rest);
      },
    });
    try {
      const shared = await scorer(same);
      expect(batches).toEqual([[base]]); // one forward of one row
      expect(shared).toEqual(alone); // the very same forward row: bit-identical
    } finally {
      delete (model as unknown as Record<string, unknown>)['logits'];
    }
    expect(Object.prototype.hasOwnProperty.call(model, 'logits')).toBe(false);
  });

  test('greedy: true exactly when every continuation token is the argmax', async () => {
    // the model's own greedy continuation of a context, from the reference
    const context = [1, 40, 41, 42];
    const g1 = refScore({ context, continuation: [0] }); // margins of the first prediction
    const next1 = argmaxNext([...context]);
    const next2 = argmaxNext([...context, next1]);
    const other = (next2 + 1) % 2048;
    expect(g1.margins[0]).toBeGreaterThan(1e-3); // no near tie: float32 sees the same argmax
    const cases: Request[] = [
      { context, continuation: [next1] },
      { context, continuation: [next1, next2] },
      { context, continuation: [next1, other] }, // second token not greedy
      { context, continuation: [other, next2] }, // first token not greedy
    ];
    for (const c of cases) expect(Math.min(...refScore(c).margins)).toBeGreaterThan(1e-3);
    const scores = await modelScorer(loaded.model)(cases);
    expect(scores.map((s) => s.greedy)).toEqual([true, true, false, false]);
    // the greedy continuation has the highest score of its length
    expect(scores[1]!.logprob).toBeGreaterThan(scores[2]!.logprob);
  });

  function argmaxNext(ids: number[]): number {
    const v = ref.c.vocab;
    const logits = ref.logits(ids).subarray((ids.length - 1) * v);
    let best = 0;
    for (let k = 1; k < v; k++) if (logits[k]! > logits[best]!) best = k;
    return best;
  }
});

describe('evaluate() on a tied tiny checkpoint (context 512): the seven tasks and WikiText-2', () => {
  test('shapes, n = 5 per task, acc in [0, 1], acc_norm exactly where reported, the mean; perplexity wiring', async () => {
    const dataDir = writeSyntheticData(join(tmp, 'seven-tasks-data'), { docs: 2, articles: 24, items: 6 });
    const m = await loadModel(writeTinyCheckpoint(join(tmp, 'tied-512'), { seed: 4, hiddenSize: 32, intermediateSize: 64, tie: 'lm_head', maxPositions: 512 }).dir);
    try {
      const wiki = join(tmp, 'wiki-head.jsonl');
      const rows = (await readTexts(join(dataDir, 'wikitext-2-raw-v1', 'test.jsonl'))).slice(0, 120);
      writeFileSync(wiki, rows.map((text) => JSON.stringify({ text })).join('\n') + '\n');
      const progress = new Set<string>();
      const r = await evaluate(m, {
        ppl: ['wikitext2'],
        pplFiles: { wikitext2: wiki },
        maxWindows: 2,
        tasks: [...PAPER_TASKS],
        limit: 5,
        dataDir,
        onProgress: (what) => progress.add(what),
      });
      // (plus 'wikitext2: tokenizing ...' when the tokenized text is not in the disk cache yet: test/eval/token-cache.test.ts)
      expect([...progress].filter((w) => !w.startsWith('wikitext2: tokenizing')).sort()).toEqual(['tasks', 'wikitext2 ppl']);
      // perplexity: seqlen defaults to the model context (512); 2 windows
      expect(r.perplexity).toHaveLength(1);
      const p = r.perplexity[0]!;
      expect(p).toMatchObject({ dataset: 'wikitext2', windows: 2, tokens: 1024, seqlen: 512, file: wiki });
      const ids = await evaluationIds('wikitext2', wiki, m.tokenizer, 512);
      expect(p.ppl).toBe((await perplexityOfIds(m.model, ids, { seqlen: 512, maxWindows: 2 })).ppl);
      expect(p.ppl).toBeGreaterThan(1);
      // zero-shot
      const z = r.zeroShot!;
      expect(z.tasks.map((t) => t.task)).toEqual([...PAPER_TASKS]);
      const withNorm = ['hellaswag', 'arc_easy', 'arc_challenge', 'openbookqa'];
      for (const t of z.tasks) {
        expect(t.n).toBe(5);
        expect(t.acc).toBeGreaterThanOrEqual(0);
        expect(t.acc).toBeLessThanOrEqual(1);
        expect(Number.isInteger(Math.round(t.acc * 5 * 1e9) / 1e9)).toBe(true); // k/5
        expect(t.accStderr).not.toBeNull();
        if (withNorm.includes(t.task)) {
          expect(t.accNorm).not.toBeNull();
          expect(t.accNorm!).toBeGreaterThanOrEqual(0);
          expect(t.accNorm!).toBeLessThanOrEqual(1);
        } else {
          expect(t.accNorm).toBeNull();
          expect(t.accNormStderr).toBeNull();
        }
        expect(t.file).toBe(join(dataDir, ...taskFile(t.task)));
      }
      expect(z.mean.contributions).toEqual(z.tasks.map((t) => ({ task: t.task, metric: 'acc', value: t.acc })));
      expect(z.mean.value).toBeCloseTo(z.tasks.reduce((a, t) => a + t.acc, 0) / 7, 12);
      expect(z).toMatchObject({ addBos: false, limit: 5 });
      expect(r.seconds).toBeGreaterThan(0);
    } finally {
      m.dispose();
    }
  });

  function taskFile(task: string): string[] {
    const split = ['boolq', 'rte', 'hellaswag', 'winogrande'].includes(task) ? 'validation.jsonl' : 'test.jsonl';
    return ['tasks', task, split];
  }
});

test('no tfjs tensor growth over 2,000 scored items (4,000 requests)', async () => {
  const tryEncode = (context: string, continuation: string): boolean => {
    try {
      encodePair(loaded.tokenizer, context, continuation);
      return true;
    } catch {
      return false;
    }
  };
  const file = join(tmp, 'many.jsonl');
  const rng = new TinyRandom(99);
  const words = ['cat', 'dog', 'sun', 'rain', 'tree', 'bird', 'red', 'blue', 'runs', 'sleeps', 'big', 'small'];
  const pick = (): string => words[Math.floor(rng.uniform() * words.length)]!;
  const lines: string[] = [];
  // This tokenizer's pieces carry their trailing space ("sun ", "blue "), so a context can absorb a choice's first
  // word; such items cannot be scored (the continuation adds no token) and are not written.
  while (lines.length < 2000) {
    const len = 1 + Math.floor(rng.uniform() * 6);
    const query = Array.from({ length: len }, pick).join(' ') + '.';
    const choices = [pick(), `${pick()} ${pick()}`];
    if (!choices.every((c) => tryEncode(query, ' ' + c))) continue;
    lines.push(JSON.stringify({ query, choices, gold: lines.length % 2 }));
  }
  writeFileSync(file, lines.join('\n') + '\n');
  // the model's cached RoPE table and causal mask reach their final size first
  tf.dispose(loaded.model.logits([randomIds(CONTEXT, 8)]));
  const before = tf.memory().numTensors;
  let last = 0;
  const r = await evaluate(loaded, { tasks: [file], onProgress: (_, done) => (last = done) });
  expect(tf.memory().numTensors).toBe(before);
  expect(last).toBe(2000);
  expect(r.zeroShot!.tasks[0]).toMatchObject({ task: 'many', n: 2000 });
  expect(r.perplexity).toEqual([]);
});

describe('malformed task files through evaluate()', () => {
  const write = (name: string, rows: unknown[]): string => {
    const file = join(tmp, name);
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    return file;
  };

  test('missing column: names file, row and field', async () => {
    const file = write('missing.jsonl', [
      { query: 'a b', choices: ['c', 'd'], gold: 0 },
      { query: 'a b', choices: ['c', 'd'] },
    ]);
    await expect(evaluate(loaded, { tasks: [file] })).rejects.toThrow(
      new DataError(`${file}: row 2: missing field "gold" (expected an integer; the row has: query, choices)`),
    );
  });

  test('label out of range: names file, row and field', async () => {
    const file = write('range.jsonl', [{ query: 'a b', choices: ['c', 'd'], gold: 2 }]);
    await expect(evaluate(loaded, { tasks: [file] })).rejects.toThrow(
      new DataError(`${file}: row 1, field "gold": label 2 is out of range, expected 0..1`),
    );
  });

  test('a named task read from a data folder: missing column and out-of-range label', async () => {
    const dataDir = join(tmp, 'bad-data');
    mkdirSync(join(dataDir, 'tasks', 'boolq'), { recursive: true });
    mkdirSync(join(dataDir, 'tasks', 'rte'), { recursive: true });
    const boolq = join(dataDir, 'tasks', 'boolq', 'validation.jsonl');
    const rte = join(dataDir, 'tasks', 'rte', 'validation.jsonl');
    writeFileSync(boolq, JSON.stringify({ question: 'is it', label: 1 }) + '\n');
    writeFileSync(rte, JSON.stringify({ sentence1: 'a', sentence2: 'b', label: 2 }) + '\n');
    await expect(evaluate(loaded, { tasks: ['boolq'], dataDir })).rejects.toThrow(
      new DataError(`${boolq}: row 1: missing field "passage" (expected a string; the row has: question, label)`),
    );
    await expect(evaluate(loaded, { tasks: ['rte'], dataDir })).rejects.toThrow(
      new DataError(`${rte}: row 1, field "label": label 2 is out of range, expected 0 (entailment) or 1 (not entailment)`),
    );
  });

  test('empty file: names the file', async () => {
    const file = write('empty.jsonl', []);
    await expect(evaluate(loaded, { tasks: [file] })).rejects.toThrow(new DataError(`${file}: the file is empty (0 bytes)`));
  });

  test('unknown task name and unknown perplexity set', async () => {
    await expect(evaluate(loaded, { tasks: ['nosuchtask'], dataDir: tmp })).rejects.toThrow(ConfigError);
    await expect(evaluate(loaded, { tasks: ['nosuchtask'], dataDir: tmp })).rejects.toThrow(/task "nosuchtask": unknown; known tasks are boolq, rte/);
    await expect(evaluate(loaded, { ppl: ['ptb' as 'c4'] })).rejects.toThrow(new ConfigError(`ppl: 'ptb' is not one of wikitext2, c4`));
  });
});

describe('perplexitySetFile', () => {
  test('finds the files of a data folder laid out like shared/data', async () => {
    const data = writeSyntheticData(join(tmp, 'ppl-sets'), { docs: 3, articles: 1, items: 1 });
    writeFileSync(join(data, 'c4', 'c4-validation.sample2000.parquet'), parquetOf(syntheticDocs(3, 2)));
    expect(await perplexitySetFile('wikitext2', data)).toBe(join(data, 'wikitext-2-raw-v1', 'test.jsonl'));
    expect(await perplexitySetFile('c4', data)).toBe(join(data, 'c4', 'c4-validation.sample2000.parquet'));
  });

  test('offline without download: DataError naming every expected path and the hub file', async () => {
    const empty = join(tmp, 'no-data');
    mkdirSync(empty);
    const expected =
      `dataDir '${empty}': no file of perplexity set 'wikitext2'; put one of ${join(empty, 'wikitext-2-raw-v1/test.jsonl')}, ` +
      `${join(empty, 'wikitext-2-raw-v1/test.parquet')}, ${join(empty, 'wikitext-2-raw-v1/test-00000-of-00001.parquet')} in place ` +
      `(from the hub dataset Salesforce/wikitext, file wikitext-2-raw-v1/test-00000-of-00001.parquet), or turn download on (--download) when online`;
    await expect(perplexitySetFile('wikitext2', empty)).rejects.toThrow(new DataError(expected));
    // evaluate() passes it through unchanged
    await expect(evaluate(loaded, { ppl: ['wikitext2'], dataDir: empty })).rejects.toThrow(new DataError(expected));
    await expect(perplexitySetFile('c4', empty)).rejects.toThrow(/allenai\/c4, file en\/c4-validation\.00000-of-00008\.json\.gz/);
    // the error names the library option; the CLI shows it as its flag
    const e = (await perplexitySetFile('wikitext2', empty).catch((x: unknown) => x)) as DataError;
    expect({ option: e.option, cli: e.messageAs(cliFlag).startsWith(`--data-dir '${empty}': no file of perplexity set`) }).toEqual({ option: 'dataDir', cli: true });
  });

  test('with download and a failing fetch: DataError naming the hub dataset and file', async () => {
    const empty = join(tmp, 'no-data-2');
    mkdirSync(empty);
    const fetch = (async () => {
      throw new Error('getaddrinfo ENOTFOUND huggingface.co');
    }) as unknown as typeof globalThis.fetch;
    const err = await perplexitySetFile('c4', empty, { download: true, fetch }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^perplexity set 'c4': download failed \(.*ENOTFOUND huggingface\.co.*\); offline, put one of /);
    expect(msg).toContain('from the hub dataset allenai/c4, file en/c4-validation.00000-of-00008.json.gz');
    expect(msg).toContain(join(empty, 'c4', 'c4-validation.sample2000.parquet'));
  });
});

describe('no hidden process state', () => {
  test('defaultDataDir reads the environment it is given, never process.env', () => {
    const saved = process.env['LLM_PRUNE_DATA'];
    process.env['LLM_PRUNE_DATA'] = join(tmp, 'from-process-env');
    try {
      expect(defaultDataDir({ LLM_PRUNE_DATA: join(tmp, 'given') })).toBe(join(tmp, 'given'));
      const shared = join(tmp, 'some-shared');
      mkdirSync(join(shared, 'data'), { recursive: true });
      expect(defaultDataDir({ LLM_PRUNE_SHARED: shared })).toBe(join(shared, 'data'));
      expect(defaultDataDir({ LLM_PRUNE_SHARED: join(tmp, 'nowhere') })).toBe(join(process.cwd(), 'data'));
      expect(defaultDataDir()).not.toBe(join(tmp, 'from-process-env'));
    } finally {
      if (saved === undefined) delete process.env['LLM_PRUNE_DATA'];
      else process.env['LLM_PRUNE_DATA'] = saved;
    }
  });

  test('the token-id cache: evaluate fills the one it is given (not the process-wide one); clear() empties it', async () => {
    const file = join(tmp, 'ids-cache.jsonl');
    writeFileSync(file, jsonl(syntheticWikiRows(4, 8).slice(0, 40)));
    evaluationIdsCache.clear();
    const own = new EvaluationIdsCache(2);
    const plain = { ppl: ['wikitext2' as const], pplFiles: { wikitext2: file }, seqlen: 16, maxWindows: 1 };
    const cfg = { ...plain, idsCache: own };
    const first = await evaluate(loaded, cfg);
    expect([own.size, evaluationIdsCache.size]).toEqual([1, 0]);
    expect((await evaluate(loaded, cfg)).perplexity[0]!.ppl).toBe(first.perplexity[0]!.ppl); // served from the cache
    expect(own.size).toBe(1);
    await evaluate(loaded, plain);
    expect(evaluationIdsCache.size).toBe(1);
    own.clear();
    evaluationIdsCache.clear();
    expect([own.size, evaluationIdsCache.size]).toEqual([0, 0]);
  });
});
