/**
 * What a setting's numbers depend on, and its fingerprint: the key under which lib/experiment/output-folder.ts
 * decides that a stored result can be reused.
 *
 * THE FINGERPRINT of a setting (sha256 of a canonical JSON, lib/canonical.ts) covers what its numbers depend on:
 * the setting itself; the model (reference, and name, size and mtime of each of its files); the tfjs backend in
 * use; the calibration (file stamp, nsamples, seqlen, seed) for methods that use calibration data; the evaluation
 * (each perplexity set's file stamp, seqlen, maxWindows, each task's file stamp, limit, addBos, meanMetric).
 * Speed-only options (calibration.batchSize), the output folder and keepCheckpoints are left out. Touching an input
 * file (a new mtime) therefore redoes the settings that read it.
 *
 * The fine-tune of a setting has its own fingerprint: the setting's, plus the data file's stamp and every finetune
 * key that changes the numbers (rank, alpha, dropout, targets, lr, schedule, warmupSteps, maxSteps, seqlen,
 * batchSize, gradAccum, seed, merge; not checkpointEvery), with the defaults filled in.
 *
 * Results folders written earlier must keep resuming: a change to what these records hold (or to the setting ids of
 * lib/experiment/schema.ts) redoes every stored setting. test/experiment/fingerprint.test.ts pins them.
 *
 * WHO COMPUTED A RESULT is recorded beside the fingerprint, not in it: the VERSION STAMP holds the package version
 * and the `version` of each method, layerwise allocator and refiner the setting ran (declared in its module, bumped
 * with any change to its numbers). A stored result whose stamp differs from the running code's is redone, or kept
 * with a warning when the experiment says `reuseAnyVersion` (lib/experiment/output-folder.ts). Results stored
 * before stamps were recorded count as made by version 0.1.0 with every method at version 1 (LEGACY_PACKAGE).
 */
import { readdirSync, statSync } from '../platform/fs.js';
import { join } from '../platform/path.js';
import { canonicalJson, canonicalSha256 } from '../canonical.js';
import { packageVersion } from '../paths.js';
import { getLayerwise, getMethod, getRefiner } from '../prune/registry.js';
import type { ResolvedFinetune } from './context.js';
import { DENSE_ID, type PruneSetting } from './schema.js';
import { structureLabel } from '../prune/structure.js';

/** Name, size and modification time of an input file: a changed file changes the fingerprint. */
export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Everything a setting's numbers depend on (see the top of this file). */
export interface Inputs {
  setting: { id: string; method: string; structure: string | null; sparsity: number; useVariant: boolean; plan?: unknown };
  model: { ref: string; files: FileStamp[] };
  backend: string;
  calibration: { source: FileStamp; nsamples: number; seqlen: number; seed: number } | null;
  eval: {
    ppl: { set: string; file: FileStamp }[];
    seqlen: number;
    maxWindows: number | null;
    tasks: { task: string; file: FileStamp }[];
    limit: number | null;
    addBos: boolean;
    meanMetric: string;
  };
}

/** The inputs every setting of a run shares; a setting's calibration is this one or none. */
export type SharedInputs = Omit<Inputs, 'setting' | 'calibration'> & { calibration: NonNullable<Inputs['calibration']> };

/** The fine-tune of a setting, besides the setting's own inputs (see the top of this file). */
export interface FinetuneInputs {
  data: FileStamp;
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
  lr: number;
  schedule: 'constant' | 'linear' | 'cosine';
  warmupSteps: number;
  maxSteps: number;
  seqlen: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  merge: 'masked' | 'dense' | 'none';
}

export function stamp(path: string): FileStamp {
  const s = statSync(path);
  return { path, size: s.size, mtimeMs: s.mtimeMs };
}

export function fingerprint(inputs: unknown): Promise<string> {
  return canonicalSha256(inputs);
}

/** The fingerprint of a setting's fine-tune: its setting's fingerprint and the fine-tune's own inputs. */
export function finetuneFingerprint(settingFingerprint: string, inputs: FinetuneInputs): Promise<string> {
  return fingerprint({ setting: settingFingerprint, finetune: inputs });
}

/** Leaf key paths whose values differ between two input records ('eval.limit', 'model.files[0].mtimeMs'). */
export function changedKeys(before: unknown, after: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
  if (isObj(before) && isObj(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) =>
      changedKeys(before[k], after[k], Array.isArray(after) ? `${path}[${k}]` : path ? `${path}.${k}` : k),
    );
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [path || '(everything)'];
}

/** The model's own files (config, weights, index, tokenizer), stamped in name order. */
export function modelFiles(dir: string): FileStamp[] {
  return readdirSync(dir)
    .filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.index.json') || f.startsWith('tokenizer'))
    .sort()
    .map((f) => stamp(join(dir, f)));
}

/** The plan of a setting beyond method/structure/sparsity, for its fingerprint; absent when it has none (so older
 * results keep their fingerprints). */
function planInputs(s: PruneSetting): { plan?: unknown } {
  const { methodOptions, layerwise, refine, targets, ignore } = s;
  const { variant: _v, ...rest } = methodOptions;
  const any = Object.keys(rest).length > 0 || layerwise || refine || targets.length > 0 || ignore.length > 0;
  return any ? { plan: { methodOptions: rest, layerwise, refine, targets, ignore } } : {};
}

/** The inputs of setting `s` (null: the dense model): the calibration only for settings that read it. */
export function settingInputs(s: PruneSetting | null, shared: SharedInputs): Inputs {
  return {
    setting: s
      ? { id: s.id, method: s.method, structure: structureLabel(s.structure), sparsity: s.sparsity, useVariant: s.useVariant, ...planInputs(s) }
      : { id: DENSE_ID, method: 'dense', structure: null, sparsity: 0, useVariant: false },
    model: shared.model,
    backend: shared.backend,
    calibration: s && (getMethod(s.method).stats.length > 0 || s.layerwise !== null || s.refine !== null) ? shared.calibration : null,
    eval: shared.eval,
  };
}

/** Who computed a stored result: the package version and the version of every pruning component it ran. */
export interface VersionStamp {
  package: string;
  methods: Record<string, number>; // method, allocator and refiner name -> its version ({} for the dense model)
}

/** The package version results stored without a stamp were computed by (with every component at version 1). */
export const LEGACY_PACKAGE = '0.1.0';

/** The stamp of the running code for setting `s` (null: the dense model). */
export function versionStamp(s: PruneSetting | null, pkg: string = packageVersion()): VersionStamp {
  const methods: Record<string, number> = {};
  if (s) {
    methods[s.method] = getMethod(s.method).version;
    if (s.layerwise) methods[s.layerwise.name] = getLayerwise(s.layerwise.name).version;
    if (s.refine) methods[s.refine.name] = getRefiner(s.refine.name).version;
  }
  return { package: pkg, methods };
}

/**
 * How a stored stamp differs from the running code's ('package 0.1.0 -> 0.2.0, wanda 1 -> 2'), or null when they
 * agree. `stored` undefined: a result stored before stamps were recorded (LEGACY_PACKAGE, every version 1).
 */
export function versionChange(stored: VersionStamp | undefined, now: VersionStamp): string | null {
  const was = stored ?? { package: LEGACY_PACKAGE, methods: Object.fromEntries(Object.keys(now.methods).map((k) => [k, 1])) };
  const changes: string[] = [];
  if (was.package !== now.package) changes.push(`package ${was.package} -> ${now.package}`);
  const names = [...new Set([...Object.keys(was.methods), ...Object.keys(now.methods)])].sort();
  for (const n of names) {
    const a = was.methods[n];
    const b = now.methods[n];
    if (a !== b) changes.push(`${n} ${a ?? 'none'} -> ${b ?? 'none'}`);
  }
  return changes.length ? changes.join(', ') : null;
}

/** The fine-tune's inputs from the finetune section with its defaults filled in. */
export function finetuneInputs(ft: ResolvedFinetune): FinetuneInputs {
  return {
    data: stamp(ft.data),
    rank: ft.rank,
    alpha: ft.alpha,
    dropout: ft.dropout,
    targets: [...ft.targets],
    lr: ft.lr,
    schedule: ft.schedule,
    warmupSteps: ft.warmupSteps,
    maxSteps: ft.maxSteps,
    seqlen: ft.seqlen,
    batchSize: ft.batchSize,
    gradAccum: ft.gradAccum,
    seed: ft.seed,
    merge: ft.merge,
  };
}
