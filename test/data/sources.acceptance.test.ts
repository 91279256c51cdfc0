/**
 * The readers on the shared data files as written by their producers (pyarrow Parquet, the C4 JSONL head).
 * test/data/sources.test.ts checks the same readers on files the tests write.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRows, readTexts } from '../../lib/data/sources.js';
import { sharedPath } from '../helpers/shared.js';

let dir: string;
function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llm-prune-sources-acc-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('Parquet (hyparquet) on the shared files', () => {
  test('the shared C4 validation sample: 2000 documents, texts and all columns', async () => {
    const path = sharedPath('data', 'c4', 'c4-validation.sample2000.parquet');
    const texts = await readTexts(path);
    expect(texts).toHaveLength(2000);
    expect(texts[0]!.startsWith('We offer valet parking as well as street and private lot.\n')).toBe(true);
    expect(texts.every((t) => typeof t === 'string' && t.length > 0)).toBe(true);
    const rows = await readRows(path, { limit: 3 });
    expect(rows).toHaveLength(3);
    expect(Object.keys(rows[0]!).sort()).toEqual(['text', 'timestamp', 'url']);
    expect(rows[0]!['url']).toBe('https://www.opentable.com/boneyard-bistro?Ref=8101');
    expect(rows.map((r) => r['text'])).toEqual(texts.slice(0, 3));
  });

  test('the shared RTE Parquet file equals its JSONL twin, int64 columns as numbers', async () => {
    const fromParquet = await readRows(sharedPath('data', 'tasks', 'rte', 'validation.parquet'));
    const fromJsonl = await readRows(sharedPath('data', 'tasks', 'rte', 'validation.jsonl'));
    expect(fromParquet).toHaveLength(277);
    expect(typeof fromParquet[0]!['label']).toBe('number');
    expect(fromParquet).toEqual(fromJsonl);
  });

  test('a missing column, a non-string field and a corrupt file are DataErrors', async () => {
    const path = sharedPath('data', 'tasks', 'rte', 'validation.parquet');
    await expect(readTexts(path)).rejects.toThrow(
      `${path}: no column "text" (columns: sentence1, sentence2, label, idx)`,
    );
    await expect(readTexts(path, { field: 'label' })).rejects.toThrow(
      `${path}: row 0: field "label" is a number, expected a string`,
    );
    expect(await readTexts(path, { field: 'sentence2', limit: 1 })).toEqual(['Christopher Reeve had an accident.']);
    const bad = file('bad.parquet', 'PAR1 this is not parquet PAR1');
    await expect(readRows(bad)).rejects.toThrow(`${bad}: cannot read Parquet (`);
  });
});

describe('the shared C4 train head (JSONL)', () => {
  test('1000 documents with text, url and timestamp', async () => {
    const path = sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
    const texts = await readTexts(path);
    expect(texts).toHaveLength(1000);
    expect(texts[0]!.startsWith('Beginners BBQ Class Taking Place in Missoula!')).toBe(true);
    const rows = await readRows(path, { limit: 2 });
    expect(Object.keys(rows[1]!).sort()).toEqual(['text', 'timestamp', 'url']);
  });
});
