/**
 * Sweeps across machines: `llm-prune run --config FILE --shard K/N` runs the settings whose id hashes to K
 * (sha256(id) mod N, K in 0..N-1), so the split depends on the ids alone, never on their position in the grid:
 * adding settings to an experiment does not move the others, and a shared results folder reuses whatever any shard
 * finished. Every run writes experiment.json (title, meanMetric, meta and the ids of the whole grid in order: the
 * same for every shard); `llm-prune report DIR... --out DIR` merges the settings/<id>.json of any number of
 * results folders into one results.json/md/csv with charts, identical (apart from timings) to an unsharded run's.
 */
import { existsSync, readFileSync } from '../platform/fs.js';
import { join } from '../platform/path.js';
import { ConfigError, DataError } from '../errors.js';
import { sha256Hex } from '../platform/index.js';
import { validateResults, writeReport, type ResultsFile, type ResultsInput, type SettingResult } from './report.js';

export const EXPERIMENT_FILE = 'experiment.json';

/** One shard of N (index 0-based). */
export interface Shard {
  index: number;
  count: number;
}

/** Parse `K/N` (0 <= K < N). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count) {
    throw new ConfigError(`shard: '${text}' is not K/N with 0 <= K < N (K is 0-based, like JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID from 0)`, {
      option: 'shard',
    });
  }
  return { index, count };
}

/** The shard a setting id belongs to among `count`. */
export async function shardOf(id: string, count: number): Promise<number> {
  return parseInt((await sha256Hex(id)).slice(0, 8), 16) % count;
}

/** experiment.json: what every shard of one experiment shares. */
export interface ExperimentFile {
  version: 1;
  title: string;
  meanMetric: 'acc' | 'acc_norm';
  meta: Record<string, unknown>;
  settings: string[]; // ids of the whole grid, dense first, in the order of results.json
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`${file}: cannot read as JSON (${(e as Error).message})`);
  }
}

function readExperiment(dir: string): ExperimentFile {
  const file = join(dir, EXPERIMENT_FILE);
  if (!existsSync(file)) throw new DataError(`${dir}: not a results folder of 'llm-prune run' (no ${EXPERIMENT_FILE})`);
  const e = readJson(file) as ExperimentFile;
  if (e?.version !== 1 || !Array.isArray(e.settings) || typeof e.title !== 'string') {
    throw new DataError(`${file}: expected {version: 1, title, meanMetric, meta, settings: [ids]}`);
  }
  return e;
}

/** Everything but the timings (seconds differ from run to run). */
function comparable(r: SettingResult): string {
  const { timings: _t, finetune, ...rest } = r;
  return JSON.stringify({ ...rest, finetune: finetune ? { ...finetune, seconds: 0 } : undefined });
}

/** What `mergeResults` found. */
export interface MergeResult {
  results: ResultsFile;
  files: string[]; // written
  missing: string[]; // settings of the grid found in no folder
  sources: Record<string, string>; // setting id -> folder it came from
}

/**
 * Merge results folders (each with experiment.json and settings/<id>.json) into `out`. The folders must come from
 * the same experiment (same title, meta and grid); a setting found in several folders must have the same numbers.
 * Settings found nowhere are an error unless `allowMissing` (then the report holds those found).
 */
export async function mergeResults(dirs: string[], out: string, options: { allowMissing?: boolean } = {}): Promise<MergeResult> {
  if (dirs.length === 0) throw new ConfigError('report: give at least one results folder');
  const first = readExperiment(dirs[0]!);
  const found = new Map<string, { result: SettingResult; dir: string }>();
  for (const dir of dirs) {
    const e = readExperiment(dir);
    for (const key of ['title', 'meanMetric', 'meta', 'settings'] as const) {
      if (JSON.stringify(e[key]) !== JSON.stringify(first[key])) {
        throw new DataError(`${dir}: ${EXPERIMENT_FILE} differs from ${dirs[0]}'s in '${key}': not the same experiment (or not the same paths)`);
      }
    }
    for (const id of e.settings) {
      const file = join(dir, 'settings', `${id}.json`);
      if (!existsSync(file)) continue;
      const stored = readJson(file) as { result?: SettingResult };
      const result = validateResults({ version: 1, title: e.title, results: [stored.result] }, file).results[0]!;
      const seen = found.get(id);
      if (seen && comparable(seen.result) !== comparable(result)) {
        throw new DataError(`setting '${id}': ${seen.dir} and ${dir} hold different results (other inputs?); merge one of them`);
      }
      if (!seen) found.set(id, { result, dir });
    }
  }
  const missing = first.settings.filter((id) => !found.has(id));
  if (missing.length && !options.allowMissing) {
    throw new DataError(`report: ${missing.length} of ${first.settings.length} settings are in none of the folders: ${missing.join(', ')} (--allow-missing writes the rest)`);
  }
  const input: ResultsInput = {
    version: 1,
    title: first.title,
    meanMetric: first.meanMetric,
    meta: first.meta,
    results: first.settings.filter((id) => found.has(id)).map((id) => found.get(id)!.result),
  };
  const files = await writeReport(out, input);
  const results = validateResults(readJson(join(out, 'results.json')), join(out, 'results.json'));
  return { results, files, missing, sources: Object.fromEntries([...found].map(([id, v]) => [id, v.dir])) };
}
