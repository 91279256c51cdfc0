/**
 * `prune(...)`: load a checkpoint, draw the calibration windows, run the layer loop, write a Hugging Face checkpoint
 * folder plus report.json. The output appears under its final name only when complete.
 */
import { getBackend } from '@tensorflow/tfjs-core';
import { existsSync, statfsSync } from '../platform/fs.js';
import { dirname, join, resolve } from '../platform/path.js';
import { ConfigError, optionKey, type OptionName } from '../errors.js';
import { PRUNE_DEFAULTS } from './defaults.js';
import { Checkpoint, CheckpointWriter, compressOptions, storageReport, type StorageReport } from '../model/checkpoint.js';
import { expectedTensors, fusedTensors } from '../model/architecture.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../model/compressed-tensors.js';
import { HfTokenizer } from '../model/tokenizer.js';
import { DTYPES, dtypeSize, type DType } from '../model/safetensors.js';
import { resolveModelPath } from '../model/hub.js';
import { kernels as activeKernels, type Kernels } from '../model/backend.js';
import { StagedFolder, writeJsonAtomic, writeModelFiles } from '../model/save.js';
import { calibrationFromFile, type CalibrationSet } from '../data/calibration.js';
import { getLayerwise, getMethod, getRefiner, type LayerwiseName, type MethodName, type RefinerName } from './registry.js';
import { describeStructure, validateOptions } from './mask.js';
import type { LayerwiseAllocator, MaskRefiner, PruneMethod, PruneOptions, Structure } from './method.js';
import { owlAllocate, type OwlOptions } from './owl.js';
import { runLayerLoop, type BlockSparsity, type LayerLoopResult, type LoopStart, type PhaseTimes, type PruneProgress } from './pipeline.js';
import { ResumeStore, activationBytes, hasResumeState, checkpointStamp, resumeFingerprint, type ActivationStorage, type StoredAllocation } from './resume.js';
import { keepOnInterrupt, shown } from '../interrupt.js';
import { parseStructure as parseStructureAs } from './structure.js';
import { buildPlan, methodOptionName, parseOptions, selectLinears, type PlanSpec, type PrunePlan } from './plan.js';
import { platform } from '../platform/index.js';

/** Options of a pruning run (defaults: PRUNE_DEFAULTS of ./defaults.ts; seqlen = the model context). */
export interface PruneConfig {
  model: string; // checkpoint folder or hub id
  hubToken?: string | undefined; // for gated hub models (the CLI: --hf-token, else $HF_TOKEN)
  out: string; // output checkpoint folder
  method: MethodName;
  sparsity: number; // [0, 1); with N:M it must be N/M (default N/M)
  structure?: Structure; // default unstructured
  useVariant?: boolean; // Wanda's alpha-bisection variant (the same as methodOptions { variant: true })
  methodOptions?: Record<string, unknown>; // the method's own options (its zod schema in the registry)
  layerwise?: LayerwiseName; // per-block sparsities (OWL) around `sparsity`
  layerwiseOptions?: Record<string, unknown>;
  refine?: RefinerName; // mask refiner (DSnoT) after the method
  refineOptions?: Record<string, unknown>;
  targets?: string[]; // linears to prune: names, parent modules or 're:' patterns (default: all)
  ignore?: string[]; // linears to leave unchanged, same syntax
  calibration?: string; // data file (jsonl, jsonl.gz, json, parquet, txt); required unless method = magnitude
  calibrationField?: string; // text field of rows (default "text")
  nsamples?: number; // default 128
  seqlen?: number; // default the model's max_position_embeddings
  seed?: number; // default 0
  batchSize?: number; // calibration samples per forward (default PRUNE_DEFAULTS.batchSize; results identical for any value)
  dtype?: DType; // output dtype (default: the input's)
  format?: CheckpointFormat; // dense (default) or compressed (compressed-tensors sparse-bitmask / sparse-24-bitmask)
  maxShardBytes?: number; // shard the output when it exceeds this
  overwrite?: boolean; // replace an existing output folder
  /** Take over `<out>.lock` even when its holder looks alive (lib/output-lock.ts). */
  forceUnlock?: boolean;
  /** Keep a resume state in `<out>.partial/resume/` after every block (default true; lib/prune/resume.ts). */
  resumable?: boolean;
  /** Continue the killed run staged in `<out>.partial` at its first unfinished block (start over when none). */
  resume?: boolean;
  /** Stored activations: F32 (default, resumes byte-identically) or the checkpoint's dtype (half the disk, not exact). */
  resumeActivations?: ActivationStorage;
  /** How to continue a kept partial run, said on an interruption and in errors (default: rerun with --resume). */
  resumeHint?: string;
  onProgress?: (p: PruneProgress) => void;
  /** One line per event: stale partial folders of interrupted runs removed, resume state size, block resumed from. */
  onNote?: (line: string) => void;
  /**
   * How messages name the options (default the library's names: `seqlen`; the CLI passes its flags, an experiment
   * its key paths: `calibration.seqlen`). `noResumable` names turning `resumable` off (`--no-resumable`).
   */
  optionName?: OptionName;
  /**
   * The backend's kernel choices for the layer loop and its block forwards (attention, parking; lib/model/backend.ts).
   * Default: `kernels()`, those of the active backend. The methods' host reads follow the active backend.
   */
  kernels?: Kernels;
}

/** report.json of a pruning run. */
export interface PruneReport {
  model: string;
  out: string;
  method: string;
  structure: string;
  sparsityTarget: number;
  useVariant: boolean;
  /** The plan: the method's options, allocator, refiner and linear selection as used. */
  plan: {
    methodOptions: unknown;
    layerwise: null | { name: string; options: unknown; outlierRatios: number[]; sparsities: number[] };
    refine: null | { name: string; options: unknown; linears: string[] };
    targets: string[];
    ignore: string[];
    skipped: string[]; // linears left unchanged
  };
  /** RIA --permute: per linear, the column order its N:M mask holds in (mask[:, p[k]] is slot k). */
  permutations?: Record<string, number[]>;
  calibration: null | {
    file: string;
    nsamples: number;
    seqlen: number;
    seed: number;
    hash: string; // sha256 of the window ids (little-endian int32)
    windows: [number, number][]; // (document, offset) of each window
  };
  sparsity: { overall: number; blocks: BlockSparsity[] };
  times: PhaseTimes & { calibrationSampling: number; total: number };
  backend: string;
  peakRssMB: number;
  dtype: DType;
  storage: StorageReport; // bytes on disk, dense vs as written
  resumedAt: number[]; // blocks this run was resumed at ([] for a run in one go); with times and peakRssMB the run-dependent part
}

/** Parse 'unstructured' | 'N:M' as the CLI's --structure (lib/prune/structure.ts; messages name --structure). */
export function parseStructure(s: string): Structure {
  return parseStructureAs(s, '--structure');
}

/** A run's options resolved and checked before the model or any data is read. */
interface Resolved {
  name: OptionName;
  method: PruneMethod<unknown>;
  structure: Structure;
  sparsity: number;
  target: PruneOptions;
  methodOptions: unknown;
  allocator: LayerwiseAllocator<unknown> | null;
  layerwiseOptions: OwlOptions | null;
  refiner: MaskRefiner<unknown> | null;
  refineOptions: unknown;
  needsData: boolean; // a statistic, allocator or refiner reads calibration data
  compressed: boolean;
  resumable: boolean;
  resume: boolean;
  nsamples: number;
  seed: number;
  batchSize: number;
}

function checkPositiveInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${what} must be a positive integer, got ${v}`);
}

/** The output options: dtype and format from their lists; resume against resumable, compressed and a finished run. */
function checkOutputOptions(cfg: PruneConfig, name: OptionName, compressed: boolean): void {
  if (cfg.dtype !== undefined && !DTYPES.includes(cfg.dtype)) {
    throw new ConfigError(`${name('dtype')}: '${String(cfg.dtype)}' is not one of ${DTYPES.join(', ')}`);
  }
  if (cfg.format !== undefined && !(CHECKPOINT_FORMATS as readonly string[]).includes(cfg.format)) {
    throw new ConfigError(`${name('format')}: '${String(cfg.format)}' is not one of ${CHECKPOINT_FORMATS.join(', ')}`);
  }
  if (!cfg.resume) return;
  if (cfg.resumable === false) throw new ConfigError(`${name('resume')} needs the resume state that ${name('noResumable')} turns off`);
  if (compressed) {
    throw new ConfigError(
      `${name('resume')}: a compressed output is assembled at the end and cannot be resumed (prune dense with ${name('resume')}, then \`convert\`)`,
    );
  }
  if (existsSync(join(cfg.out, 'report.json')) && !existsSync(`${resolve(cfg.out)}.partial`)) {
    throw new ConfigError(`${name('out')} ${cfg.out}: this run is already complete (report.json present); nothing to resume (${name('overwrite')} prunes again)`);
  }
}

/** Step 1: every option that needs no model checked and resolved (defaults: PRUNE_DEFAULTS), before anything is read. */
function resolveOptions(cfg: PruneConfig): Resolved {
  const name = cfg.optionName ?? optionKey;
  const method = getMethod(cfg.method, name('method'));
  const structure = cfg.structure ?? parseStructure(PRUNE_DEFAULTS.structure);
  const sparsity = structure.kind === 'nm' && cfg.sparsity === undefined ? structure.n / structure.m : cfg.sparsity;
  const compressed = (cfg.format ?? PRUNE_DEFAULTS.format) !== 'dense';
  checkOutputOptions(cfg, name, compressed);
  const target: PruneOptions = { sparsity, structure };
  validateOptions(target);
  const nsamples = cfg.nsamples ?? PRUNE_DEFAULTS.nsamples;
  const batchSize = cfg.batchSize ?? PRUNE_DEFAULTS.batchSize;
  checkPositiveInt(name('batchSize'), batchSize);
  if (cfg.useVariant && cfg.method !== 'wanda') throw new ConfigError(`${name('useVariant')}: applies to wanda only, not ${cfg.method}`);
  const methodOptions = parseOptions(`${name('method')} ${cfg.method}`, method.options, { ...(cfg.useVariant ? { variant: true } : {}), ...(cfg.methodOptions ?? {}) });
  const allocator = cfg.layerwise !== undefined ? getLayerwise(cfg.layerwise, name('layerwise')) : null;
  const layerwiseOptions = allocator ? (parseOptions(`${name('layerwise')} ${allocator.name}`, allocator.options, cfg.layerwiseOptions) as OwlOptions) : null;
  if (allocator && structure.kind === 'nm') {
    throw new ConfigError(
      `${name('layerwise')} ${allocator.name}: allocates unstructured sparsities; with N:M every block is N/M (use ${name('structure')} unstructured)`,
    );
  }
  const refiner = cfg.refine !== undefined ? getRefiner(cfg.refine, name('refine')) : null;
  const refineOptions = refiner ? parseOptions(`${name('refine')} ${refiner.name}`, refiner.options, cfg.refineOptions) : null;
  method.check?.(target, methodOptions, methodOptionName(cfg.optionName, cfg.method));
  if (refiner && method.updatesWeights) {
    throw new ConfigError(`${name('refine')} ${refiner.name}: ${cfg.method} updates the weights it keeps; refine a method that only masks (wanda, magnitude, ria)`);
  }
  const needsData = method.stats.length > 0 || allocator !== null || refiner !== null;
  if (needsData) checkPositiveInt(name('nsamples'), nsamples);
  return {
    name, method, structure, sparsity, target, methodOptions, allocator, layerwiseOptions, refiner, refineOptions, compressed, needsData,
    resumable: (cfg.resumable ?? PRUNE_DEFAULTS.resumable) && !compressed,
    resume: cfg.resume ?? PRUNE_DEFAULTS.resume,
    nsamples,
    seed: cfg.seed ?? PRUNE_DEFAULTS.seed,
    batchSize,
  };
}

/** The calibration window length: given, or the model context. */
function resolveSeqlen(cfg: PruneConfig, r: Resolved, ckpt: Checkpoint): number {
  const max = ckpt.config.maxPositions;
  const seqlen = cfg.seqlen ?? max;
  if (!Number.isInteger(seqlen) || seqlen < 1 || seqlen > max) {
    throw new ConfigError(`${r.name('seqlen')} ${seqlen}: must be an integer in 1..${max} (the model context)`);
  }
  return seqlen;
}

/** Step 2: the staged output folder (refusing an existing --out before the calibration data is read, which can take long). */
function stageOutput(cfg: PruneConfig, r: Resolved): StagedFolder {
  const staged = new StagedFolder(cfg.out, {
    overwrite: (cfg.overwrite ?? PRUNE_DEFAULTS.overwrite) || r.resume,
    resumable: r.resumable,
    keep: r.resume,
    optionName: r.name,
    command: 'llm-prune prune',
    forceUnlock: cfg.forceUnlock ?? false,
    ...(cfg.onNote ? { onNote: cfg.onNote } : {}),
  });
  if (r.resumable) {
    // llm-prune's signal cleanup (lib/interrupt.ts) keeps the folder once it holds a state (staged.protect() below)
    keepOnInterrupt(join(staged.tmp, 'resume', 'state.json'), `kept the finished blocks in ${shown(staged.tmp)}: ${resumeHint(cfg, r, true)}`, '');
  }
  return staged;
}

/** How to continue a kept partial run. */
function resumeHint(cfg: PruneConfig, r: Resolved, sameCommand = false): string {
  return cfg.resumeHint ?? `rerun ${sameCommand ? 'the same command ' : ''}with ${r.name('resume')} to continue`;
}

/** Step 3: the calibration windows, when the plan reads data (null otherwise). */
async function readCalibration(cfg: PruneConfig, r: Resolved, dir: string, seqlen: number): Promise<CalibrationSet | null> {
  if (!r.needsData) return null;
  const who = r.method.stats.length > 0 ? `${r.name('method')} ${cfg.method}` : r.allocator ? `${r.name('layerwise')} ${r.allocator.name}` : `${r.name('refine')} ${r.refiner!.name}`;
  if (!cfg.calibration) throw new ConfigError(`${r.name('calibration')}: ${who} needs a calibration data file`);
  return calibrationFromFile(cfg.calibration, {
    tokenizer: await HfTokenizer.fromFolder(dir),
    nsamples: r.nsamples,
    seqlen,
    seed: r.seed,
    ...(cfg.calibrationField !== undefined ? { field: cfg.calibrationField } : {}),
  });
}

/** Decide where the run starts: a fresh staged folder, or the resume state of a killed run in `<out>.partial`. */
async function openResume(
  cfg: PruneConfig,
  r: Resolved,
  staged: StagedFolder,
  ckpt: Checkpoint,
  inputs: Record<string, unknown>,
  storage: DType,
  seqlen: number,
): Promise<{ store: ResumeStore; start: (LoopStart & { allocation: StoredAllocation | null }) | null }> {
  const c = ckpt.config;
  const store = new ResumeStore(staged.tmp, await resumeFingerprint(inputs), storage);
  let start: (LoopStart & { allocation: StoredAllocation | null }) | null = null;
  if (r.resume && store.exists()) {
    start = store.load(c, r.name('resume'));
    cfg.onNote?.(`resuming ${staged.tmp} at block ${start.nextLayer + 1} of ${c.numLayers}`);
  } else if (r.resume) {
    cfg.onNote?.(`${r.name('resume')}: no resume state in ${staged.tmp}; starting at block 1`);
  }
  const acts = r.needsData ? activationBytes(c, r.nsamples, seqlen, storage) : 0;
  const output = start ? 0 : ckpt.dataBytes() * (dtypeSize(inputs['dtype'] as DType) / dtypeSize(ckpt.mainDtype()));
  const need = output + 2 * acts; // a new activations file is written before the previous one is removed
  const fs = statfsSync(dirname(staged.tmp));
  const free = fs.bavail * fs.bsize;
  const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;
  cfg.onNote?.(`resume state: ${gb(2 * acts)} at most for the activations (${storage}), ${gb(output)} of output still to write; ${gb(free)} free`);
  if (need > free) {
    throw new ConfigError(
      `${r.name('out')} ${cfg.out}: the run needs ${gb(need)} of disk (output ${gb(output)}, resume activations ${gb(2 * acts)}), only ${gb(free)} is free` +
        (acts > 0 ? `; ${r.name('resumeActivations')} input halves the activations, ${r.name('noResumable')} drops them` : ''),
    );
  }
  return { store, start };
}

/** Where the output goes and how: resolved from the options and the input checkpoint. */
interface OutputSpec {
  dtype: DType;
  compress: ReturnType<typeof compressOptions>;
  maxShardBytes: number | undefined;
  actStorage: DType; // stored activations of the resume state
}

function outputSpec(cfg: PruneConfig, r: Resolved, ckpt: Checkpoint): OutputSpec {
  return {
    dtype: cfg.dtype ?? ckpt.mainDtype(),
    compress: compressOptions(ckpt.config, cfg.format ?? PRUNE_DEFAULTS.format, describeStructure(r.structure)),
    maxShardBytes: cfg.maxShardBytes ?? (ckpt.sharded ? 5e9 : undefined),
    actStorage: (cfg.resumeActivations ?? PRUNE_DEFAULTS.resumeActivations) === 'input' ? ckpt.mainDtype() : 'F32',
  };
}

/**
 * Everything the output bytes depend on (the resume state's fingerprint). OWL's allocation is a function of these
 * (model, calibration, batch size, layerwise options, targets/ignore) and is stored in the state, so a resume does
 * not rerun OWL's pass 1.
 */
function fingerprintInputs(cfg: PruneConfig, r: Resolved, ckpt: Checkpoint, spec: PlanSpec, calibration: CalibrationSet | null, out: OutputSpec): Record<string, unknown> {
  return {
    model: checkpointStamp(ckpt), config: ckpt.config.raw, method: cfg.method, options: r.target, methodOptions: r.methodOptions,
    layerwise: r.allocator ? { name: r.allocator.name, options: r.layerwiseOptions } : null,
    refine: r.refiner ? { name: r.refiner.name, options: r.refineOptions } : null,
    targets: spec.targets, ignore: spec.ignore,
    calibration: calibration?.hash ?? null, batchSize: r.batchSize, dtype: out.dtype, maxShardBytes: out.maxShardBytes ?? null, storage: out.actStorage,
  };
}

/** The open output: the checkpoint writer (reopened past the finished blocks on a resume) and the resume state. */
interface OpenOutput {
  writer: CheckpointWriter;
  store: ResumeStore | null;
  start: (LoopStart & { allocation: StoredAllocation | null }) | null;
}

/** Step 4: the resume state (a new one, or the killed run's), then the writer. */
async function openOutput(cfg: PruneConfig, r: Resolved, staged: StagedFolder, ckpt: Checkpoint, fingerprint: Record<string, unknown>, out: OutputSpec, seqlen: number): Promise<OpenOutput> {
  const { store, start } = r.resumable ? await openResume(cfg, r, staged, ckpt, fingerprint, out.actStorage, seqlen) : { store: null, start: null };
  if (start) staged.protect();
  const tensors = expectedTensors(ckpt.config);
  const writer = new CheckpointWriter(staged.tmp, tensors, {
    dtype: out.dtype,
    fused: fusedTensors(ckpt.config),
    reopen: start !== null,
    ...(out.maxShardBytes !== undefined ? { maxShardBytes: out.maxShardBytes } : {}),
    ...(out.compress ? { compress: out.compress } : {}),
  });
  if (start) {
    const done = (name: string): boolean => { const m = /^model\.layers\.(\d+)\./.exec(name); return !m || Number(m[1]) < start.nextLayer; };
    writer.markWritten(tensors.map((t) => t.name).filter(done));
  }
  return { writer, store, start };
}

/** Step 5: OWL's per-block sparsities (stored in a resume state: a resumed run reuses them). */
async function allocate(cfg: PruneConfig, r: Resolved, ckpt: Checkpoint, spec: PlanSpec, calibration: CalibrationSet | null, start: OpenOutput['start'], kernels: Kernels): Promise<StoredAllocation | null> {
  if (start?.allocation) return start.allocation;
  if (!r.allocator || !r.layerwiseOptions) return null;
  const { selected } = selectLinears(ckpt.config, spec.targets ?? [], spec.ignore ?? [], r.name);
  return owlAllocate(ckpt, calibration!, r.batchSize, r.sparsity, r.layerwiseOptions, selected, (l, n) =>
    cfg.onProgress?.({ layer: l, layers: n, elapsed: 0, eta: 0, tokensPerSecond: 0, pass: 'owl' }),
  kernels);
}

/** Step 6: the layer loop over every block, saving a resume state after each. */
async function loop(cfg: PruneConfig, r: Resolved, ckpt: Checkpoint, plan: PrunePlan, calibration: CalibrationSet | null, o: OpenOutput, staged: StagedFolder, kernels: Kernels): Promise<LayerLoopResult> {
  const { writer, store, start } = o;
  return runLayerLoop({
    checkpoint: ckpt,
    plan,
    calibration,
    batchSize: r.batchSize,
    writer,
    kernels,
    optionName: r.name,
    ...(start ? { start } : {}),
    ...(store
      ? {
          onCheckpoint: async (cp: Parameters<ResumeStore['save']>[0]) => {
            await store.save(cp, () => writer.sync());
            staged.protect();
          },
        }
      : {}),
    ...(cfg.onProgress ? { onProgress: cfg.onProgress } : {}),
  });
}

/** What report.json records besides the loop's result. */
interface ReportInputs {
  dir: string;
  r: Resolved;
  plan: PrunePlan;
  allocation: StoredAllocation | null;
  calibration: CalibrationSet | null;
  seqlen: number;
  dtype: DType;
  storage: StorageReport;
  times: { t0: number; calibrationSampling: number; earlier: number };
  resumedAt: number[];
}

/** Step 7: report.json. */
function buildReport(cfg: PruneConfig, x: ReportInputs, result: LayerLoopResult): PruneReport {
  const { r, plan, allocation, calibration } = x;
  const zeros = result.blocks.reduce((a, b) => a + b.zeros, 0);
  const params = result.blocks.reduce((a, b) => a + b.params, 0);
  return {
    model: x.dir,
    out: resolve(cfg.out),
    method: cfg.method,
    structure: describeStructure(r.structure),
    sparsityTarget: r.sparsity,
    useVariant: (r.methodOptions as { variant?: boolean }).variant === true,
    plan: {
      methodOptions: r.methodOptions,
      layerwise: r.allocator && allocation ? { name: r.allocator.name, options: r.layerwiseOptions, outlierRatios: allocation.ratios, sparsities: allocation.sparsities } : null,
      refine: r.refiner
        ? { name: r.refiner.name, options: r.refineOptions, linears: plan.blocks.flatMap((b) => Object.values(b.linears).filter((e) => e?.refine).map((e) => e!.ref.name)) }
        : null,
      targets: cfg.targets ?? [],
      ignore: cfg.ignore ?? [],
      skipped: plan.skipped,
    },
    ...(Object.keys(result.permutations).length > 0 ? { permutations: result.permutations } : {}),
    calibration: calibration
      ? {
          file: resolve(cfg.calibration!),
          nsamples: r.nsamples,
          seqlen: x.seqlen,
          seed: r.seed,
          hash: calibration.hash,
          windows: calibration.windows.map((w) => [w.doc, w.offset]),
        }
      : null,
    sparsity: { overall: zeros / params, blocks: result.blocks },
    times: { ...result.times, calibrationSampling: x.times.calibrationSampling, total: (performance.now() - x.times.t0) / 1000 + x.times.earlier },
    backend: getBackend(), // the tfjs backend that ran the loop
    peakRssMB: platform().peakMemoryMB() ?? 0,
    dtype: x.dtype,
    storage: x.storage,
    resumedAt: x.resumedAt,
  };
}

/** Prune a checkpoint and write the result. Returns the report (also written as report.json in the output). */
export async function prune(cfg: PruneConfig): Promise<PruneReport> {
  const t0 = performance.now();
  const r = resolveOptions(cfg);
  const kernels = cfg.kernels ?? activeKernels();
  const dir = await resolveModelPath(cfg.model, { token: cfg.hubToken });
  const ckpt = Checkpoint.open(dir);
  let staged: StagedFolder | null = null;
  let output: OpenOutput | null = null;
  try {
    const c = ckpt.config;
    const seqlen = resolveSeqlen(cfg, r, ckpt);
    staged = stageOutput(cfg, r);
    const spec: PlanSpec = {
      method: r.method, methodOptions: r.methodOptions, target: r.target, refiner: r.refiner, refinerOptions: r.refineOptions,
      targets: cfg.targets ?? [], ignore: cfg.ignore ?? [], optionName: r.name,
    };
    buildPlan(c, spec); // the whole plan is checked before the calibration data is read
    const tc = performance.now();
    const calibration = await readCalibration(cfg, r, dir, seqlen);
    const calibrationSampling = (performance.now() - tc) / 1000;
    const out = outputSpec(cfg, r, ckpt);
    output = await openOutput(cfg, r, staged, ckpt, fingerprintInputs(cfg, r, ckpt, spec, calibration, out), out, seqlen);
    const allocation = await allocate(cfg, r, ckpt, spec, calibration, output.start, kernels);
    output.store?.setAllocation(allocation);
    const plan = buildPlan(c, { ...spec, ...(allocation ? { blockSparsities: allocation.sparsities } : {}) });
    const result = await loop(cfg, r, ckpt, plan, calibration, output, staged, kernels);
    const { writer, store, start } = output;
    writer.finish();
    const storage = storageReport(writer, c, staged.tmp, out.dtype, out.compress);
    writeModelFiles(staged.tmp, c, dir, out.dtype, writer.quantizationConfig());
    output = null; // the writer is finished: nothing to abort
    const times = { t0, calibrationSampling, earlier: start?.seconds ?? 0 };
    const report = buildReport(cfg, { dir, r, plan, allocation, calibration, seqlen, dtype: out.dtype, storage, times, resumedAt: store?.resumes ?? [] }, result);
    store?.clear();
    writeJsonAtomic(staged.path('report.json'), report);
    staged.commit();
    staged = null;
    return report;
  } catch (e) {
    if (staged && hasResumeState(staged.tmp) && e instanceof Error) {
      e.message += ` (the finished blocks are kept in ${staged.tmp}: ${resumeHint(cfg, r)})`;
    }
    throw e;
  } finally {
    output?.writer.abort();
    if (staged && !hasResumeState(staged.tmp)) staged.abandon();
    else staged?.release(); // the resume state stays in <out>.partial
    ckpt.close();
  }
}
