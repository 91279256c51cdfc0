import { execFileSync } from 'node:child_process';
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
import { sharedPath } from '../helpers/shared.js';

/** Run a Python 3 script with a JSON value on stdin; parse its stdout as JSON. */
function python(script: string, input: unknown): unknown {
  const out = execFileSync('python3', ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out);
}

/** The reference's C4 loop (Wanda's get_c4) on document token lengths: prints the (doc, offset) pairs of each run. */
const PY_REPLAY_DOCS = `
import json, random, sys
cfg = json.load(sys.stdin)
lens = cfg["lens"]  # token count of each document (BOS included); None: never drawn by our sampler
out = []
for run in cfg["runs"]:
    random.seed(int(run["seed"]))  # seeds travel as strings: bigints too
    seqlen = run["seqlen"]
    pairs = []
    for _ in range(run["nsamples"]):
        while True:
            i = random.randint(0, len(lens) - 1)
            n = lens[i]
            if n is None:  # we never drew this document, so the draws already differ
                print(json.dumps({"python drew a document ours did not": i}))
                sys.exit(0)
            if n > seqlen:
                break
        i2 = random.randint(0, n - seqlen - 1)
        pairs.append([i, i2])
    out.append(pairs)
print(json.dumps(out))
`;

/** The reference's WikiText-2 train loop on one text of `ntokens` tokens. */
const PY_REPLAY_TEXT = `
import json, random, sys
cfg = json.load(sys.stdin)
out = []
for run in cfg["runs"]:
    random.seed(int(run["seed"]))
    out.append([random.randint(0, cfg["ntokens"] - run["seqlen"] - 1) for _ in range(run["nsamples"])])
print(json.dumps(out))
`;

/** sha256 of the windows' ids as little-endian int32, computed by Python. */
const PY_HASH = `
import hashlib, json, struct, sys
windows = json.load(sys.stdin)
h = hashlib.sha256()
for ids in windows:
    h.update(struct.pack("<%di" % len(ids), *ids))
print(json.dumps(h.hexdigest()))
`;

/** Wraps a tokenizer and remembers every encoding (shared by all tests: the real tokenizer is the slow part). */
class CachingTokenizer implements TextTokenizer {
  private readonly cache = new Map<string, number[]>();
  constructor(private readonly inner: TextTokenizer) {}
  get bosId(): number | null {
    return this.inner.bosId;
  }
  get eosId(): number | null {
    return this.inner.eosId;
  }
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const key = `${options.addSpecialTokens ?? true ? 1 : 0}${text}`;
    let ids = this.cache.get(key);
    if (ids === undefined) {
      ids = this.inner.encode(text, options);
      this.cache.set(key, ids);
    }
    return ids;
  }
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string {
    return this.inner.decode(ids, options);
  }
  /** Token count of `text` (with special tokens) if it was encoded before, else null. */
  knownLength(text: string): number | null {
    return this.cache.get(`1${text}`)?.length ?? null;
  }
}

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
  c4Docs = await readTexts(sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'));
  tokenizer = new CachingTokenizer(HfTokenizer.fromFolder(sharedPath('models', 'TinyStories-656K')));
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-calibration-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('sampleWindows on C4 (TinyStories-656K tokenizer)', () => {
  let set: CalibrationSet;
  beforeAll(() => {
    set = sampleWindows({ documents: c4Docs, tokenizer, nsamples: 32, seqlen: 512, seed: 0 });
  });

  test('seed 0, 32 x 512: the reference (document, offset) picks and window tokens', () => {
    const picks = set.windows.map((w) => [w.doc, w.offset]);
    expect(picks.slice(0, 5)).toEqual([[394, 215], [41, 33], [523, 124], [414, 940], [849, 155]]);
    expect(picks[31]).toEqual([208, 818]);
    expect(set.windows).toHaveLength(32);
    expect(set.windows[0]!.ids.slice(0, 8)).toEqual([888, 745, 443, 73, 578, 123, 150, 107]);
    expect(set.windows[31]!.ids.slice(0, 8)).toEqual([1054, 64, 92, 507, 71, 102, 329, 301]);
    for (const w of set.windows) {
      expect(w.ids).toHaveLength(512);
      // the window is the slice of the document's ids *with* the BOS the tokenizer adds
      const ids = tokenizer.encode(c4Docs[w.doc]!, { addSpecialTokens: true });
      expect(ids[0]).toBe(tokenizer.bosId);
      expect(w.ids).toEqual(ids.slice(w.offset, w.offset + 512));
    }
  });

  test('the hash is sha256 of the ids as little-endian int32 (checked with Python) and is stable', () => {
    expect(set.hash).toBe(windowsHash(set.windows));
    expect(set.hash).toBe(python(PY_HASH, set.windows.map((w) => w.ids)));
    expect(set.hash).toBe('9e28729f7a144a170ba9e3f8f154009be59b4dca14388fa9ec57d3b861710898');
  });

  test('the (doc, offset) choices equal a Python replay of the reference loop for several seeds and sizes', () => {
    const runs: { seed: number; nsamples: number; seqlen: number }[] = [
      { seed: 0, nsamples: 32, seqlen: 512 },
      { seed: 1, nsamples: 16, seqlen: 128 },
      { seed: 42, nsamples: 24, seqlen: 1024 },
      { seed: 2 ** 32 + 5, nsamples: 8, seqlen: 2048 },
      { seed: 123456789, nsamples: 40, seqlen: 256 },
      { seed: 7, nsamples: 3, seqlen: 1 },
    ];
    const sets = runs.map((r) =>
      sampleWindows({ documents: c4Docs, tokenizer, nsamples: r.nsamples, seqlen: r.seqlen, seed: r.seed }),
    );
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

  test('(doc, offset) choices equal the Python replay for many seeds and sizes, bigint seeds included', () => {
    const runs: { seed: number | bigint; nsamples: number; seqlen: number }[] = [];
    const seeds: (number | bigint)[] = [
      0, 1, 2, 3, 42, 1234, 2 ** 31 - 1, 2 ** 32, 2 ** 32 + 5, 123456789, 2n ** 70n + 3n,
    ];
    seeds.forEach((seed, i) => runs.push({ seed, nsamples: 5 + ((i * 7) % 40), seqlen: seqlens[i % seqlens.length]! }));
    const sets = runs.map((r) => sampleWindows({ documents: docs, tokenizer: lengthTokenizer, ...r }));
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

  test('a document drawn again is not tokenized again', () => {
    const tok = counting(lengthTokenizer);
    const set = sampleWindows({ documents: ['10', '3', '50', '7'], tokenizer: tok, nsamples: 200, seqlen: 8, seed: 5 });
    expect(set.windows).toHaveLength(200);
    expect(new Set(set.windows.map((w) => w.doc))).toEqual(new Set([0, 2])); // only these are longer than 8
    expect(tok.calls).toBe(4); // 200+ draws, each of the 4 documents encoded once
  });

  test('the same inputs give the same windows and hash; another seed gives others', () => {
    const a = sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 9 });
    const b = sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 9 });
    const c = sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 10, seqlen: 100, seed: 10 });
    expect(b).toEqual(a);
    expect(c.hash).not.toBe(a.hash);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('no document long enough: DataError after 1000 * nsamples draws naming seqlen and the longest', () => {
    const tok = counting(lengthTokenizer);
    const run = (): unknown =>
      sampleWindows({ documents: ['5', '12', '9'], tokenizer: tok, nsamples: 2, seqlen: 12, seed: 0 });
    expect(run).toThrow(DataError);
    expect(run).toThrow(
      'calibration documents: no document longer than seqlen=12 tokens after 2000 draws ' +
        '(3 of 3 documents tokenized, the longest has 12 tokens); use a smaller seqlen or longer documents',
    );
    expect(() =>
      sampleWindows({ documents: docs, tokenizer: lengthTokenizer, nsamples: 4, seqlen: 5000, seed: 0, maxDraws: 50 }),
    ).toThrow(
      /no document longer than seqlen=5000 tokens after 50 draws \(\d+ of 300 documents tokenized, the longest has \d+ tokens\)/,
    );
  });

  test('bad arguments', () => {
    const base = { documents: docs, tokenizer: lengthTokenizer, nsamples: 2, seqlen: 8, seed: 0 };
    expect(() => sampleWindows({ ...base, nsamples: 0 })).toThrow(ConfigError);
    expect(() => sampleWindows({ ...base, nsamples: 0 })).toThrow('nsamples 0: expected a positive integer');
    expect(() => sampleWindows({ ...base, seqlen: 2.5 })).toThrow('seqlen 2.5: expected a positive integer');
    expect(() => sampleWindows({ ...base, maxDraws: 0 })).toThrow('maxDraws 0: expected a positive integer');
    expect(() => sampleWindows({ ...base, seed: 0.5 })).toThrow(ConfigError);
    expect(() => sampleWindows({ ...base, documents: [] })).toThrow('calibration documents: the list is empty');
  });
});

describe('sampleWindowsFromText (WikiText-2 train style)', () => {
  test('offsets equal the Python replay; windows are slices of one tokenization with BOS', () => {
    const text = c4Docs.slice(0, 12).join(' ');
    const ids = tokenizer.encode(text, { addSpecialTokens: true });
    expect(ids[0]).toBe(tokenizer.bosId);
    const runs = [
      { seed: 0, nsamples: 20, seqlen: 256 },
      { seed: 3, nsamples: 7, seqlen: ids.length - 1 }, // the only window: offset 0
      { seed: 2 ** 32 + 5, nsamples: 30, seqlen: 64 },
    ];
    const sets = runs.map((r) => sampleWindowsFromText(text, tokenizer, r.nsamples, r.seqlen, r.seed));
    const py = python(PY_REPLAY_TEXT, { ntokens: ids.length, runs }) as number[][];
    expect(sets.map((s) => s.windows.map((w) => w.offset))).toEqual(py);
    expect(py[1]!.every((o) => o === 0)).toBe(true);
    for (const [k, set] of sets.entries()) {
      const seqlen = runs[k]!.seqlen;
      for (const w of set.windows) {
        expect(w.doc).toBe(0);
        expect(w.ids).toEqual(ids.slice(w.offset, w.offset + seqlen));
      }
      expect(set.hash).toBe(windowsHash(set.windows));
    }
  });

  test('a text not longer than seqlen is a DataError giving both lengths', () => {
    expect(() => sampleWindowsFromText('100', lengthTokenizer, 4, 100, 0)).toThrow(
      'calibration text: 100 tokens, need more than seqlen=100 to cut windows from it',
    );
    expect(() => sampleWindowsFromText('100', lengthTokenizer, 0, 10, 0)).toThrow(ConfigError);
  });
});

describe('calibrationFromFile', () => {
  test('JSONL rows are documents sampled as C4 (same result as sampleWindows on the texts)', async () => {
    const docs = c4Docs.slice(0, 100);
    const p = join(tmp, 'c4-small.jsonl');
    writeFileSync(p, docs.map((text, i) => JSON.stringify({ id: i, text })).join('\n'));
    const fromFile = await calibrationFromFile(p, { tokenizer, nsamples: 6, seqlen: 128, seed: 0 });
    expect(fromFile).toEqual(sampleWindows({ documents: docs, tokenizer, nsamples: 6, seqlen: 128, seed: 0 }));
    const limited = await calibrationFromFile(p, { tokenizer, nsamples: 6, seqlen: 128, seed: 0, limit: 50 });
    expect(limited.windows.every((w) => w.doc < 50)).toBe(true);
  });

  test('the shared WikiText rows joined with " " and tokenized once', async () => {
    const path = sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl');
    const rows = (await readTexts(path)).slice(0, 200);
    const opts = { tokenizer, nsamples: 5, seqlen: 200, seed: 0, mode: 'joined', limit: 200 } as const;
    const set = await calibrationFromFile(path, opts);
    expect(set).toEqual(sampleWindowsFromText(rows.join(' '), tokenizer, 5, 200, 0));
    const sep = await calibrationFromFile(path, { ...opts, separator: '\n\n' });
    expect(sep).toEqual(sampleWindowsFromText(rows.join('\n\n'), tokenizer, 5, 200, 0));
  });

  test('a plain-text file is one text by default; with textUnit line its lines are joined', async () => {
    const text = c4Docs.slice(0, 5).join('\n');
    const p = join(tmp, 'calib.txt');
    writeFileSync(p, text);
    const set = await calibrationFromFile(p, { tokenizer, nsamples: 4, seqlen: 64, seed: 1 });
    expect(set).toEqual(sampleWindowsFromText(text, tokenizer, 4, 64, 1));
    const lines = await calibrationFromFile(p, { tokenizer, nsamples: 4, seqlen: 64, seed: 1, textUnit: 'line' });
    expect(lines).toEqual(sampleWindowsFromText(text.split('\n').join(' '), tokenizer, 4, 64, 1));
    const docs = await calibrationFromFile(p, {
      tokenizer, nsamples: 4, seqlen: 64, seed: 1, textUnit: 'line', mode: 'documents',
    });
    expect(docs).toEqual(sampleWindows({ documents: text.split('\n'), tokenizer, nsamples: 4, seqlen: 64, seed: 1 }));
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
