import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { ConfigError, DataError } from '../../lib/errors.js';
import { detectFormat, PARQUET_COMPRESSORS, readRows, readTextFile, readTexts } from '../../lib/data/sources.js';
import { parquetOf } from '../helpers/parquet.js';
import { jsonl, syntheticDocs, syntheticTaskRows } from '../helpers/synthetic-text.js';

let dir: string;
function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llm-prune-sources-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const JSONL = '\uFEFF{"text": "first", "n": 1}\r\n\n{"text": "second", "n": 2}\n   \n{"text": "third", "n": 3}\n';
const ROWS = [
  { text: 'first', n: 1 },
  { text: 'second', n: 2 },
  { text: 'third', n: 3 },
];

describe('detectFormat', () => {
  test('extensions, case-insensitive, with and without .gz', () => {
    expect(detectFormat('/a/b.jsonl')).toEqual({ format: 'jsonl', gzip: false });
    expect(detectFormat('x.JSONL.GZ')).toEqual({ format: 'jsonl', gzip: true });
    expect(detectFormat('c4-train.00000-of-01024.json.gz')).toEqual({ format: 'json', gzip: true });
    expect(detectFormat('v.parquet')).toEqual({ format: 'parquet', gzip: false });
    expect(detectFormat('wiki.train.raw')).toEqual({ format: 'text', gzip: false });
    expect(detectFormat('notes.txt.gz')).toEqual({ format: 'text', gzip: true });
  });

  test('unsupported extensions are a DataError naming the file and extension', () => {
    expect(() => detectFormat('/d/table.csv')).toThrow(DataError);
    expect(() => detectFormat('/d/table.csv')).toThrow('/d/table.csv: unsupported file type ".csv"; expected one of');
    expect(() => detectFormat('/d/noext')).toThrow('unsupported file type ""');
    expect(() => detectFormat('/d/x.parquet.gz')).toThrow('unsupported file type ".parquet.gz"');
  });
});

describe('JSON lines', () => {
  test('rows of .jsonl (BOM, CRLF and blank lines handled) and of the same file gzipped', async () => {
    expect(await readRows(file('a.jsonl', JSONL))).toEqual(ROWS);
    expect(await readRows(file('a.jsonl.gz', gzipSync(JSONL)))).toEqual(ROWS);
    expect(await readTexts(join(dir, 'a.jsonl.gz'))).toEqual(['first', 'second', 'third']);
  });

  test('limit stops reading early: a bad line after the limit is never parsed', async () => {
    const p = file('b.jsonl', '{"text": "a"}\n{"text": "b"}\nnot json\n');
    expect(await readTexts(p, { limit: 2 })).toEqual(['a', 'b']);
    await expect(readTexts(p)).rejects.toThrow(`${p}:3: invalid JSON line (`);
  });

  test('a bad JSON line is named file:line', async () => {
    const p = file('bad.jsonl', '{"text": "a"}\n\n{"text": "b",}\n');
    await expect(readRows(p)).rejects.toThrow(DataError);
    await expect(readRows(p)).rejects.toThrow(`${p}:3: invalid JSON line`);
  });

  test('a line that is JSON but not an object is rejected', async () => {
    const p = file('arr.jsonl', '{"text": "a"}\n["text"]\n');
    await expect(readRows(p)).rejects.toThrow(`${p}:2: expected a JSON object per line, found an array`);
  });

  test('a long line (bigger than a read chunk) comes back whole', async () => {
    const long = 'x'.repeat(300_000);
    const p = file('long.jsonl', `{"text": "${long}"}\n{"text": "short"}`);
    expect(await readTexts(p)).toEqual([long, 'short']);
  });

  test('a corrupt gzip file is a DataError', async () => {
    const p = file('corrupt.jsonl.gz', Buffer.concat([gzipSync(JSONL).subarray(0, 20), Buffer.from('garbage')]));
    await expect(readRows(p)).rejects.toThrow(`${p}: cannot read or gunzip (`);
  });
});

describe('JSON', () => {
  test('an array of objects', async () => {
    expect(await readRows(file('arr.json', JSON.stringify(ROWS, null, 2)))).toEqual(ROWS);
  });

  test('an object holding one list; listKey picks among several', async () => {
    expect(await readRows(file('obj.json', JSON.stringify({ version: 1, data: ROWS })))).toEqual(ROWS);
    const p = file('two.json', JSON.stringify({ train: ROWS, test: ROWS.slice(1) }));
    await expect(readRows(p)).rejects.toThrow(`${p}: a JSON object with several lists (train, test); pass listKey`);
    expect(await readRows(p, { listKey: 'test' })).toEqual(ROWS.slice(1));
    await expect(readRows(p, { listKey: 'dev' })).rejects.toThrow(`${p}: key "dev" is missing, expected a list`);
    const none = file('none.json', JSON.stringify({ a: 1 }));
    await expect(readRows(none)).rejects.toThrow(`${none}: a JSON object without a list of rows (keys: a)`);
  });

  test('JSON lines named .json.gz (the layout of the C4 shards) and a JSON array gzipped', async () => {
    expect(await readRows(file('c4.json.gz', gzipSync(JSONL)))).toEqual(ROWS);
    expect(await readRows(file('arr.json.gz', gzipSync(JSON.stringify(ROWS))))).toEqual(ROWS);
    expect(await readRows(file('c4lim.json', JSONL), { limit: 1 })).toEqual(ROWS.slice(0, 1));
  });

  test('malformed JSON and non-object rows', async () => {
    const p = file('broken.json', '[{"text": "a"}, ');
    await expect(readRows(p)).rejects.toThrow(`${p}: invalid JSON (`);
    const q = file('mixed.json', '[{"text": "a"}, 3]');
    await expect(readRows(q)).rejects.toThrow(`${q}: row 1: expected an object, found a number`);
    const r = file('scalar.json', '"just a string"');
    await expect(readRows(r)).rejects.toThrow(`${r}: expected a JSON array of objects or an object holding one`);
    const s = file('list.json', JSON.stringify({ rows: [{ text: 'a' }, 'b'] }));
    await expect(readRows(s)).rejects.toThrow(`${s}: rows: row 1: expected an object, found a string`);
  });
});

describe('plain text', () => {
  const TEXT = '\n = Title = \n\nLine one.\r\nLine two.\n\n';

  test('whole file as one document (default) or one row per line, empty lines kept', async () => {
    const p = file('doc.txt', TEXT);
    expect(await readTexts(p)).toEqual([TEXT]);
    expect(await readTexts(p, { textUnit: 'line' })).toEqual(['', ' = Title = ', '', 'Line one.', 'Line two.', '']);
    expect(await readRows(p, { textUnit: 'line', limit: 2 })).toEqual([{ text: '' }, { text: ' = Title = ' }]);
    expect(await readTexts(file('doc.txt.gz', gzipSync(TEXT)), { textUnit: 'line' })).toHaveLength(6);
    expect(await readTextFile(join(dir, 'doc.txt.gz'))).toBe(TEXT);
  });

  test('format overrides the extension', async () => {
    const p = file('data.dat', 'hello\nworld\n');
    await expect(readTexts(p)).rejects.toThrow('unsupported file type ".dat"');
    expect(await readTexts(p, { format: 'text', textUnit: 'line' })).toEqual(['hello', 'world']);
    expect(await readRows(file('rows.dat', JSONL), { format: 'jsonl' })).toEqual(ROWS);
  });

  test('a file of blank lines has no rows', async () => {
    const p = file('blank.txt', '\n  \n\n');
    await expect(readTexts(p)).rejects.toThrow(`${p}: no rows (the file is empty)`);
    await expect(readTexts(p, { textUnit: 'line' })).rejects.toThrow(`${p}: no rows (the file is empty)`);
    await expect(readTextFile(p)).rejects.toThrow(`${p}: no text (the file is empty)`);
  });
});

describe('errors common to all formats', () => {
  test('missing file, directory, empty file', async () => {
    const missing = join(dir, 'nope.jsonl');
    await expect(readRows(missing)).rejects.toThrow(`${missing}: file not found`);
    await expect(readTexts(missing)).rejects.toThrow(DataError);
    await expect(readTextFile(missing)).rejects.toThrow(`${missing}: file not found`);
    const sub = join(dir, 'sub.jsonl');
    mkdirSync(sub);
    await expect(readRows(sub)).rejects.toThrow(`${sub}: not a regular file`);
    for (const name of ['empty.jsonl', 'empty.json', 'empty.parquet', 'empty.txt']) {
      const p = file(name, '');
      await expect(readRows(p)).rejects.toThrow(`${p}: the file is empty (0 bytes)`);
    }
    const e = file('emptylist.json', '[]');
    await expect(readRows(e)).rejects.toThrow(`${e}: no rows (the file is empty)`);
    const z = file('empty.jsonl.gz', gzipSync(''));
    await expect(readRows(z)).rejects.toThrow(`${z}: no rows (the file is empty)`);
  });

  test('a missing or non-string field names file, row and field', async () => {
    const p = file('fields.jsonl', '{"text": "a"}\n{"body": "b", "id": 2}\n');
    await expect(readTexts(p)).rejects.toThrow(`${p}: line 2: field "text" is missing (fields: body, id)`);
    expect(await readTexts(p, { field: 'text', limit: 1 })).toEqual(['a']);
    const q = file('types.json', JSON.stringify([{ text: 'a' }, { text: 'b' }, { text: 7 }]));
    await expect(readTexts(q)).rejects.toThrow(`${q}: row 2: field "text" is a number, expected a string`);
    const r = file('null.jsonl', '{"text": null}\n');
    await expect(readTexts(r)).rejects.toThrow(`${r}: line 1: field "text" is null, expected a string`);
  });

  test('a bad limit or textUnit is a ConfigError', async () => {
    const p = file('ok.jsonl', JSONL);
    await expect(readRows(p, { limit: 0 })).rejects.toThrow(ConfigError);
    await expect(readRows(p, { limit: 1.5 })).rejects.toThrow('limit 1.5: expected a positive integer');
    await expect(readRows(p, { textUnit: 'word' as 'line' })).rejects.toThrow('textUnit "word"');
  });
});

describe('Parquet (hyparquet)', () => {
  test('a C4-like Parquet file: 2000 documents, texts and all columns', async () => {
    const docs = syntheticDocs(2000, 4);
    const path = file('c4-validation.parquet', parquetOf(docs));
    const texts = await readTexts(path);
    expect(texts).toHaveLength(2000);
    expect(texts).toEqual(docs.map((d) => d.text));
    expect(texts.every((t) => typeof t === 'string' && t.length > 0)).toBe(true);
    const rows = await readRows(path, { limit: 3 });
    expect(rows).toHaveLength(3);
    expect(Object.keys(rows[0]!).sort()).toEqual(['text', 'timestamp', 'url']);
    expect(rows[0]!['url']).toBe(docs[0]!.url);
    expect(rows.map((r) => r['text'])).toEqual(texts.slice(0, 3));
  });

  test('an RTE-like Parquet file equals its JSONL twin, int64 columns as numbers', async () => {
    const rte = syntheticTaskRows(277, 6)['tasks/rte/validation.jsonl']!;
    const fromParquet = await readRows(file('rte.parquet', parquetOf(rte)));
    const fromJsonl = await readRows(file('rte.jsonl', jsonl(rte)));
    expect(fromParquet).toHaveLength(277);
    expect(typeof fromParquet[0]!['label']).toBe('number');
    expect(fromParquet).toEqual(fromJsonl);
  });

  test('a missing column, a non-string field and a corrupt file are DataErrors', async () => {
    const rte = syntheticTaskRows(5, 6)['tasks/rte/validation.jsonl']!;
    const path = file('rte-errors.parquet', parquetOf(rte));
    await expect(readTexts(path)).rejects.toThrow(
      `${path}: no column "text" (columns: sentence1, sentence2, label, idx)`,
    );
    await expect(readTexts(path, { field: 'label' })).rejects.toThrow(
      `${path}: row 0: field "label" is a number, expected a string`,
    );
    expect(await readTexts(path, { field: 'sentence2', limit: 1 })).toEqual([rte[0]!['sentence2']]);
    const bad = file('bad.parquet', 'PAR1 this is not parquet PAR1');
    await expect(readRows(bad)).rejects.toThrow(`${bad}: cannot read Parquet (`);
  });

  test('the GZIP and BROTLI page decompressors given to hyparquet', () => {
    const bytes = new TextEncoder().encode('parquet page bytes '.repeat(50));
    expect(PARQUET_COMPRESSORS.GZIP!(gzipSync(bytes), bytes.length)).toEqual(bytes);
    expect(PARQUET_COMPRESSORS.BROTLI!(brotliCompressSync(bytes), bytes.length)).toEqual(bytes);
  });
});

describe('a C4-like train head (JSONL)', () => {
  test('1000 documents with text, url and timestamp', async () => {
    const docs = syntheticDocs(1000, 5);
    const path = file('c4-train.head1000.jsonl', jsonl(docs));
    const texts = await readTexts(path);
    expect(texts).toHaveLength(1000);
    expect(texts[0]).toBe(docs[0]!.text);
    const rows = await readRows(path, { limit: 2 });
    expect(Object.keys(rows[1]!).sort()).toEqual(['text', 'timestamp', 'url']);
  });
});
