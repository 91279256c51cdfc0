/**
 * The core over the browser layer (lib/browser/), run here in Node: a checkpoint and a calibration file mounted in
 * the in-memory tree as byte sources, the same prune as over the Node layer writes the same bytes, and the pruned
 * model loads from the tree with the same perplexity. The browser layer's data readers give the Node readers' rows.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { installPlatform, platform } from '../../lib/platform/index.js';
import { bytesSource } from '../../lib/platform/bytes.js';
import { browserPlatform, MemoryFileSystem } from '../../lib/browser/index.js';
import { browserDataFiles } from '../../lib/browser/data.js';
import { readRows, readTexts } from '../../lib/data/sources.js';
import { kernels, type Kernels } from '../../lib/model/backend.js';
import { loadModel } from '../../lib/model/load.js';
import { perplexityOfIds } from '../../lib/eval/perplexity.js';
import { prune } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { parquetOf } from '../helpers/parquet.js';
import { jsonl, syntheticDocs } from '../helpers/synthetic-text.js';
import { randomIds, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-browser-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Run `f` with the browser layer over `fs` installed, the Node layer again afterwards. */
async function onBrowserLayer<T>(fs: MemoryFileSystem, f: () => Promise<T>): Promise<T> {
  const node = platform();
  installPlatform(browserPlatform({ fs }));
  try {
    return await f();
  } finally {
    installPlatform(node);
  }
}

/** Mount every file of the folder `dir` under `at`. */
function mountFolder(fs: MemoryFileSystem, dir: string, at: string): void {
  for (const name of readdirSync(dir)) fs.mount(`${at}/${name}`, bytesSource(new Uint8Array(readFileSync(join(dir, name))), name));
}

test('prune over the browser layer writes the bytes the Node layer writes; the result loads from the tree', async () => {
  const model = writeTinyCheckpoint(join(tmp, 'model'), { seed: 3 });
  const c4 = join(tmp, 'c4-train.jsonl');
  writeFileSync(c4, jsonl(syntheticDocs(60, 2)));
  const k: Kernels = { ...kernels(), windows: 'backend' }; // in-process forwards, as in a page
  const run = { method: 'wanda' as const, sparsity: 0.5, nsamples: 4, seqlen: 32, seed: 0, resumable: false, kernels: k };
  const viaNode = await prune({ ...run, model: model.dir, out: join(tmp, 'node-out'), calibration: c4 });
  const fs = new MemoryFileSystem();
  mountFolder(fs, model.dir, '/model');
  fs.mount('/data/c4-train.jsonl', bytesSource(new Uint8Array(readFileSync(c4))));
  const before = tf.memory().numTensors;
  const { report, ppl } = await onBrowserLayer(fs, async () => {
    const r = await prune({ ...run, model: '/model', out: '/out/pruned', calibration: '/data/c4-train.jsonl' });
    const loaded = await loadModel('/out/pruned', { kernels: k });
    try {
      return { report: r, ppl: (await perplexityOfIds(loaded.model, randomIds(97, 5), { seqlen: 32, workers: 1 })).ppl };
    } finally {
      loaded.dispose();
    }
  });
  expect(tf.memory().numTensors).toBe(before);
  expect(report.sparsity).toEqual(viaNode.sparsity);
  const written = new Map(fs.filesUnder('/out/pruned'));
  const files = readdirSync(viaNode.out).filter((f) => f !== 'report.json');
  expect([...written.keys()].filter((f) => f !== 'report.json').sort()).toEqual(files.sort());
  for (const f of files) expect([f, Buffer.from(written.get(f)!).equals(readFileSync(join(viaNode.out, f)))]).toEqual([f, true]);
  const loaded = await loadModel(viaNode.out, { kernels: k });
  try {
    expect(ppl).toBe((await perplexityOfIds(loaded.model, randomIds(97, 5), { seqlen: 32, workers: 1 })).ppl);
  } finally {
    loaded.dispose();
  }
});

test('the data readers of the browser layer give the Node readers\' rows: JSON lines, gzip, JSON, text, Parquet', async () => {
  const docs = syntheticDocs(30, 4);
  const files: Record<string, Uint8Array> = {
    'a.jsonl': new TextEncoder().encode(jsonl(docs)),
    'b.jsonl.gz': new Uint8Array(gzipSync(jsonl(docs))),
    'c.json': new TextEncoder().encode(JSON.stringify({ rows: docs })),
    'd.txt': new TextEncoder().encode(`\uFEFF${'é€ line\n'.repeat(200_000)}last`), // chunks split multi-byte characters
    'e.parquet': new Uint8Array(parquetOf(docs)),
  };
  const fs = new MemoryFileSystem();
  for (const [name, bytes] of Object.entries(files)) {
    writeFileSync(join(tmp, name), bytes);
    fs.mount(`/d/${name}`, bytesSource(bytes, name));
  }
  const names = Object.keys(files);
  const node = await Promise.all(names.map(async (n) => [await readRows(join(tmp, n)), await readTexts(join(tmp, n), { textUnit: 'line', limit: 7 })]));
  const browser = await onBrowserLayer(fs, () =>
    Promise.all(names.map(async (n) => [await browserDataFiles.readRows(`/d/${n}`), await browserDataFiles.readTexts(`/d/${n}`, { textUnit: 'line', limit: 7 })])),
  );
  expect(browser).toEqual(node);
  await onBrowserLayer(fs, async () => {
    fs.mount('/d/bad.jsonl.gz', bytesSource(new TextEncoder().encode('not gzip')));
    await expect(browserDataFiles.readRows('/d/bad.jsonl.gz')).rejects.toThrow(/\/d\/bad\.jsonl\.gz: cannot read or gunzip/);
    await expect(browserDataFiles.readRows('/d/none.jsonl')).rejects.toThrow('/d/none.jsonl: file not found');
    expect(browserDataFiles.cachedTokenCount('wikitext2', '/d/d.txt', 'f')).toBeNull();
  });
});
