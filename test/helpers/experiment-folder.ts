/**
 * Tiny experiments for the runner's tests (test/experiment/): a tiny random checkpoint and tiny seeded data files
 * (C4-like documents, WikiText-2-like rows, ARC-Easy-like items: test/helpers/synthetic-text.ts) laid out like
 * shared/data, and the experiment file.
 *
 *   const configFile = writeExperimentFolder(tmp, 'tiny.json', { name: 'tiny', model: './model', ... }, { c4: ['calibration.jsonl', 200], tasks: true });
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runExperiment, type RunResult } from '../../lib/experiment/run.js';
import type { ResultsFile } from '../../lib/experiment/report.js';
import type { Experiment } from '../../lib/experiment/schema.js';
import { jsonl, syntheticDocs, syntheticTaskRows, syntheticWikiRows } from './synthetic-text.js';
import { writeTinyCheckpoint } from './tiny-checkpoint.js';

/** The first `n` lines of a file. */
export function firstLines(file: string, n: number): string {
  return readFileSync(file, 'utf8').split('\n').slice(0, n).join('\n') + '\n';
}

export interface ExperimentFolderOptions {
  c4: [file: string, lines: number]; // data/c4/<file>: that many C4-like documents
  tasks?: boolean; // also data/tasks/arc_easy/test.jsonl: 20 ARC-Easy-like items
}

/**
 * In `dir`: model/ (writeTinyCheckpoint's default model), data/c4/<file>, data/wikitext-2-raw-v1/test.jsonl (50
 * rows), with `tasks` data/tasks/arc_easy/test.jsonl, and the experiment file `name` holding `config` as
 * JSON. Returns the experiment file's path.
 */
export function writeExperimentFolder(dir: string, name: string, config: Record<string, unknown>, options: ExperimentFolderOptions): string {
  writeTinyCheckpoint(join(dir, 'model'), {});
  const data = join(dir, 'data');
  for (const d of ['c4', 'wikitext-2-raw-v1', ...(options.tasks ? ['tasks/arc_easy'] : [])]) mkdirSync(join(data, d), { recursive: true });
  const [c4File, c4Lines] = options.c4;
  writeFileSync(join(data, 'c4', c4File), jsonl(syntheticDocs(c4Lines, 1)));
  writeFileSync(join(data, 'wikitext-2-raw-v1', 'test.jsonl'), jsonl(syntheticWikiRows(6, 2).slice(0, 50)));
  if (options.tasks) writeFileSync(join(data, 'tasks', 'arc_easy', 'test.jsonl'), jsonl(syntheticTaskRows(20, 3)['tasks/arc_easy/test.jsonl']!));
  const configFile = join(dir, name);
  writeFileSync(configFile, JSON.stringify(config));
  return configFile;
}

/** Run in this process, collecting the notes. */
export async function runNoted(exp: Experiment): Promise<{ r: RunResult; notes: string[] }> {
  const notes: string[] = [];
  const r = await runExperiment(exp, { onNote: (line) => notes.push(line) });
  return { r, notes };
}

/** A results folder's results.json. */
export function readResults(dir: string): ResultsFile {
  return JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as ResultsFile;
}

/** results.json without the timings (the only part that differs between runs without a fine-tune). */
export function withoutTimings(file: ResultsFile): unknown {
  return { ...file, results: file.results.map(({ timings: _t, ...rest }) => rest) };
}
