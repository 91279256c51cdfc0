/**
 * The calibration sampler on the shared data (C4 head, WikiText-2) with the TinyStories-656K tokenizer: the pinned
 * reference picks, window tokens and hash, and the Python replays. test/data/calibration.test.ts checks the same
 * code on seeded fixtures.
 */
import { sampleWindows, sampleWindowsFromText, windowsHash, calibrationFromFile, type CalibrationSet } from '../../lib/data/calibration.js';
import { readTexts } from '../../lib/data/sources.js';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import { CachingTokenizer, python, PY_HASH, PY_REPLAY_DOCS } from '../helpers/calibration-reference.js';
import { sharedPath } from '../helpers/shared.js';

let c4Docs: string[];
let tokenizer: CachingTokenizer;

beforeAll(async () => {
  c4Docs = await readTexts(sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'));
  tokenizer = new CachingTokenizer(await HfTokenizer.fromFolder(sharedPath('models', 'TinyStories-656K')));
});

describe('sampleWindows on C4 (TinyStories-656K tokenizer)', () => {
  let set: CalibrationSet;
  beforeAll(async () => {
    set = await sampleWindows({ documents: c4Docs, tokenizer, nsamples: 32, seqlen: 512, seed: 0 });
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

  test('the hash is sha256 of the ids as little-endian int32 (checked with Python) and is stable', async () => {
    expect(set.hash).toBe(await windowsHash(set.windows));
    expect(set.hash).toBe(python(PY_HASH, set.windows.map((w) => w.ids)));
    expect(set.hash).toBe('9e28729f7a144a170ba9e3f8f154009be59b4dca14388fa9ec57d3b861710898');
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

describe('calibrationFromFile on the shared WikiText-2 file', () => {
  test('the shared WikiText rows joined with " " and tokenized once', async () => {
    const path = sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl');
    const rows = (await readTexts(path)).slice(0, 200);
    const opts = { tokenizer, nsamples: 5, seqlen: 200, seed: 0, mode: 'joined', limit: 200 } as const;
    const set = await calibrationFromFile(path, opts);
    expect(set).toEqual(await sampleWindowsFromText(rows.join(' '), tokenizer, 5, 200, 0));
    const sep = await calibrationFromFile(path, { ...opts, separator: '\n\n' });
    expect(sep).toEqual(await sampleWindowsFromText(rows.join('\n\n'), tokenizer, 5, 200, 0));
  });
});
