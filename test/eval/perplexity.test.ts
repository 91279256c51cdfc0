/**
 * Perplexity (REFERENCE.md section 4): window arithmetic, per-window losses against the float64 reference forward,
 * batch-size independence, how the WikiText-2 and C4 token streams are built, and errors. The acceptance number on
 * a real model (708.9913 on the full WikiText-2 test) is in perplexity.acceptance.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliFlag, ConfigError, DataError, keyPath } from '../../lib/errors.js';
import { evaluationIds, makeWindows, perplexityOfIds, windowLosses } from '../../lib/eval/perplexity.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import type { TextTokenizer } from '../../lib/model/tokenizer-types.js';
import { useTestBackend } from '../helpers/backend.js';
import { ReferenceLlama } from '../helpers/reference-llama.js';
import { writeTinyCheckpoint, type TinyCheckpoint, randomIds } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let tiny: TinyCheckpoint;
let loaded: LoadedModel;
let ref: ReferenceLlama;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-ppl-'));
  // 1 layer, hidden 32, context 64: the float64 reference stays fast
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 11, hiddenSize: 32, intermediateSize: 64, numLayers: 1, numKvHeads: 2, maxPositions: 64 });
  loaded = await loadModel(tiny.dir);
  ref = new ReferenceLlama(tiny.raw, tiny.tensors);
});

afterAll(() => {
  loaded?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** `n` token ids drawn uniformly from the 2048-token vocabulary (seeded). */
/** Float64 mean next-token cross-entropy of one window from the reference forward. */
function refWindowLoss(ids: number[]): number {
  const v = ref.c.vocab;
  const logits = ref.logits(ids); // [s * vocab]
  let sum = 0;
  for (let j = 1; j < ids.length; j++) {
    const row = logits.subarray((j - 1) * v, j * v);
    let top = -Infinity;
    for (let k = 0; k < v; k++) top = Math.max(top, row[k]!);
    let z = 0;
    for (let k = 0; k < v; k++) z += Math.exp(row[k]! - top);
    sum += top + Math.log(z) - row[ids[j]!]!;
  }
  return sum / (ids.length - 1);
}

describe('windows', () => {
  test('floor(n / seqlen) non-overlapping windows, the tail dropped', () => {
    const ids = Array.from({ length: 11 }, (_, i) => i);
    expect(makeWindows(ids, 4)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(makeWindows(ids, 11)).toEqual([ids]);
    expect(makeWindows(ids, 12)).toEqual([]);
    expect(makeWindows(ids.slice(0, 8), 4)).toHaveLength(2); // exact multiple: nothing dropped
  });

  test('perplexityOfIds scores floor(n / seqlen) windows and reports windows x seqlen tokens', async () => {
    const seqlen = 16;
    const ids = randomIds(3 * seqlen + seqlen - 1, 5); // one token short of a fourth window
    const r = await perplexityOfIds(loaded.model, ids, { seqlen });
    expect(r).toMatchObject({ windows: 3, tokens: 3 * seqlen, seqlen });
    // the dropped tail does not influence the result
    const same = await perplexityOfIds(loaded.model, ids.slice(0, 3 * seqlen), { seqlen });
    expect(same.ppl).toBe(r.ppl);
    const two = await perplexityOfIds(loaded.model, ids, { seqlen, maxWindows: 2 });
    expect(two).toMatchObject({ windows: 2, tokens: 2 * seqlen });
    expect(two.ppl).toBe((await perplexityOfIds(loaded.model, ids.slice(0, 2 * seqlen), { seqlen })).ppl);
    expect(r.seconds).toBeGreaterThan(0);
    expect(r.tokensPerSecond).toBeCloseTo(r.tokens / r.seconds, 6);
  });
});

describe('losses against the float64 reference forward', () => {
  const seqlen = 24;
  const windows = [randomIds(seqlen, 21), randomIds(seqlen, 22), randomIds(seqlen, 23)];
  windows[0]![0] = 1; // a BOS-led window, as the first window of a text

  test('each window loss is the mean cross-entropy of tokens 1..seqlen-1 (float64 reference, 1e-4)', async () => {
    const lib = await windowLosses(loaded.model, windows);
    const want = windows.map(refWindowLoss);
    expect(lib).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(Math.abs(lib[i]! - want[i]!)).toBeLessThan(1e-4);
    // the windows differ, so a loss taken from the wrong row would show
    expect(Math.abs(want[0]! - want[1]!)).toBeGreaterThan(1e-3);
    // a random model over 2048 tokens is near log(2048) = 7.62, not trivially 0
    for (const l of want) expect(l).toBeGreaterThan(5);
  });

  test('ppl = exp(mean of window losses); batchSize 1 and 3 agree to 1e-6', async () => {
    const ids = windows.flat().concat(randomIds(4 * seqlen + 7, 24)); // 7 windows: the last batch of 3 is partial
    const want = Math.exp(makeWindows(ids, seqlen).map(refWindowLoss).reduce((a, b) => a + b, 0) / 7);
    const progress: [number, number][] = [];
    const one = await perplexityOfIds(loaded.model, ids, { seqlen, batchSize: 1 });
    const three = await perplexityOfIds(loaded.model, ids, { seqlen, batchSize: 3, onProgress: (d, t) => progress.push([d, t]) });
    expect(one.windows).toBe(7);
    expect(Math.abs(one.ppl - want) / want).toBeLessThan(1e-4);
    expect(Math.abs(three.ppl - one.ppl) / one.ppl).toBeLessThan(1e-6);
    expect(progress).toEqual([
      [0, 7], // before the first window: the reporter's clock starts here
      [3, 7],
      [6, 7],
      [7, 7],
    ]);
  });

  test('no tfjs tensor is left behind', async () => {
    const ids = randomIds(5 * seqlen, 25);
    await perplexityOfIds(loaded.model, ids, { seqlen, batchSize: 2 }); // the model's cached RoPE table and mask settle
    const before = tf.memory().numTensors;
    await perplexityOfIds(loaded.model, ids, { seqlen, batchSize: 2 });
    await windowLosses(loaded.model, makeWindows(ids, seqlen));
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('errors', () => {
  const ids = randomIds(200, 31);

  test('seqlen beyond the model context', async () => {
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 65 })).rejects.toThrow(
      new ConfigError('seqlen 65 exceeds the model context (max_position_embeddings = 64)'),
    );
  });

  test('seqlen below 2 or not an integer', async () => {
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 1 })).rejects.toThrow(new ConfigError('seqlen must be an integer >= 2, got 1'));
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 8.5 })).rejects.toThrow(new ConfigError('seqlen must be an integer >= 2, got 8.5'));
  });

  test('text shorter than one window', async () => {
    await expect(perplexityOfIds(loaded.model, ids.slice(0, 40), { seqlen: 64 })).rejects.toThrow(
      new DataError('text of 40 tokens is shorter than one window of 64'),
    );
  });

  test('maxWindows not a positive integer (slice(0, -1) would silently drop the last window)', async () => {
    for (const bad of [0, -1, 1.5]) {
      await expect(perplexityOfIds(loaded.model, ids, { seqlen: 8, maxWindows: bad })).rejects.toThrow(
        new ConfigError(`maxWindows must be a positive integer, got ${bad}`),
      );
    }
  });

  test('batch size not a positive integer', async () => {
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 8, batchSize: 0 })).rejects.toThrow(
      new ConfigError('batchSize must be a positive integer, got 0'),
    );
  });

  test('the caller names the options: an experiment file gets its key paths (eval.seqlen), the CLI its flags', async () => {
    const optionName = keyPath('eval');
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 65, optionName })).rejects.toThrow(
      new ConfigError('eval.seqlen 65 exceeds the model context (max_position_embeddings = 64)'),
    );
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 8, maxWindows: 0, optionName })).rejects.toThrow(
      new ConfigError('eval.maxWindows must be a positive integer, got 0'),
    );
    await expect(perplexityOfIds(loaded.model, ids, { seqlen: 65, optionName: cliFlag })).rejects.toThrow(
      new ConfigError('--seqlen 65 exceeds the model context (max_position_embeddings = 64)'),
    );
  });
});

describe('evaluation token streams', () => {
  /** One token per whitespace-separated word (id = 10 + its number); records every encode call. */
  function wordTokenizer(): TextTokenizer & { calls: { text: string; special: boolean | undefined }[] } {
    const calls: { text: string; special: boolean | undefined }[] = [];
    return {
      calls,
      bosId: 1,
      eosId: 2,
      encode(text, options) {
        calls.push({ text, special: options?.addSpecialTokens });
        const words = text.split(/\s+/).filter(Boolean).map((w) => 10 + Number(w.replace(/\D/g, '')));
        return options?.addSpecialTokens ? [1, ...words] : words;
      },
      decode: () => '',
    };
  }

  test('wikitext2: every row (empty ones too) joined with "\\n\\n", tokenized once with BOS', async () => {
    const file = join(tmp, 'wiki.jsonl');
    const rows = [' = Title = ', '', ' w1 w2 ', '', ' w3'];
    writeFileSync(file, rows.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const tok = wordTokenizer();
    const ids = await evaluationIds('wikitext2', file, tok, 2);
    expect(tok.calls).toEqual([{ text: ' = Title = \n\n\n\n w1 w2 \n\n\n\n w3', special: true }]);
    expect(ids).toEqual([1, 10, 10, 10, 11, 12, 13]); // not cut: WikiText-2 is scored whole
  });

  test('c4: the first 1100 documents joined with " ", tokenized once, cut to 256 x seqlen tokens', async () => {
    const file = join(tmp, 'c4.jsonl');
    const docs = Array.from({ length: 1300 }, (_, i) => `d${i}`);
    writeFileSync(file, docs.map((text, i) => JSON.stringify({ text, url: `u${i}` })).join('\n') + '\n');
    const tok = wordTokenizer();
    const ids = await evaluationIds('c4', file, tok, 3); // 256 * 3 = 768 of the 1101 tokens
    expect(tok.calls).toEqual([{ text: docs.slice(0, 1100).join(' '), special: true }]);
    expect(ids).toEqual([1, ...docs.slice(0, 767).map((_, i) => 10 + i)]);
    // a seqlen whose 256 windows exceed the text keeps all of it
    const all = await evaluationIds('c4', file, wordTokenizer(), 8);
    expect(all).toHaveLength(1101);
    expect(all[1100]).toBe(10 + 1099);
  });
});
