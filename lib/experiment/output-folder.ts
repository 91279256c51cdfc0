/**
 * The results folder of an experiment run (lib/experiment/run.ts): its layout, the lock, the leftovers of a killed
 * run, the stored settings, and which of them a run can reuse.
 *
 *   settings/<id>.json    one setting: its result plus a fingerprint of everything it was computed from; written
 *                         atomically when the pruned model's result is known and again when its fine-tune is done
 *   checkpoints/<id>/     the pruned checkpoint (with report.json); removed after its evaluation (and fine-tune)
 *                         unless keepCheckpoints is set. While being written it is checkpoints/<id>.partial/
 *   finetune/<id>/        the fine-tune's folder (PEFT adapters, report.json, trainer checkpoint/, merged/);
 *                         removed after the setting unless keepCheckpoints is set
 *   results.json, results.md, results.csv, *.svg   written at the end (lib/experiment/report.ts); not by a shard
 *   experiment.json       title, meta and the ids of the whole grid: what `llm-prune report` merges shards by
 *                         (lib/experiment/shard.ts)
 *   .run.lock             the pid of the run working in the folder (two runs at once would undo each other);
 *                         .run.lock.<K>-of-<N> for shard K of N, so shards can share the folder
 *   checkpoints/<id>.partial/   a pruning under way, with its resume state (continued by the next run)
 *
 * RESUME: at start, a setting whose settings/<id>.json exists, whose stored fingerprint equals the one computed
 * now (lib/experiment/fingerprint.ts) and whose version stamp (package and method versions) equals the running
 * code's is taken as done (a note says so) and not recomputed. Anything else is computed from scratch: no result
 * file, a result made from different inputs (the note names the keys that changed), a result computed by another
 * version (the note names the versions; with `reuseAnyVersion` it is kept instead, with a warning), a kept
 * checkpoint that went missing. Leftovers of a killed run (partial checkpoint folders, checkpoints
 * of unfinished settings, temporary files) are removed first.
 *
 * RESUME WITH A FINETUNE STAGE: a setting whose pruned-model result is reusable but whose fine-tune is missing, was
 * interrupted, or was made from other finetune values has ONLY ITS FINE-TUNE redone: the pruned model's numbers are
 * kept, its checkpoint is used when still there (kept, or left by an interrupted fine-tune) and otherwise pruned
 * again (same inputs, same weights: checked against the stored calibration hash and zero fraction; on a mismatch
 * the pruned model is evaluated again too). An interrupted fine-tune with unchanged values continues from its last
 * trainer checkpoint. Removing the finetune section drops the fine-tune results and keeps the rest.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ConfigError } from '../errors.js';
import { TEMP_FILE } from '../model/save.js';
import { acquireOutputLock, type OutputLock } from '../output-lock.js';
import { settingResultSchema, type SettingResult } from './report.js';
import type { PruneSetting } from './schema.js';
import type { Shard } from './shard.js';
import { changedKeys, versionChange, type FinetuneInputs, type Inputs, type VersionStamp } from './fingerprint.js';

/** Version of the settings/<id>.json layout and of what the fingerprint covers; a change redoes every setting. */
export const FORMAT = 1;
export const SETTINGS_DIR = 'settings';
const CHECKPOINTS_DIR = 'checkpoints';
const FINETUNE_DIR = 'finetune';
const LOCK_FILE = '.run.lock';

/** settings/<id>.json */
export interface StoredSetting {
  format: number;
  id: string;
  fingerprint: string; // canonicalSha256(inputs)
  inputs: Inputs; // what the fingerprint covers (kept to name what changed)
  result: SettingResult; // with its `finetune` block once the fine-tune is done
  calibrationHash: string | null; // sha256 of the calibration window ids the pruning used (null: none used)
  versions?: VersionStamp; // who computed the result (absent in files stored before stamps were recorded)
  /** The fine-tune the result's `finetune` block comes from, or (no block yet) the one under way. */
  finetune?: { fingerprint: string; inputs: FinetuneInputs };
}

/** One setting of a run: what it is, what it is computed from, where its files go. */
export interface SettingJob {
  id: string;
  setting: PruneSetting | null; // null: the dense model
  tag: string; // how notes name it: '[2/4] wanda-unstructured-0.5'
  inputs: Inputs;
  print: string; // fingerprint(inputs)
  versions: VersionStamp; // the running code's stamp for this setting
  ftInputs: FinetuneInputs | null; // null: not fine-tuned (the dense model, or no finetune section)
  ftPrint: string | null;
  file: string; // settings/<id>.json
  ckptDir: string; // checkpoints/<id>
  ftDir: string; // finetune/<id>
}

/** The files of setting `id` in `output`. */
export function settingPaths(output: string, id: string): Pick<SettingJob, 'file' | 'ckptDir' | 'ftDir'> {
  return { file: join(output, SETTINGS_DIR, `${id}.json`), ckptDir: join(output, CHECKPOINTS_DIR, id), ftDir: join(output, FINETUNE_DIR, id) };
}

/** 'settings/<id>.json', as notes name it. */
export function storedName(id: string): string {
  return join(SETTINGS_DIR, `${id}.json`);
}

// ---------------------------------------------------------------------------------------------------------------
// The lock

/**
 * Take the folder for this process (lib/output-lock.ts): a lock of a live process is an error (OutputLockedError),
 * one of a dead (killed) run is taken over.
 */
export function acquireLock(output: string, shard?: Shard, options: { forceUnlock?: boolean; onNote?: (line: string) => void } = {}): OutputLock {
  const file = join(output, shard ? `${LOCK_FILE}.${shard.index}-of-${shard.count}` : LOCK_FILE);
  return acquireOutputLock(file, {
    command: 'llm-prune run',
    output,
    forceUnlock: options.forceUnlock ?? false,
    ...(options.onNote ? { onNote: options.onNote } : {}),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Leftovers and setting folders

/** Partial and replaced folders of StagedFolder (`<id>.partial-<pid>`, `<id>.old-<pid>`). */
const STAGED_LEFTOVER = /\.(partial|old)-\d+$/;

/**
 * Remove what a killed run leaves behind: temporary files and partial checkpoint folders. Returns their names.
 * `only`: a shard sharing the folder with others touches only its own settings' leftovers.
 */
export function removeLeftovers(output: string, only?: (name: string) => boolean): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, match: RegExp): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (!match.test(name) || (only && !only(name))) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(join(basename(dir), name));
    }
  };
  sweep(output, TEMP_FILE);
  sweep(join(output, SETTINGS_DIR), TEMP_FILE);
  sweep(join(output, CHECKPOINTS_DIR), STAGED_LEFTOVER);
  removed.push(...removeFinetuneLeftovers(output, only));
  return removed;
}

/** Temporary files and staged folders inside each finetune/<id>/. */
function removeFinetuneLeftovers(output: string, only?: (name: string) => boolean): string[] {
  const removed: string[] = [];
  const tuned = join(output, FINETUNE_DIR);
  if (!existsSync(tuned)) return removed;
  for (const id of readdirSync(tuned)) {
    if (only && !only(id)) continue;
    const dir = join(tuned, id);
    if (!statSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir)) {
      if (!TEMP_FILE.test(name) && !STAGED_LEFTOVER.test(name)) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(join(FINETUNE_DIR, id, name));
    }
  }
  return removed;
}

/** Remove <parent>/<id> (checkpoints/ or finetune/) and, when that leaves it empty, <parent>/. */
function removeSettingFolder(output: string, parentName: string, id: string): boolean {
  const parent = join(output, parentName);
  const dir = join(parent, id);
  if (!existsSync(dir)) return false;
  rmSync(dir, { recursive: true, force: true });
  if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true, force: true });
  return true;
}

export function removeCheckpoint(output: string, id: string): boolean {
  return removeSettingFolder(output, CHECKPOINTS_DIR, id);
}

export function removeFinetune(output: string, id: string): boolean {
  return removeSettingFolder(output, FINETUNE_DIR, id);
}

/** Remove the setting's folders that the experiment does not keep; a line per folder removed. */
export function removeUnkept(output: string, job: SettingJob, keepCheckpoints: boolean): string[] {
  if (!job.setting) return [];
  const lines: string[] = [];
  if (!keepCheckpoints && removeCheckpoint(output, job.id)) lines.push(`${job.tag}: removed its checkpoint (keepCheckpoints is false)`);
  if ((!keepCheckpoints || job.ftPrint === null) && removeFinetune(output, job.id)) {
    lines.push(`${job.tag}: removed its fine-tune folder (${job.ftPrint === null ? 'the experiment has no finetune section' : 'keepCheckpoints is false'})`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// Stored settings

/** A result without its fine-tune: no `finetune` block, no `finetune*` timings. */
export function withoutFinetune(r: SettingResult): SettingResult {
  const { finetune: _dropped, timings, ...rest } = r;
  return { ...rest, timings: Object.fromEntries(Object.entries(timings).filter(([k]) => !k.startsWith('finetune'))) };
}

/** A stored result, or why it cannot be used. */
function readStored(file: string, id: string): { stored: StoredSetting } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { problem: `unreadable (${(e as Error).message})` };
  }
  const v = value as Partial<StoredSetting> | null;
  if (v === null || typeof v !== 'object') return { problem: 'not a JSON object' };
  if (v.format !== FORMAT) return { problem: `written by another version of the runner (format ${String(v.format)}, now ${FORMAT})` };
  if (v.id !== id || typeof v.fingerprint !== 'string' || typeof v.inputs !== 'object') return { problem: 'not a result of this setting' };
  const parsed = settingResultSchema.safeParse(v.result);
  if (!parsed.success || parsed.data.id !== id) return { problem: 'its result is malformed' };
  const f = v.finetune as unknown;
  if (f !== undefined && (f === null || typeof f !== 'object' || typeof (f as { fingerprint?: unknown }).fingerprint !== 'string' || typeof (f as { inputs?: unknown }).inputs !== 'object')) {
    return { problem: 'its finetune record is malformed' };
  }
  const w = v.versions as unknown;
  if (w !== undefined && (w === null || typeof w !== 'object' || typeof (w as { package?: unknown }).package !== 'string' || typeof (w as { methods?: unknown }).methods !== 'object')) {
    return { problem: 'its version stamp is malformed' };
  }
  return { stored: { ...(v as StoredSetting), result: parsed.data } };
}

/** What decides reuse besides the fingerprint (the experiment's keys of the same names). */
export interface ReusePolicy {
  keepCheckpoints: boolean; // a kept checkpoint that went missing redoes its setting
  reuseAnyVersion: boolean; // keep results computed by another package or method version (with a warning)
}

/**
 * The pruned model's stored result of `job` when it can be reused (same fingerprint, same version stamp unless
 * `policy.reuseAnyVersion`; its checkpoint there when checkpoints are kept), else null: a note says why, and the
 * stale file is removed unless `dry`.
 */
export function reusableSetting(job: SettingJob, policy: ReusePolicy, dry: boolean, note: (line: string) => void): StoredSetting | null {
  if (!existsSync(job.file)) return null;
  const { tag } = job;
  let stored: StoredSetting | null = null;
  const got = readStored(job.file, job.id);
  const change = 'stored' in got ? versionChange(got.stored.versions, job.versions) : null;
  if ('stored' in got && got.stored.fingerprint === job.print) {
    if (change !== null && !policy.reuseAnyVersion) {
      note(`${tag}: redoing: the stored result was computed by another version (${change}); --reuse-any-version (reuseAnyVersion: true) keeps it`);
    } else if (job.setting && policy.keepCheckpoints && !existsSync(job.ckptDir)) {
      note(`${tag}: redoing: finished earlier but its kept checkpoint ${job.ckptDir} is missing`);
    } else {
      if (change !== null) note(`${tag}: warning: reusing a result computed by another version (${change}) as reuseAnyVersion asks; this version may compute other numbers`);
      stored = got.stored;
    }
  } else if ('stored' in got) {
    const keys = changedKeys(got.stored.inputs, job.inputs);
    const shown = keys.slice(0, 4).join(', ') + (keys.length > 4 ? `, ... (${keys.length} in all)` : '');
    note(`${tag}: redoing: the stored result was made from different inputs (changed: ${shown})`);
  } else {
    note(`${tag}: redoing: ${storedName(job.id)} ${got.problem}`);
  }
  if (!stored && !dry) rmSync(job.file, { force: true });
  return stored;
}

/**
 * What a reusable setting leaves to do for its fine-tune: `why` it is (re)done (null: nothing to do, or no
 * fine-tune), and whether an interrupted fine-tune continues from its trainer checkpoint.
 */
export function finetuneWork(job: SettingJob, stored: StoredSetting | null, keepCheckpoints: boolean): { why: string | null; resume: boolean } {
  if (!stored || job.ftPrint === null) return { why: null, resume: false };
  const was = stored.finetune;
  if (was === undefined) return { why: 'it was not fine-tuned', resume: false };
  if (was.fingerprint !== job.ftPrint) {
    const keys = changedKeys({ finetune: was.inputs }, { finetune: job.ftInputs });
    return { why: `its fine-tune was made from different inputs (changed: ${keys.slice(0, 4).join(', ')}${keys.length > 4 ? ', ...' : ''})`, resume: false };
  }
  if (stored.result.finetune === undefined) return { why: 'its fine-tune was interrupted', resume: existsSync(job.ckptDir) };
  if (keepCheckpoints && !existsSync(job.ftDir)) return { why: `its kept fine-tune folder ${job.ftDir} is missing`, resume: false };
  return { why: null, resume: false };
}
