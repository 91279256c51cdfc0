/**
 * The repositories `llm-prune demo` downloads (lib/hub/demo-files.ts), for test/helpers/hub-server.ts: the model's
 * files from a local checkpoint folder under DEMO_HUB_MODEL's id, and each data file in its hub form (parquet rows,
 * a gzipped JSON-lines shard) built from rows the caller gives.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DEMO_DATA, DEMO_HUB_MODEL } from '../../lib/hub/demo-files.js';
import type { ServedRepo } from './hub-server.js';
import { parquetOf } from './parquet.js';

type Row = Record<string, unknown>;

/** Rows of each demo data file, by its folder under data/ (`wikitext-2-raw-v1/...`, `c4/...`, `tasks/boolq/...`). */
export interface DemoRows {
  wikitext: Row[];
  c4: string; // JSON lines, served gzipped
  boolq: Row[];
  arcEasy: Row[];
}

export function demoRepos(modelDir: string, rows: DemoRows): ServedRepo[] {
  const model: ServedRepo = { type: 'model', name: DEMO_HUB_MODEL, files: {} };
  for (const f of readdirSync(modelDir)) model.files[f] = { file: join(modelDir, f) };
  const content = (into: string): Buffer => {
    if (into.startsWith('wikitext-2-raw-v1/')) return parquetOf(rows.wikitext);
    if (into.startsWith('c4/')) return gzipSync(rows.c4);
    if (into.startsWith('tasks/boolq/')) return parquetOf(rows.boolq);
    if (into.startsWith('tasks/arc_easy/')) return parquetOf(rows.arcEasy);
    throw new Error(`demoRepos: no rows for ${into}`);
  };
  const data = DEMO_DATA.map((d): ServedRepo => ({ type: 'dataset', name: d.repo.name, files: { [d.path]: content(d.into) } }));
  return [model, ...data];
}
