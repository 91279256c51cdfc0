/**
 * Evaluation data by name: files under a data folder laid out like shared/data, or explicit paths. Missing files can
 * be fetched from the Hugging Face hub (dataset files, into the hub cache: lib/hub/download.ts) when `download` is on
 * and the network allows; offline, the error names the file to provide.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataError } from '../errors.js';
import type { PerplexitySet } from './perplexity.js';
import { redactToken } from '../model/hub.js';
import { downloadHubFile, type HubAccess } from '../hub/download.js';

/** The environment variables that choose the default data folder (the library reads none itself). */
export interface DataDirEnv {
  LLM_PRUNE_DATA?: string | undefined;
  LLM_PRUNE_SHARED?: string | undefined;
}

/**
 * Default data folder: `env.LLM_PRUNE_DATA`, else `env.LLM_PRUNE_SHARED`/data or ../shared/data when it exists, else
 * ./data. The library never reads process.env: the CLI passes it (`defaultDataDir(process.env)`).
 */
export function defaultDataDir(env: DataDirEnv = {}): string {
  if (env.LLM_PRUNE_DATA) return resolve(env.LLM_PRUNE_DATA);
  const shared = env.LLM_PRUNE_SHARED ? join(env.LLM_PRUNE_SHARED, 'data') : resolve('..', 'shared', 'data');
  return existsSync(shared) ? shared : resolve('data');
}

interface SetSource {
  files: string[]; // candidates under the data folder, first found wins
  hub: { repo: string; path: string; field: string }; // where the hub has it
}

const SETS: Record<PerplexitySet, SetSource> = {
  wikitext2: {
    files: ['wikitext-2-raw-v1/test.jsonl', 'wikitext-2-raw-v1/test.parquet', 'wikitext-2-raw-v1/test-00000-of-00001.parquet'],
    hub: { repo: 'Salesforce/wikitext', path: 'wikitext-2-raw-v1/test-00000-of-00001.parquet', field: 'text' },
  },
  c4: {
    files: ['c4/c4-validation.00000-of-00008.json.gz', 'c4/c4-validation.sample2000.parquet', 'c4/c4-validation.jsonl'],
    hub: { repo: 'allenai/c4', path: 'en/c4-validation.00000-of-00008.json.gz', field: 'text' },
  },
};

/** File of a perplexity set: found under `dataDir`, or downloaded when `download` is set. */
export async function perplexitySetFile(
  set: PerplexitySet,
  dataDir: string,
  options: { download?: boolean; fetch?: typeof fetch; hubToken?: string | undefined; hub?: HubAccess | undefined } = {},
): Promise<string> {
  const src = SETS[set];
  if (!src) throw new DataError(`perplexity set '${String(set)}': unknown (known: ${Object.keys(SETS).join(', ')})`);
  for (const f of src.files) if (existsSync(join(dataDir, f))) return join(dataDir, f);
  const expected = `put one of ${src.files.map((f) => join(dataDir, f)).join(', ')} in place (from the hub dataset ${src.hub.repo}, file ${src.hub.path})`;
  if (!options.download) {
    throw new DataError(`dataDir '${dataDir}': no file of perplexity set '${set}'; ${expected}, or turn download on (--download) when online`, { option: 'dataDir' });
  }
  try {
    const access: HubAccess = { ...options.hub, ...(options.fetch ? { fetch: options.fetch } : {}), ...(options.hubToken !== undefined ? { token: options.hubToken } : {}) };
    return await downloadHubFile({ type: 'dataset', name: src.hub.repo }, src.hub.path, access);
  } catch (e) {
    throw new DataError(`perplexity set '${set}': download failed (${redactToken((e as Error).message, options.hubToken)}); offline, ${expected}`);
  }
}
