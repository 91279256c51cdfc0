/** Training windows drawn with the reference's seeded sampler, the pruning run's calibration documents left out. */
import { existsSync, readFileSync, realpathSync } from '../platform/fs.js';
import { resolve } from '../platform/path.js';
import { ConfigError, DataError, optionKey, type OptionName } from '../errors.js';
import type { TextTokenizer } from '../model/tokenizer-types.js';
import { sampleWindows, sampleWindowsFromText, windowsHash } from '../data/calibration.js';
import { detectFormat, readTexts } from '../platform/data.js';

// ---------------------------------------------------------------------------------------------------------------
// training data

/** The pruning run's calibration windows, from its report.json. */
export interface CalibrationInfo {
  report: string;
  file: string;
  windows: [number, number][];
}

export function readCalibrationInfo(reportFile: string): CalibrationInfo | null {
  if (!existsSync(reportFile)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(reportFile, 'utf8'));
  } catch (e) {
    throw new DataError(`${reportFile}: cannot read as JSON (${(e as Error).message})`);
  }
  const cal = (raw as { calibration?: unknown } | null)?.calibration;
  if (cal === undefined || cal === null) return null;
  const c = cal as { file?: unknown; windows?: unknown };
  if (typeof c.file !== 'string' || !Array.isArray(c.windows)) {
    throw new DataError(`${reportFile}: field 'calibration' must have 'file' (string) and 'windows' ([doc, offset] pairs)`);
  }
  for (const w of c.windows) {
    if (!Array.isArray(w) || w.length !== 2 || !w.every((x) => Number.isInteger(x) && x >= 0)) {
      throw new DataError(`${reportFile}: calibration.windows entry ${JSON.stringify(w)} is not a [doc, offset] pair`);
    }
  }
  return { report: reportFile, file: c.file, windows: c.windows as [number, number][] };
}

/** Real path when the file exists, else the resolved path (for "is this the same file" checks). */
/** A path resolved through symlinks (the path itself when it does not exist). */
export function canonical(path: string): string {
  const p = resolve(path);
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The training windows and where they came from. */
export interface TrainingData {
  file: string;
  mode: 'documents' | 'joined';
  documents: number; // rows in the file
  excludedDocuments: number; // calibration documents skipped
  windows: { doc: number; offset: number; ids: number[] }[]; // doc = row index in the file
  hash: string;
}

export interface TrainingDataOptions {
  file: string;
  tokenizer: TextTokenizer;
  seqlen: number;
  count: number; // windows to draw
  seed: number;
  field?: string;
  excludeDocuments?: ReadonlySet<number>; // row indices never drawn (the calibration documents)
  optionName?: OptionName; // how messages name the file option (default `data`)
}

/**
 * Training windows with the reference's seeded sampler: rows of JSONL/JSON/Parquet files are documents drawn as
 * C4's (excluded rows removed first, indices mapped back to the file's); a plain-text file is one text cut at
 * random offsets. The first k windows of a draw of n > k are the windows of a draw of k (a resumed run that
 * trains longer sees the same data first).
 */
export async function trainingWindows(o: TrainingDataOptions): Promise<TrainingData> {
  const dataName = (o.optionName ?? optionKey)('data');
  const format = detectFormat(o.file).format;
  const texts = await readTexts(o.file, { format, ...(o.field !== undefined ? { field: o.field } : {}) });
  if (format === 'text') {
    if (o.excludeDocuments && o.excludeDocuments.size > 0) {
      throw new ConfigError(
        `${dataName} ${o.file}: the pruning run calibrated on windows of this same text; training windows cut from it ` +
          'could overlap them. Use another file',
      );
    }
    const set = await sampleWindowsFromText(texts.join(' '), o.tokenizer, o.count, o.seqlen, o.seed);
    return { file: o.file, mode: 'joined', documents: 1, excludedDocuments: 0, windows: set.windows, hash: set.hash };
  }
  const keep: number[] = [];
  texts.forEach((_, i) => {
    if (!o.excludeDocuments?.has(i)) keep.push(i);
  });
  if (keep.length === 0) {
    throw new DataError(`${dataName} ${o.file}: all ${texts.length} documents were used for calibration; nothing is left to train on`);
  }
  let set;
  try {
    set = await sampleWindows({ documents: keep.map((i) => texts[i]!), tokenizer: o.tokenizer, nsamples: o.count, seqlen: o.seqlen, seed: o.seed });
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${dataName} ${o.file}: ${e.message}`);
    throw e;
  }
  const windows = set.windows.map((w) => ({ ...w, doc: keep[w.doc]! }));
  return {
    file: o.file,
    mode: 'documents',
    documents: texts.length,
    excludedDocuments: texts.length - keep.length,
    windows,
    hash: await windowsHash(windows),
  };
}
