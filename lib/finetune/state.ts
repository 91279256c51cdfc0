/** The resumable training checkpoint (checkpoint/ of a fine-tuning output folder): written atomically, read back exactly. */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, DataError, type OptionName } from '../errors.js';
import { SafetensorsFile, writeFloat32Safetensors } from '../model/safetensors.js';
import { removeStaleStaged } from '../interrupt.js';
import { StagedFolder, writeJsonAtomic } from '../model/save.js';
import { readAdapterFiles, saveAdapters } from './peft.js';
import type { LoraTrainer } from './trainer.js';

export const CHECKPOINT = 'checkpoint';
export const STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

/** trainer_state.json: everything besides tensors a resumed run needs. */
export interface TrainerState {
  version: 1;
  step: number;
  rngState: number;
  optimizerT: number;
  fingerprint: Record<string, unknown>; // options that must not change between resumed runs
  losses: number[];
  periodic: { step: number; ppl: number; windows: number }[];
  before: number | null;
  totalSeconds: number;
}

/** The checkpoint folder of `out`, recovering one left as `checkpoint.old-*` by a run killed while replacing it. */
export function findCheckpoint(out: string): string | null {
  const dir = join(out, CHECKPOINT);
  if (existsSync(join(dir, STATE_FILE))) return dir;
  if (!existsSync(out)) return null;
  const olds = readdirSync(out).filter((f) => f.startsWith(`${CHECKPOINT}.old-`) && existsSync(join(out, f, STATE_FILE)));
  if (olds.length === 0) return null;
  const step = (f: string): number => (JSON.parse(readFileSync(join(out, f, STATE_FILE), 'utf8')) as TrainerState).step;
  const best = olds.sort((a, b) => step(b) - step(a))[0]!;
  rmSync(dir, { recursive: true, force: true });
  renameSync(join(out, best), dir);
  return dir;
}

/**
 * Get a fine-tuning output folder ready: returns the checkpoint to resume from (when there is one and `resume`),
 * or null after making sure the folder is empty (emptying it with `overwrite`, refusing without). A folder that
 * holds a checkpoint is refused when neither `resume` nor `overwrite` is set. Messages name the folder as `shownAs`.
 */
export function prepareOutputFolder(o: { dir: string; shownAs: string; resume: boolean; overwrite: boolean; optionName: OptionName }): string | null {
  const { dir, shownAs, optionName: name } = o;
  mkdirSync(dir, { recursive: true });
  removeStaleStaged(join(dir, CHECKPOINT)); // a run killed inside a checkpoint's commit: the older checkpoint put back
  const existing = findCheckpoint(dir);
  if (existing && !o.resume && !o.overwrite) {
    const step = (JSON.parse(readFileSync(join(existing, STATE_FILE), 'utf8')) as TrainerState).step;
    throw new ConfigError(`${name('out')} ${shownAs}: holds a training checkpoint at step ${step}; pass ${name('resume')} to continue it or ${name('overwrite')} to start over`);
  }
  if (existing && o.resume) {
    cleanStaging(dir);
    return existing;
  }
  if (readdirSync(dir).length > 0) {
    if (!o.overwrite) throw new ConfigError(`${name('out')} ${shownAs}: folder exists and is not empty (pass ${name('overwrite')} to replace it)`);
    for (const f of readdirSync(dir)) rmSync(join(dir, f), { recursive: true, force: true });
  }
  return null;
}

/** Remove leftovers of killed checkpoint writes (`checkpoint.partial-*`, `checkpoint.old-*`). */
export function cleanStaging(out: string): void {
  for (const f of readdirSync(out)) {
    if (f.startsWith(`${CHECKPOINT}.partial-`) || f.startsWith(`${CHECKPOINT}.old-`)) rmSync(join(out, f), { recursive: true, force: true });
  }
}

export async function writeCheckpoint(out: string, trainer: LoraTrainer, baseModel: string, state: TrainerState): Promise<string> {
  const staged = new StagedFolder(join(out, CHECKPOINT), { overwrite: true, lock: false }); // the run holds <out>.lock
  try {
    await saveAdapters(staged.tmp, trainer.adapters, baseModel);
    const opt = trainer.optimizer;
    const tensors: { name: string; shape: number[]; values: Float32Array }[] = [];
    for (const [i, p] of trainer.adapters.pairs.entries()) {
      for (const [k, which] of (['aT', 'bT'] as const).entries()) {
        const idx = 2 * i + k;
        const shape = (which === 'aT' ? p.aT : p.bT).shape as number[];
        const base = `layers.${p.layer}.${p.name}.${which}`;
        tensors.push({ name: `${base}.exp_avg`, shape, values: (await opt.m[idx]!.data()) as Float32Array });
        tensors.push({ name: `${base}.exp_avg_sq`, shape, values: (await opt.v[idx]!.data()) as Float32Array });
      }
    }
    writeFloat32Safetensors(staged.path(OPTIMIZER_FILE), tensors);
    writeJsonAtomic(staged.path(STATE_FILE), state);
    staged.commit();
    return staged.out;
  } catch (e) {
    staged.abandon();
    throw e;
  }
}

export function readCheckpoint(dir: string, trainer: LoraTrainer, fingerprint: Record<string, unknown>): TrainerState {
  const stateFile = join(dir, STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as TrainerState;
  } catch (e) {
    throw new DataError(`${stateFile}: cannot read as JSON (${(e as Error).message})`);
  }
  if (state.version !== 1 || !Number.isInteger(state.step) || !Number.isInteger(state.rngState)) {
    throw new DataError(`${stateFile}: not a trainer state of this version (fields version, step, rngState)`);
  }
  for (const k of new Set([...Object.keys(fingerprint), ...Object.keys(state.fingerprint)])) {
    const was = JSON.stringify(state.fingerprint[k]);
    const now = JSON.stringify(fingerprint[k]);
    if (was !== now) {
      throw new ConfigError(
        `resume from ${dir}: option '${k}' was ${was} in the checkpoint and is ${now} now; a resumed run must use ` +
          `the same setting${k === 'totalSteps' ? ' (pass totalSteps explicitly to keep the schedule length when raising maxSteps)' : ''} ` +
          '(or start over with overwrite)',
      );
    }
  }
  const files = readAdapterFiles(dir, trainer.model.config);
  trainer.adapters.assign(files.arrays);
  const opt = trainer.optimizer;
  const f = SafetensorsFile.open(join(dir, OPTIMIZER_FILE));
  try {
    trainer.adapters.pairs.forEach((p, i) => {
      (['aT', 'bT'] as const).forEach((which, k) => {
        const idx = 2 * i + k;
        const base = `layers.${p.layer}.${p.name}.${which}`;
        for (const [suffix, target] of [['exp_avg', opt.m[idx]!], ['exp_avg_sq', opt.v[idx]!]] as const) {
          const name = `${base}.${suffix}`;
          if (!f.entries.has(name)) throw new DataError(`${f.path}: tensor '${name}' is missing`);
          const values = f.readFloat32(name);
          if (values.length !== target.size) throw new DataError(`${f.path}: tensor '${name}' has ${values.length} values, expected ${target.size}`);
          tf.tidy(() => target.assign(tf.tensor(values, target.shape)));
        }
      });
    });
  } finally {
    f.close();
  }
  opt.t = state.optimizerT;
  trainer.step = state.step;
  trainer.rng.state = state.rngState >>> 0;
  return state;
}
