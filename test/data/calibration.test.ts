import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../lib/errors.js';
import {
  calibrationFromFile,
  sampleWindows,
  sampleWindowsFromText,
  windowsHash,
  type CalibrationSet,
} from '../../lib/data/calibration.js';
import { readTexts } from '../../lib/data/sources.js';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import type { TextTokenizer } from '../../lib/model/tokenizer-types.js';
import { CachingTokenizer, python, PY_HASH, PY_REPLAY_DOCS, PY_REPLAY_TEXT } from '../helpers/calibration-reference.js';
import { jsonl, syntheticDocs, syntheticWikiRows } from '../helpers/synthetic-text.js';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

/** A tokenizer for synthetic documents: the document "n" encodes to [BOS=1, 2, 3, ..., n] (n tokens). */
const lengthTokenizer: TextTokenizer = {
  bosId: 1,
  eosId: null,
  encode: (text) => Array.from({ length: Number(text) }, (_, i) => i + 1),
  decode: (ids) => String(ids.length),
};

let c4Docs: string[];
let tokenizer: CachingTokenizer;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-calibration-'));
  // 1,000 seeded C4-like documents, every 40th made long (2,048-token windows need a few, as real C4 has)
  const docs = syntheticDocs(1000, 1).map((d) => d.text);
  c4Docs = docs.map((d, i) => (i % 40 === 7 ? docs.slice(i, i + 12).join('\n') : d));
  writeTinyTokenizer(join(tmp, 'tokenizer'));
  tokenizer = new CachingTokenizer(await HfTokenizer.fromFolder(join(tmp, 'tokenizer')));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('sampleWindows on C4-like documents (a BPE tokenizer)', () => {
  let set: CalibrationSet;
  beforeAll(async () => {
    set = await sampleWindows({ documents: c4Docs, tokenizer, nsamples: 32, seqlen: 512, seed: 0 });
  });

  test('seed 0, 32 x 512: each window is the slice of its document\'s ids with BOS at the picked offset', () => {
    expect(set.windows).toHaveLength(32);
    for (const w of set.windows) {
      expect(w.ids).toHaveLength(512);
      // the window is the slice of the document's ids *with* the BOS the tokenizer adds
      const ids = tokenizer.encode(c4Docs[w.doc]!, { addSpecialTokens: true });
      expect(ids[0]).toBe(tokenizer.bosId);
      expect(w.offset).toBeLessThanOrEqual(ids.length - 512 - 1);
      expect(w.ids).toEqual(ids.slice(w.offset, w.offset + 512));
    }
  });

  test('the hash is sha256 of the ids as little-endian int32 (checked with Python) and is stable', async () => {
    expect(set.hash).toBe(await windowsHash(set.windows));
    expect(set.hash).toBe(python(PY_HASH, set.windows.map((w) => w.ids)));
    expect((await sampleWindows({ documents: c4Docs, tokenizer, nsamples: 32, seqlen: 512, seed: 0 })).hash).toBe(set.hash);
  });

  test('the (doc, offset) choices equal a Python replay of the reference loop for several seeds and sizes', async () => {
    const runs: { seed: number; nsamples: number; seqlen: number }[] = [
      { seed: 0, nsamples: 32, seqlen: 512 },
      { seed: 1, nsamples: 16, seqlen: 128 },
      { seed: 42, nsamples: 24, seqlen: 1024 },
      { seed: 2 ** 32 + 5, nsamples: 8, seqlen: 2048 },
      { seed: 123456789, nsamples: 40, seqlen: 256 },
      { seed: 7, nsamples: 3, seqlen: 1 },
    ];
    const sets = await Promise.all(runs.map((r) =>
      sampleWindows({ documents: c4Docs, tokenizer, nsamples: r.nsamples, seqlen: r.seqlen, seed: r.seed }),
    ));
    // Python needs the lengths of the documents it draws: when its draws equal ours, those are the ones we drew
    // (and tokenized); a document we never drew stops the replay with a message the comparison below shows.
    const lens = c4Docs.map((d) => tokenizer.knownLength(d));
    const pyRuns = runs.map((r) => ({ ...r, seed: String(r.seed) }));
    const py = python(PY_REPLAY_DOCS, { lens, runs: pyRuns }) as number[][][];
    expect(sets.map((s) => s.windows.map((w) => [w.doc, w.offset]))).toEqual(py);
    expect(py[3]).toHaveLength(8); // the 2048-token run found its (rare) long documents
  });
});

/** Counts encode calls made through it (no caching). */
function counting(inner: TextTokenizer): TextTokenizer & { calls: number } {
  const t = {
    calls: 0,
    bosId: inner.bosId,
    eosId: inner.eosId,
    encode(text: string, options?: { addSpecialTokens?: boolean }): number[] {
      t.calls++;
      return inner.encode(text, options);
    },
    decode: (ids: number[]) => inner.decode(ids),
  };
  return t;
}

describe('sampleWindows on synthetic documents', () => {
  // 300 documents: lengths 1..3000 from a fixed LCG (many too short for the larger seqlens), every third one at
  // the boundary seqlen-1, seqlen or seqlen+1 of one of the seqlens used (a window needs len > seqlen strictly)
  const seqlens = [1, 64, 999, 2048, 2900];
  const lens: number[] = [];
  let x = 12345;
  for (let i = 0; i < 300; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    lens.push(i % 3 === 0 ? Math.max(1, seqlens[x % 5]! + (x % 3) - 1) : 1 + (x % 3000));
  }
  const docs = lens.map(String);

  test('(doc, offset) choices equal the Python replay for many seeds and sizes, bigint seeds included', async () => {
    const runs: { seed: number | bigint; nsamples: number; seqlen: number }[] = [];
    const seeds: (number | bigint)[] = [
      0, 1, 2, 3, 42, 1234, 2 ** 31 - 1, 2 ** 32, 2 ** 32 + 5, 123456789, 2n ** 70n + 3n,
    ];
    seeds.forEach((seed, i) => runs.push({ seed, nsamples: 5 + ((i * 7) % 40), seqlen: seqlens[i % seqlens.length]! }));
    const sets = await Promise.all(runs.map((r) => sampleWindows({ documents: docs, tokenizer: lengthTokenizer, ...r })));
    const py = python(PY_REPLAY_DOCS, {
      lens,
      runs: runs.map((r) => ({ ...r, seed: String(r.seed) })),
    }) as number[][][];
    expect(sets.map((s) => s.windows.map((w) => [w.doc, w.offset]))).toEqual(py);
    const boundary = sets.flatMap((set, k) => set.windows.filter((w) => lens[w.doc] === runs[k]!.seqlen + 1));
    expect(boundary.length).toBeGreaterThan(0); // windows from documents just long enough (offset 0) were drawn
    for (const [k, set] of sets.entries()) {
      const seqlen = runs[k]!.seqlen;
      for (const w of set.windows) {
        expect(lens[w.doc]!).toBeGreaterThan(seqlen);
        expect(w.ids).toEqual(Array.from({ length: seqlen }, (_, j) => w.offset + j + 1));
      }
    }
  });

  test('a document drawn again is not tokenized again', async () => {
    const tok = counting(lengthTokenizer);
    const set = await sampleWindows({ documents: ['10', '3', '50', '7'], tokenizer: tok, nsamples: 200, seqlen: 8, seed: 5 });
    expect(set.windows).toHaveLength(200);
    expect(new Set(set.windows.map((w) => w.doc))).toEqual(new Set([0, 2])); // only these are longer than 8
    expect(tok.calls).toBe(4); // 200+ draws, each of the 4 documents encoded once
  });

  test('the same inputs give the same windows and hash; another seed gives others', async () => {
    const a = await sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 9 });
    const b = await sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 9 });
    const c = await sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 10 });
    expect(b).toEqual(a);
    expect(c.hash).not.toBe(a.hash);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('no document long enough: DataError after 1000 * nsamples draws naming seqlen and the longest', async () => {
    const tok = counting(lengthTokenizer);
    const run = (): Promise<unknown> =>
      sampleWindows({ documents: ['5', '12', '9'], tokenizer: tok, nsamples: 2, seqlen: 12, seed: 0 });
    await expect(run()).rejects.toThrow(DataError);
    await expect(run()).rejects.toThrow(
      'calibration documents: no document longer than seqlen=12 tokens after 2000 draws ' +
        '(3 of 3 documents tokenized, the longest has 12 tokens); use a smaller seqlen or longer documents',
    );
    await expect(
      sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 4, seqlen: 5000, seed: 0, maxDraws: 50 }),
    ).rejects.toThrow(
      /no document longer than seqlen=5000 tokens after 50 draws \(\d+ of 300 documents tokenized, the longest has \d+ tokens\)/,
    );
  });

  test('bad arguments', async () => {
    const base = { documents: docs, tokenizer: lengthTokenizer, nsamples: 2, seqlen: 8, seed: 0 };
    await expect(sampleWindows({ ...base, nsamples: 0 })).rejects.toThrow(ConfigError);
    await expect(sampleWindows({ ...base, nsamples: 0 })).rejects.toThrow('nsamples 0: expected a positive integer');
    await expect(sampleWindows({ ...base, seqlen: 2.5 })).rejects.toThrow('seqlen 2.5: expected a positive integer');
    await expect(sampleWindows({ ...base, maxDraws: 0 })).rejects.toThrow('maxDraws 0: expected a positive integer');
    await expect(sampleWindows({ ...base, seed: 0.5 })).rejects.toThrow(ConfigError);
    await expect(sampleWindows({ ...base, documents: [] })).rejects.toThrow('calibration documents: the list is empty');
  });
});

describe('sampleWindowsFromText (WikiText-2 train style)', () => {
  test('offsets equal the Python replay; windows are slices of one tokenization with BOS', async () => {
    const text = c4Docs.slice(0, 12).join(' ');
    const ids = tokenizer.encode(text, { addSpecialTokens: true });
    expect(ids[0]).toBe(tokenizer.bosId);
    const runs = [
      { seed: 0, nsamples: 20, seqlen: 256 },
      { seed: 3, nsamples: 7, seqlen: ids.length - 1 }, // the only window: offset 0
      { seed: 2 ** 32 + 5, nsamples: 30, seqlen: 64 },
    ];
    const sets = await Promise.all(runs.map((r) => sampleWindowsFromText(text, tokenizer, r.nsamples, r.seqlen, r.seed)));
    const py = python(PY_REPLAY_TEXT, { ntokens: ids.length, runs }) as number[][];
    expect(sets.map((s) => s.windows.map((w) => w.offset))).toEqual(py);
    expect(py[1]!.every((o) => o === 0)).toBe(true);
    for (const [k, set] of sets.entries()) {
      const seqlen = runs[k]!.seqlen;
      for (const w of set.windows) {
        expect(w.doc).toBe(0);
        expect(w.ids).toEqual(ids.slice(w.offset, w.offset + seqlen));
      }
      expect(set.hash).toBe(await windowsHash(set.windows));
    }
  });

  test('a text not longer than seqlen is a DataError giving both lengths', async () => {
    await expect(sampleWindowsFromText('100', lengthTokenizer, 4, 100, 0)).rejects.toThrow(
      'calibration text: 100 tokens, need more than seqlen=100 to cut windows from it',
    );
    await expect(sampleWindowsFromText('100', lengthTokenizer, 0, 10, 0)).rejects.toThrow(ConfigError);
  });
});

describe('calibrationFromFile', () => {
  test('JSONL rows are documents sampled as C4 (same result as sampleWindows on the texts)', async () => {
    const docs = c4Docs.slice(0, 100);
    const p = join(tmp, 'c4-small.jsonl');
    writeFileSync(p, docs.map((text, i) => JSON.stringify({ id: i, text })).join('\n'));
    const fromFile = await calibrationFromFile(p, { tokenizer, nsamples: 6, seqlen: 128, seed: 0 });
    expect(fromFile).toEqual(await sampleWindows({ documents: docs, tokenizer, nsamples: 6, seqlen: 128, seed: 0 }));
    const limited = await calibrationFromFile(p, { tokenizer, nsamples: 6, seqlen: 128, seed: 0, limit: 50 });
    expect(limited.windows.every((w) => w.doc < 50)).toBe(true);
  });

  test('WikiText-like rows joined with " " and tokenized once', async () => {
    const path = join(tmp, 'wiki.jsonl');
    writeFileSync(path, jsonl(syntheticWikiRows(20, 2)));
    const rows = (await readTexts(path)).slice(0, 200);
    const opts = { tokenizer, nsamples: 5, seqlen: 200, seed: 0, mode: 'joined', limit: 200 } as const;
    const set = await calibrationFromFile(path, opts);
    expect(set).toEqual(await sampleWindowsFromText(rows.join(' '), tokenizer, 5, 200, 0));
    const sep = await calibrationFromFile(path, { ...opts, separator: '\n\n' });
    expect(sep).toEqual(await sampleWindowsFromText(rows.join('\n\n'), tokenizer, 5, 200, 0));
  });

  test('a plain-text file is one text by default; with textUnit line its lines are joined', async () => {
    const text = c4Docs.slice(0, 5).join('\n');
    const p = join(tmp, 'calib.txt');
    writeFileSync(p, text);
    const set = await calibrationFromFile(p, { tokenizer, nsamples: 4, seqlen: 64, seed: 1 });
    expect(set).toEqual(await sampleWindowsFromText(text, tokenizer, 4, 64, 1));
    const lines = await calibrationFromFile(p, { tokenizer, nsamples: 4, seqlen: 64, seed: 1, textUnit: 'line' });
    expect(lines).toEqual(await sampleWindowsFromText(text.split('\n').join(' '), tokenizer, 4, 64, 1));
    const docs = await calibrationFromFile(p, {
      tokenizer, nsamples: 4, seqlen: 64, seed: 1, textUnit: 'line', mode: 'documents',
    });
    expect(docs).toEqual(await sampleWindows({ documents: text.split('\n'), tokenizer, nsamples: 4, seqlen: 64, seed: 1 }));
  });

  test('errors name the file', async () => {
    const p = join(tmp, 'short.jsonl');
    writeFileSync(p, '{"text": "a b c"}\n{"text": "d"}\n');
    await expect(calibrationFromFile(p, { tokenizer, nsamples: 2, seqlen: 64, seed: 0 })).rejects.toThrow(
      `${p}: calibration documents: no document longer than seqlen=64 tokens after 2000 draws`,
    );
    await expect(
      calibrationFromFile(p, { tokenizer, nsamples: 2, seqlen: 64, seed: 0, mode: 'joined' }),
    ).rejects.toThrow(`${p}: calibration text: `);
    await expect(calibrationFromFile(p, { tokenizer, nsamples: 2, seqlen: 4, seed: 0, field: 'body' })).rejects.toThrow(
      `${p}: line 1: field "body" is missing (fields: text)`,
    );
    await expect(
      calibrationFromFile(p, { tokenizer, nsamples: 2, seqlen: 4, seed: 0, mode: 'mixed' as 'joined' }),
    ).rejects.toThrow('calibration mode "mixed": expected "documents" or "joined"');
  });
});
