import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, crc32, zipStore } from '../../web/src/zip.js';

test('crc32 gives the standard check value', () => {
  expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  expect(crc32(new Uint8Array(0))).toBe(0);
});

test("Python's zipfile reads the archive back: names (UTF-8, folders), bytes and CRCs", () => {
  const dir = mkdtempSync(join(tmpdir(), 'zip-'));
  try {
    const big = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251);
    const files: [string, Uint8Array][] = [['pruned/config.json', new TextEncoder().encode('{"a": 1}\n')], ['pruned/model.safetensors', big], ['pruned/é.txt', new Uint8Array(0)]];
    writeFileSync(join(dir, 'a.zip'), concat(zipStore(files)));
    const listing = execFileSync('python3', ['-c', [
      'import sys, zipfile, json',
      'z = zipfile.ZipFile(sys.argv[1])',
      'assert z.testzip() is None',
      'z.extractall(sys.argv[2])',
      'print(json.dumps([[i.filename, i.file_size, i.compress_type] for i in z.infolist()]))',
    ].join('\n'), join(dir, 'a.zip'), join(dir, 'x')], { encoding: 'utf8' });
    expect(JSON.parse(listing)).toEqual([['pruned/config.json', 9, 0], ['pruned/model.safetensors', 300_000, 0], ['pruned/é.txt', 0, 0]]);
    expect(readFileSync(join(dir, 'x', 'pruned', 'model.safetensors')).equals(Buffer.from(big))).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the archive depends on its content only (fixed dates)', () => {
  const files: [string, Uint8Array][] = [['a', new Uint8Array([1, 2, 3])]];
  expect(Buffer.from(concat(zipStore(files))).equals(Buffer.from(concat(zipStore(files))))).toBe(true);
});
