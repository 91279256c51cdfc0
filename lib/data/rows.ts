/**
 * Rows and documents of data files, on any runtime: JSON lines (`.jsonl`, `.ndjson`), JSON (`.json`: an array of
 * objects, an object holding such a list, or JSON lines as in C4's `c4-train.*.json.gz`), Parquet (`.parquet`, via
 * hyparquet) and plain text (`.txt`, `.text`, `.raw`, `.md`). A trailing `.gz` on any of the text formats is
 * decompressed while reading. Everything that can go wrong with the file is a DataError naming the file, the line or
 * row, and the field. The bytes come through a platform's DataAccess: the Node layer's streams and zlib
 * (lib/data/sources.ts), or a browser layer's byte sources (lib/browser/data.ts).
 */
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type Compressors } from 'hyparquet';
import { readFile, statSync, type Stats } from '../platform/fs.js';
import { basename } from '../platform/path.js';
import { ConfigError, DataError } from '../errors.js';

/** A file's text as it is read: UTF-8 chunks (a character split between chunks kept whole); `close` stops reading. */
export interface TextStream {
  chunks: AsyncIterable<string>;
  close(): void;
}

/** How a platform reads the bytes of data files. */
export interface DataAccess {
  /** The text of the file at `path`, gunzipped first when `gzip`. */
  openText(path: string, gzip: boolean): TextStream;
  /** The file as hyparquet's random-access buffer (read by ranges, never whole). */
  parquetFile(path: string): Promise<AsyncBuffer>;
  /** Parquet codecs hyparquet lacks that the platform has (hyparquet has UNCOMPRESSED and SNAPPY itself). */
  parquetCompressors: Compressors;
}

/** How a file's content is laid out. */
export type SourceFormat = 'jsonl' | 'json' | 'parquet' | 'text';

/** A row as read from a file: column or key -> value. Parquet int64 values within 2^53 become numbers. */
export type Row = Record<string, unknown>;

export interface ReadRowsOptions {
  /** Layout of the file; default: from the extension (see `detectFormat`). */
  format?: SourceFormat;
  /** Read at most this many rows (a positive integer); reading stops early where the format allows. */
  limit?: number;
  /** Plain text: the whole file is one row (`'file'`, default) or every line is one (`'line'`, empty lines kept). */
  textUnit?: 'file' | 'line';
  /** JSON file holding an object: the key of its list of rows (default: its only array-valued key). */
  listKey?: string;
  /** Parquet: read only these columns (default: all). */
  columns?: string[];
}

export interface ReadTextsOptions extends ReadRowsOptions {
  /** The string field holding each document (default `'text'`; rows of plain-text files have only `text`). */
  field?: string;
}

/** The format a path's extension implies, and whether it is gzip-compressed. */
export interface DetectedFormat {
  format: SourceFormat;
  gzip: boolean;
}

const EXTENSIONS: Record<string, SourceFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.json': 'json',
  '.parquet': 'parquet',
  '.txt': 'text',
  '.text': 'text',
  '.raw': 'text',
  '.md': 'text',
};

/** Format implied by the file name: `x.jsonl`, `x.jsonl.gz`, `x.json`, `x.parquet`, `x.txt`, ... (case-insensitive). */
export function detectFormat(path: string): DetectedFormat {
  let name = basename(path).toLowerCase();
  const gzip = name.endsWith('.gz');
  if (gzip) name = name.slice(0, -3);
  const dot = name.lastIndexOf('.');
  const ext = dot >= 0 ? name.slice(dot) : '';
  const format = EXTENSIONS[ext];
  if (format === undefined || (gzip && format === 'parquet')) {
    const known = Object.keys(EXTENSIONS)
      .filter((e) => e !== '.parquet')
      .map((e) => `${e}, ${e}.gz`)
      .join(', ');
    throw new DataError(
      `${path}: unsupported file type "${ext}${gzip ? '.gz' : ''}"; expected one of ${known}, .parquet ` +
        '(or pass format explicitly to read it as jsonl, json, parquet or text)',
    );
  }
  return { format, gzip };
}

/** The file must exist, be a regular file and hold at least one byte. */
function checkFile(path: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch {
    throw new DataError(`${path}: file not found`);
  }
  if (!stats.isFile()) throw new DataError(`${path}: not a regular file (a directory?), expected a data file`);
  if (stats.size === 0) throw new DataError(`${path}: the file is empty (0 bytes)`);
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new ConfigError(`limit ${limit}: expected a positive integer number of rows`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const t = typeof value;
  return t === 'object' ? 'an object' : `a ${t}`;
}

function isRow(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function wrapStreamError(path: string, gzip: boolean, e: unknown): DataError {
  if (e instanceof DataError) return e;
  const what = gzip ? 'cannot read or gunzip' : 'cannot read';
  return new DataError(`${path}: ${what} (${(e as Error).message})`);
}

/**
 * Lines of a (possibly gzipped) text file with 1-based line numbers, split on `\n` with a trailing `\r` dropped;
 * no line after a final newline; a BOM at the start is dropped. Read and decompression errors become DataError.
 */
async function* readLines(access: DataAccess, path: string, gzip: boolean): AsyncGenerator<{ line: string; lineNo: number }> {
  const { chunks, close } = access.openText(path, gzip);
  let lineNo = 0;
  let pending: string[] = []; // pieces of a line not yet ended (kept as a list: a long line must not go quadratic)
  const emit = (text: string): { line: string; lineNo: number } => {
    lineNo++;
    let line = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (lineNo === 1 && line.startsWith('\uFEFF')) line = line.slice(1);
    return { line, lineNo };
  };
  try {
    for await (const chunk of chunks) {
      let start = 0;
      let nl = chunk.indexOf('\n');
      while (nl >= 0) {
        pending.push(chunk.slice(start, nl));
        const line = pending.join('');
        pending = [];
        yield emit(line);
        start = nl + 1;
        nl = chunk.indexOf('\n', start);
      }
      if (start < chunk.length) pending.push(chunk.slice(start));
    }
  } catch (e) {
    throw wrapStreamError(path, gzip, e);
  } finally {
    close();
  }
  if (pending.length > 0) yield emit(pending.join(''));
}

async function readWholeText(access: DataAccess, path: string, gzip: boolean): Promise<string> {
  const parts: string[] = [];
  const { chunks, close } = access.openText(path, gzip);
  try {
    for await (const chunk of chunks) parts.push(chunk);
  } catch (e) {
    throw wrapStreamError(path, gzip, e);
  } finally {
    close();
  }
  const text = parts.join('');
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/** One row and where it came from (`line 12`, `row 3`) for error messages. */
interface Located {
  row: Row;
  where: string;
}

function parseJsonLine(path: string, line: string, lineNo: number): Row {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    throw new DataError(`${path}:${lineNo}: invalid JSON line (${(e as Error).message})`);
  }
  if (!isRow(value)) {
    throw new DataError(`${path}:${lineNo}: expected a JSON object per line, found ${describe(value)}`);
  }
  return value;
}

async function* jsonLinesRows(
  path: string,
  lines: AsyncIterable<{ line: string; lineNo: number }>,
): AsyncGenerator<Located> {
  for await (const { line, lineNo } of lines) {
    if (line.trim() === '') continue;
    yield { row: parseJsonLine(path, line, lineNo), where: `line ${lineNo}` };
  }
}

/** The rows of a parsed JSON document: an array of objects, or an object holding one. */
function jsonDocumentRows(path: string, value: unknown, listKey: string | undefined): Located[] {
  let list: unknown[];
  let prefix = '';
  if (Array.isArray(value)) {
    if (listKey !== undefined) throw new DataError(`${path}: listKey "${listKey}" given but the file holds an array`);
    list = value;
  } else if (isRow(value)) {
    let key = listKey;
    if (key === undefined) {
      const arrays = Object.keys(value).filter((k) => Array.isArray(value[k]));
      if (arrays.length !== 1) {
        throw new DataError(
          arrays.length === 0
            ? `${path}: a JSON object without a list of rows (keys: ${Object.keys(value).join(', ') || 'none'})`
            : `${path}: a JSON object with several lists (${arrays.join(', ')}); pass listKey to pick one`,
        );
      }
      key = arrays[0]!;
    }
    const inner = value[key];
    if (!Array.isArray(inner)) {
      const found = inner === undefined ? 'missing' : describe(inner);
      throw new DataError(`${path}: key "${key}" is ${found}, expected a list of rows`);
    }
    list = inner;
    prefix = `${key}: `;
  } else {
    throw new DataError(`${path}: expected a JSON array of objects or an object holding one, found ${describe(value)}`);
  }
  return list.map((item, i) => {
    if (!isRow(item)) throw new DataError(`${path}: ${prefix}row ${i}: expected an object, found ${describe(item)}`);
    return { row: item, where: `${prefix}row ${i}` };
  });
}

/**
 * `.json` files: JSON lines when the first non-empty line is a complete JSON object and another non-empty line
 * follows (the layout of C4's `*.json.gz` shards); otherwise the whole file is one JSON value.
 */
async function* jsonRows(access: DataAccess, path: string, gzip: boolean, listKey: string | undefined): AsyncGenerator<Located> {
  const lines = readLines(access, path, gzip);
  const head: { line: string; lineNo: number }[] = [];
  let nonEmpty = 0;
  let first: { line: string; lineNo: number } | undefined;
  let next = await lines.next();
  while (!next.done && nonEmpty < 2) {
    head.push(next.value);
    if (next.value.line.trim() !== '') {
      nonEmpty++;
      first ??= next.value;
    }
    if (nonEmpty < 2) next = await lines.next();
  }
  let firstIsObject = false;
  if (first !== undefined) {
    try {
      firstIsObject = isRow(JSON.parse(first.line));
    } catch {
      firstIsObject = false;
    }
  }
  async function* all(): AsyncGenerator<{ line: string; lineNo: number }> {
    yield* head;
    if (!next.done) yield* lines;
  }
  const parts: string[] = [];
  try {
    if (firstIsObject && nonEmpty >= 2) {
      if (listKey !== undefined) throw new DataError(`${path}: listKey "${listKey}" given but the file is JSON lines`);
      yield* jsonLinesRows(path, all());
      return;
    }
    for await (const { line } of all()) parts.push(line);
  } finally {
    await lines.return(undefined); // closes the file when the caller stops early
  }
  const text = parts.join('\n');
  if (text.trim() === '') return;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  yield* jsonDocumentRows(path, value, listKey);
}

/** Parquet int64 columns decode to bigint: make those within 2^53 plain numbers, as JSON rows have them. */
function normalizeValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (isRow(value) && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Row = {};
    for (const [k, v] of Object.entries(value)) out[k] = normalizeValue(v);
    return out;
  }
  return value;
}

async function parquetRows(access: DataAccess, path: string, limit: number | undefined, columns: string[] | undefined): Promise<Located[]> {
  let rows: Row[];
  try {
    const file = await access.parquetFile(path);
    const metadata = await parquetMetadataAsync(file);
    if (columns !== undefined) {
      const names = new Set(metadata.schema.slice(1).map((e) => e.name));
      const missing = columns.filter((c) => !names.has(c));
      if (missing.length > 0) {
        throw new DataError(
          `${path}: no column ${missing.map((c) => `"${c}"`).join(', ')} (columns: ${[...names].join(', ')})`,
        );
      }
    }
    const numRows = Number(metadata.num_rows);
    const rowEnd = limit === undefined ? numRows : Math.min(limit, numRows);
    rows = rowEnd === 0 ? [] : await parquetReadObjects({
      file,
      metadata,
      rowEnd,
      compressors: access.parquetCompressors,
      ...(columns !== undefined ? { columns } : {}),
    });
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`${path}: cannot read Parquet (${(e as Error).message})`);
  }
  return rows.map((row, i) => ({ row: normalizeValue(row) as Row, where: `row ${i}` }));
}

async function* textRows(access: DataAccess, path: string, gzip: boolean, unit: 'file' | 'line'): AsyncGenerator<Located> {
  if (unit === 'file') {
    const text = await readWholeText(access, path, gzip);
    if (text.trim() !== '') yield { row: { text }, where: 'row 0' };
    return;
  }
  // Lines: empty lines are rows too (as in WikiText's row lists), but a file of blank lines only has no rows.
  let blanks: Located[] = [];
  let any = false;
  for await (const { line, lineNo } of readLines(access, path, gzip)) {
    const located = { row: { text: line }, where: `line ${lineNo}` };
    if (!any && line.trim() === '') {
      blanks.push(located);
      continue;
    }
    if (!any) yield* blanks;
    blanks = [];
    any = true;
    yield located;
  }
}

async function* locatedRows(access: DataAccess, path: string, options: ReadRowsOptions): AsyncGenerator<Located> {
  checkFile(path);
  checkLimit(options.limit);
  const { format, gzip }: DetectedFormat =
    options.format === undefined
      ? detectFormat(path)
      : { format: options.format, gzip: path.toLowerCase().endsWith('.gz') };
  if (options.textUnit !== undefined && options.textUnit !== 'file' && options.textUnit !== 'line') {
    throw new ConfigError(`textUnit "${String(options.textUnit)}": expected "file" or "line"`);
  }
  let source: AsyncIterable<Located> | Iterable<Located>;
  switch (format) {
    case 'jsonl':
      source = jsonLinesRows(path, readLines(access, path, gzip));
      break;
    case 'json':
      source = jsonRows(access, path, gzip, options.listKey);
      break;
    case 'parquet':
      if (gzip) throw new DataError(`${path}: gzip-compressed Parquet is not supported; decompress the file first`);
      source = await parquetRows(access, path, options.limit, options.columns);
      break;
    case 'text':
      source = textRows(access, path, gzip, options.textUnit ?? 'file');
      break;
    default:
      throw new ConfigError(`format "${String(format)}": expected jsonl, json, parquet or text`);
  }
  let count = 0;
  for await (const located of source) {
    count++;
    yield located;
    if (count === options.limit) break; // stop before reading (and parsing) the next row
  }
  if (count === 0) throw new DataError(`${path}: no rows (the file is empty)`);
}

/** All rows of a data file (at most `limit`), as plain objects. Throws DataError for a missing, empty or bad file. */
async function readRows(access: DataAccess, path: string, options: ReadRowsOptions = {}): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const { row } of locatedRows(access, path, options)) rows.push(row);
  return rows;
}

/**
 * The string field `field` (default `text`) of every row of a data file (at most `limit`). Throws DataError
 * naming the file, line/row and field when a row lacks the field or holds something other than a string.
 */
async function readTexts(access: DataAccess, path: string, options: ReadTextsOptions = {}): Promise<string[]> {
  const { field = 'text', ...rest } = options;
  checkFile(path);
  const format = options.format ?? detectFormat(path).format;
  // Parquet: decode only the column asked for (C4 rows also carry url and timestamp).
  const rowOptions: ReadRowsOptions =
    format === 'parquet' && rest.columns === undefined ? { ...rest, columns: [field] } : rest;
  const texts: string[] = [];
  for await (const { row, where } of locatedRows(access, path, rowOptions)) {
    const value = row[field];
    if (typeof value !== 'string') {
      const problem =
        value === undefined
          ? `field "${field}" is missing (fields: ${Object.keys(row).join(', ') || 'none'})`
          : `field "${field}" is ${describe(value)}, expected a string`;
      throw new DataError(`${path}: ${where}: ${problem}`);
    }
    texts.push(value);
  }
  return texts;
}

/** The raw text of a whole file (gunzipped if it ends in `.gz`); DataError if it is missing or empty. */
async function readTextFile(access: DataAccess, path: string): Promise<string> {
  checkFile(path);
  const text = path.toLowerCase().endsWith('.gz') ? await readWholeText(access, path, true) : await readFile(path, 'utf8');
  if (text.trim() === '') throw new DataError(`${path}: no text (the file is empty)`);
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/** The readers of a platform's data files. */
export interface DataReaders {
  /** All rows of a data file (at most `limit`), as plain objects. Throws DataError for a missing, empty or bad file. */
  readRows(path: string, options?: ReadRowsOptions): Promise<Row[]>;
  /** The string field `field` (default `text`) of every row of a data file (at most `limit`). */
  readTexts(path: string, options?: ReadTextsOptions): Promise<string[]>;
  /** The raw text of a whole file (gunzipped if it ends in `.gz`); DataError if it is missing or empty. */
  readTextFile(path: string): Promise<string>;
}

/** The readers over one platform's DataAccess. */
export function dataReaders(access: DataAccess): DataReaders {
  return {
    readRows: (path, options = {}) => readRows(access, path, options),
    readTexts: (path, options = {}) => readTexts(access, path, options),
    readTextFile: (path) => readTextFile(access, path),
  };
}
