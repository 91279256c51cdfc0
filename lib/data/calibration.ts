/**
 * Calibration windows exactly as the reference draws them (docs/methods.md section 1), with Python's `random`
 * reproduced bit for bit (random.ts), so the same file, tokenizer and seed give the same windows as the Python code.
 *
 * Documents (C4):  random.seed(seed)
 *                  for each sample: repeat d = randint(0, ndocs-1); ids = tokenize(doc[d]) until len(ids) > seqlen
 *                                   s = randint(0, len(ids)-seqlen-1); window = ids[s : s+seqlen]
 * One text (WikiText-2 train, joined with " "): ids = tokenize(text) once; per sample s = randint(0, len-seqlen-1).
 * Token ids include what the tokenizer's post-processor adds (the BOS for LLaMA), as the reference's
 * `tokenizer(text)` does.
 */
import type { TextTokenizer } from '../model/tokenizer-types.js';
import { ConfigError, DataError } from '../errors.js';
import { sha256Hex } from '../platform/index.js';
import { PythonRandom } from './random.js';
import type { ReadRowsOptions, SourceFormat } from './rows.js';
import { detectFormat, readTexts } from '../platform/data.js';

/** One calibration sample: `ids = tokenize(documents[doc]).slice(offset, offset + seqlen)`. */
export interface CalibrationWindow {
  doc: number; // index of the document drawn (0 for windows cut from one joined text)
  offset: number; // start of the window in that document's token ids
  ids: number[]; // seqlen token ids
}

/** The windows in draw order and a fingerprint of their token ids. */
export interface CalibrationSet {
  windows: CalibrationWindow[];
  hash: string; // windowsHash(windows)
}

export interface SampleWindowsOptions {
  documents: string[];
  tokenizer: TextTokenizer;
  nsamples: number; // number of windows (reference: 128)
  seqlen: number; // tokens per window (reference: the model's context)
  seed: number | bigint; // Python `random.seed` argument (reference: 0)
  /** Give up after this many document draws in all (default 1000 * nsamples): no document may be long enough. */
  maxDraws?: number;
}

function checkCounts(nsamples: number, seqlen: number): void {
  if (!Number.isSafeInteger(nsamples) || nsamples < 1) {
    throw new ConfigError(`nsamples ${nsamples}: expected a positive integer number of calibration windows`);
  }
  if (!Number.isSafeInteger(seqlen) || seqlen < 1) {
    throw new ConfigError(`seqlen ${seqlen}: expected a positive integer number of tokens per window`);
  }
}

/** sha256 (hex) of all windows' token ids, in order, each as a little-endian int32. */
export function windowsHash(windows: readonly { ids: readonly number[] }[]): Promise<string> {
  const parts = windows.map(({ ids }) => {
    const bytes = new Uint8Array(ids.length * 4);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, i) => view.setInt32(i * 4, id, true));
    return bytes;
  });
  return sha256Hex(...parts);
}

/**
 * Draw `nsamples` windows of `seqlen` tokens from `documents` as the reference's C4 loader does. Each document is
 * tokenized at most once (a document can be drawn again). Throws DataError when `maxDraws` draws found no document
 * longer than `seqlen` tokens.
 */
export async function sampleWindows(options: SampleWindowsOptions): Promise<CalibrationSet> {
  const { documents, tokenizer, nsamples, seqlen, seed } = options;
  checkCounts(nsamples, seqlen);
  if (documents.length === 0) throw new DataError('calibration documents: the list is empty');
  const maxDraws = options.maxDraws ?? 1000 * nsamples;
  if (!Number.isSafeInteger(maxDraws) || maxDraws < 1) {
    throw new ConfigError(`maxDraws ${maxDraws}: expected a positive integer`);
  }
  const rng = new PythonRandom(seed);
  const cache = new Map<number, number[]>();
  let longest = 0;
  let draws = 0;
  const windows: CalibrationWindow[] = [];
  for (let sample = 0; sample < nsamples; sample++) {
    let doc: number;
    let ids: number[];
    for (;;) {
      if (draws >= maxDraws) {
        throw new DataError(
          `calibration documents: no document longer than seqlen=${seqlen} tokens after ${draws} draws ` +
            `(${cache.size} of ${documents.length} documents tokenized, the longest has ${longest} tokens); ` +
            'use a smaller seqlen or longer documents',
        );
      }
      draws++;
      doc = rng.randint(0, documents.length - 1);
      let cached = cache.get(doc);
      if (cached === undefined) {
        cached = tokenizer.encode(documents[doc]!, { addSpecialTokens: true });
        cache.set(doc, cached);
        longest = Math.max(longest, cached.length);
      }
      ids = cached;
      if (ids.length > seqlen) break;
    }
    const offset = rng.randint(0, ids.length - seqlen - 1);
    windows.push({ doc, offset, ids: ids.slice(offset, offset + seqlen) });
  }
  return { windows, hash: await windowsHash(windows) };
}

/**
 * Windows cut from one text tokenized once (the reference's WikiText-2 train loader, whose text is the rows joined
 * with " "): `s = randint(0, ntokens - seqlen - 1)` per sample, with the same generator. Every window has doc 0.
 */
export async function sampleWindowsFromText(
  text: string,
  tokenizer: TextTokenizer,
  nsamples: number,
  seqlen: number,
  seed: number | bigint,
): Promise<CalibrationSet> {
  checkCounts(nsamples, seqlen);
  const ids = tokenizer.encode(text, { addSpecialTokens: true });
  if (ids.length <= seqlen) {
    throw new DataError(
      `calibration text: ${ids.length} tokens, need more than seqlen=${seqlen} to cut windows from it`,
    );
  }
  const rng = new PythonRandom(seed);
  const windows: CalibrationWindow[] = [];
  for (let sample = 0; sample < nsamples; sample++) {
    const offset = rng.randint(0, ids.length - seqlen - 1);
    windows.push({ doc: 0, offset, ids: ids.slice(offset, offset + seqlen) });
  }
  return { windows, hash: await windowsHash(windows) };
}

export interface CalibrationFileOptions {
  tokenizer: TextTokenizer;
  nsamples: number;
  seqlen: number;
  seed: number | bigint;
  /**
   * `'documents'`: every row is a document, drawn as C4's (default for jsonl, json and parquet files);
   * `'joined'`: all rows joined with `separator` and tokenized once, as WikiText-2 train (default for text files,
   * whose whole content is then the text).
   */
  mode?: 'documents' | 'joined';
  separator?: string; // joined mode: between rows (default " ", as the reference joins WikiText-2 train)
  field?: string; // the string field holding the text (default "text")
  limit?: number; // read only the first `limit` rows
  format?: SourceFormat; // file layout; default from the extension
  textUnit?: ReadRowsOptions['textUnit']; // plain text: one row per file (default) or per line
  maxDraws?: number; // documents mode: see SampleWindowsOptions
}

/**
 * Calibration windows from a data file (any format `readTexts` reads). JSONL/JSON/Parquet rows are documents
 * sampled as C4 is; a plain-text file is one text (or its lines joined, with `textUnit: 'line'`) cut as WikiText-2
 * train is.
 */
export async function calibrationFromFile(path: string, options: CalibrationFileOptions): Promise<CalibrationSet> {
  const { tokenizer, nsamples, seqlen, seed, separator = ' ' } = options;
  checkCounts(nsamples, seqlen);
  const format = options.format ?? detectFormat(path).format;
  const mode = options.mode ?? (format === 'text' ? 'joined' : 'documents');
  if (mode !== 'documents' && mode !== 'joined') {
    throw new ConfigError(`calibration mode "${String(mode)}": expected "documents" or "joined"`);
  }
  const texts = await readTexts(path, {
    format,
    ...(options.field !== undefined ? { field: options.field } : {}),
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    ...(options.textUnit !== undefined ? { textUnit: options.textUnit } : {}),
  });
  if (mode === 'joined') {
    try {
      return await sampleWindowsFromText(texts.join(separator), tokenizer, nsamples, seqlen, seed);
    } catch (e) {
      if (e instanceof DataError) throw new DataError(`${path}: ${e.message}`);
      throw e;
    }
  }
  try {
    return await sampleWindows({
      documents: texts,
      tokenizer,
      nsamples,
      seqlen,
      seed,
      ...(options.maxDraws !== undefined ? { maxDraws: options.maxDraws } : {}),
    });
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${path}: ${e.message}`);
    throw e;
  }
}
