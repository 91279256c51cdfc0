/**
 * The demo's model and data from the Hugging Face hub, for a machine without the shared folder: a small real LLaMA
 * checkpoint and a data folder laid out like shared/data (so configs/demo.yaml runs unchanged with `${shared}` set
 * to its parent):
 *   data/wikitext-2-raw-v1/test-00000-of-00001.parquet   Salesforce/wikitext, the WikiText-2 raw test split
 *   data/c4/c4-train.00000-of-01024.head1000.jsonl        the first 1,000 documents of allenai/c4's first train shard
 *                                                          (only the start of the 300 MB shard is transferred)
 *   data/tasks/boolq/validation.jsonl                     aps/super_glue boolq validation (parquet rows as JSON lines)
 *   data/tasks/arc_easy/test.jsonl                        allenai/ai2_arc ARC-Easy test (parquet rows as JSON lines)
 * Whole files go through the hub cache (downloadHubFile: resumable, reused by other tools); a data file already in
 * the folder is not fetched again.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { readRows } from '../data/sources.js';
import { DataError } from '../errors.js';
import { resolveModelPath } from '../model/hub.js';
import { downloadHubFile, openHubFile, type HubAccess, type HubRepo } from './download.js';

/** The demo's model when there is no shared folder: raincandy-u/TinyStories-656K (2 layers, 2.6 MB, F32). */
export const DEMO_HUB_MODEL = 'raincandy-u/TinyStories-656K';

/** One data file of the demo: where the hub has it, where it goes under data/, and how. */
export interface DemoDataFile {
  repo: HubRepo;
  path: string;
  into: string; // relative to the data folder
  how: 'copy' | 'jsonl' | { firstLines: number }; // as is; parquet rows as JSON lines; the first lines of a .json.gz
}

export const DEMO_DATA: readonly DemoDataFile[] = [
  { repo: { type: 'dataset', name: 'Salesforce/wikitext' }, path: 'wikitext-2-raw-v1/test-00000-of-00001.parquet', into: 'wikitext-2-raw-v1/test-00000-of-00001.parquet', how: 'copy' },
  { repo: { type: 'dataset', name: 'allenai/c4' }, path: 'en/c4-train.00000-of-01024.json.gz', into: 'c4/c4-train.00000-of-01024.head1000.jsonl', how: { firstLines: 1000 } },
  { repo: { type: 'dataset', name: 'aps/super_glue' }, path: 'boolq/validation-00000-of-00001.parquet', into: 'tasks/boolq/validation.jsonl', how: 'jsonl' },
  { repo: { type: 'dataset', name: 'allenai/ai2_arc' }, path: 'ARC-Easy/test-00000-of-00001.parquet', into: 'tasks/arc_easy/test.jsonl', how: 'jsonl' },
];

/** Write `text` to `file` through a temporary file, so an interrupted write leaves no partial file behind. */
function writeAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** The first `n` lines of a gzipped hub file, reading only as much of it as they need. */
async function firstLinesOf(repo: HubRepo, path: string, n: number, access: HubAccess): Promise<string> {
  const abort = new AbortController();
  const { res } = await openHubFile(repo, path, access, abort.signal);
  if (!res.body) throw new DataError(`${repo.name}: ${path}: empty answer from the hub`);
  const source = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  source.on('error', () => undefined); // the abort below ends the transfer on purpose
  const gunzip = source.pipe(createGunzip());
  let text = '';
  let lines = 0;
  let bytes = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const s = chunk.toString('utf8');
      bytes += chunk.length;
      text += s;
      for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) lines++;
      access.onProgress?.(`download ${repo.name}: ${path}, first ${n} lines`, Math.min(lines, n), n);
      if (lines >= n) break;
    }
  } finally {
    abort.abort();
    source.destroy();
    gunzip.destroy();
  }
  if (bytes === 0) throw new DataError(`${repo.name}: ${path}: no data`);
  const all = text.split('\n');
  return all.slice(0, Math.min(n, lines)).join('\n') + '\n';
}

/** Parquet rows as JSON lines (int64 values within 2^53 as numbers, as readRows gives them). */
async function parquetAsJsonl(file: string): Promise<string> {
  const rows = await readRows(file);
  return rows.map((r) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).join('\n') + '\n';
}

/** Put one demo data file in place under `dataDir` (nothing is fetched when it is there already). */
async function fetchDataFile(f: DemoDataFile, dataDir: string, access: HubAccess): Promise<string> {
  const target = join(dataDir, f.into);
  if (existsSync(target)) return target;
  if (typeof f.how === 'object') {
    writeAtomic(target, await firstLinesOf(f.repo, f.path, f.how.firstLines, access));
    return target;
  }
  const cached = await downloadHubFile(f.repo, f.path, access);
  if (f.how === 'copy') {
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(cached, `${target}.tmp`);
    renameSync(`${target}.tmp`, target);
  } else {
    writeAtomic(target, await parquetAsJsonl(cached));
  }
  return target;
}

/** What fetchDemoFiles put where. */
export interface DemoFiles {
  model: string | null; // the model's snapshot folder (null when the caller gave its own model)
  shared: string; // the folder whose data/ holds the data files (configs/demo.yaml's ${shared})
  files: string[]; // the data files
}

/**
 * Download the demo's model (unless `withModel` is false) into the hub cache and its data into `root`/data.
 * Throws HubUnreachableError (offline) or DataError (a file the hub does not have) naming the file.
 */
export async function fetchDemoFiles(root: string, access: HubAccess, withModel = true): Promise<DemoFiles> {
  const model = withModel ? await resolveModelPath(DEMO_HUB_MODEL, access) : null;
  const files: string[] = [];
  for (const f of DEMO_DATA) files.push(await fetchDataFile(f, join(root, 'data'), access));
  return { model, shared: root, files };
}
