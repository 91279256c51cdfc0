/**
 * `prune(...)`: load a checkpoint, draw the calibration windows, run the layer loop, write a Hugging Face checkpoint
 * folder plus report.json. The output appears under its final name only when complete.
 */
import { existsSync, statfsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { PRUNE_DEFAULTS } from './defaults.js';
import { Checkpoint, CheckpointWriter, compressOptions, expectedTensors, storageReport, type StorageReport } from '../model/checkpoint.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../model/compressed-tensors.js';
import { HfTokenizer } from '../model/tokenizer.js';
import { DTYPES, dtypeSize, type DType } from '../model/safetensors.js';
import { resolveModelPath } from '../model/hub.js';
import { activeBackend } from '../model/backend.js';
import { StagedFolder, writeJsonAtomic, writeModelFiles } from '../model/save.js';
import { calibrationFromFile, type CalibrationSet } from '../data/calibration.js';
import { getLayerwise, getMethod, getRefiner, type LayerwiseName, type MethodName, type RefinerName } from './registry.js';
import { describeStructure, validateOptions } from './mask.js';
import type { PruneOptions, Structure } from './method.js';
import { owlAllocate, type OwlOptions } from './owl.js';
import { runLayerLoop, type BlockSparsity, type LoopStart, type PhaseTimes, type PruneProgress } from './pipeline.js';
import { ResumeStore, activationBytes, hasResumeState, checkpointStamp, resumeFingerprint, type ActivationStorage, type StoredAllocation } from './resume.js';
import { keepOnInterrupt, shown } from '../interrupt.js';
import { parseStructure as parseStructureAs } from './structure.js';
import { buildPlan, parseOptions, selectLinears } from './plan.js';

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

/** Decide where the run starts: a fresh staged folder, or the resume state of a killed run in `<out>.partial`. */
function openResume(
  cfg: PruneConfig,
  staged: StagedFolder,
  ckpt: Checkpoint,
  inputs: Record<string, unknown>,
  storage: DType,
  needsData: boolean,
  nsamples: number,
  seqlen: number,
): { store: ResumeStore; start: (LoopStart & { allocation: StoredAllocation | null }) | null } {
  const c = ckpt.config;
  const store = new ResumeStore(staged.tmp, resumeFingerprint(inputs), storage);
  let start: (LoopStart & { allocation: StoredAllocation | null }) | null = null;
  if (cfg.resume && store.exists()) {
    start = store.load(c);
    cfg.onNote?.(`resuming ${staged.tmp} at block ${start.nextLayer + 1} of ${c.numLayers}`);
  } else if (cfg.resume) {
    cfg.onNote?.(`--resume: no resume state in ${staged.tmp}; starting at block 1`);
  }
  const acts = needsData ? activationBytes(c, nsamples, seqlen, storage) : 0;
  const output = start ? 0 : ckpt.dataBytes() * (dtypeSize(inputs['dtype'] as DType) / dtypeSize(ckpt.mainDtype()));
  const need = output + 2 * acts; // a new activations file is written before the previous one is removed
  const fs = statfsSync(dirname(staged.tmp));
  const free = fs.bavail * fs.bsize;
  const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;
  cfg.onNote?.(`resume state: ${gb(2 * acts)} at most for the activations (${storage}), ${gb(output)} of output still to write; ${gb(free)} free`);
  if (need > free) {
    throw new ConfigError(
      `--out ${cfg.out}: the run needs ${gb(need)} of disk (output ${gb(output)}, resume activations ${gb(2 * acts)}), only ${gb(free)} is free` +
        (acts > 0 ? '; --resume-activations input halves the activations, --no-resumable drops them' : ''),
    );
  }
  return { store, start };
}

/** Prune a checkpoint and write the result. Returns the report (also written as report.json in the output). */
export async function prune(cfg: PruneConfig): Promise<PruneReport> {
  const t0 = performance.now();
  const method = getMethod(cfg.method);
  const structure = cfg.structure ?? { kind: 'unstructured' };
  const sparsity = structure.kind === 'nm' && cfg.sparsity === undefined ? structure.n / structure.m : cfg.sparsity;
  if (cfg.dtype !== undefined && !DTYPES.includes(cfg.dtype)) {
    throw new ConfigError(`--dtype: '${String(cfg.dtype)}' is not one of ${DTYPES.join(', ')}`);
  }
  if (cfg.format !== undefined && !(CHECKPOINT_FORMATS as readonly string[]).includes(cfg.format)) {
    throw new ConfigError(`--format: '${String(cfg.format)}' is not one of ${CHECKPOINT_FORMATS.join(', ')}`);
  }
  const compressed = (cfg.format ?? PRUNE_DEFAULTS.format) !== 'dense';
  if (cfg.resume && cfg.resumable === false) throw new ConfigError('--resume needs the resume state that --no-resumable turns off');
  if (cfg.resume && compressed) {
    throw new ConfigError('--resume: a compressed output is assembled at the end and cannot be resumed (prune dense with --resume, then `convert`)');
  }
  const resumable = (cfg.resumable ?? PRUNE_DEFAULTS.resumable) && !compressed;
  const pruneOptions: PruneOptions = { sparsity, structure };
  validateOptions(pruneOptions); // before reading any data
  if (cfg.resume && existsSync(join(cfg.out, 'report.json')) && !existsSync(`${resolve(cfg.out)}.partial`)) {
    throw new ConfigError(`--out ${cfg.out}: this run is already complete (report.json present); nothing to resume (--overwrite prunes again)`);
  }
  if (cfg.useVariant && cfg.method !== 'wanda') throw new ConfigError(`useVariant: applies to wanda only, not ${cfg.method}`);
  const methodOptions = parseOptions(`method ${cfg.method}`, method.options, { ...(cfg.useVariant ? { variant: true } : {}), ...(cfg.methodOptions ?? {}) });
  const allocator = cfg.layerwise !== undefined ? getLayerwise(cfg.layerwise) : null;
  const layerwiseOptions = allocator ? (parseOptions(`layerwise ${allocator.name}`, allocator.options, cfg.layerwiseOptions) as OwlOptions) : null;
  if (allocator && structure.kind === 'nm') {
    throw new ConfigError(`--layerwise ${allocator.name}: allocates unstructured sparsities; with N:M every block is N/M (use --structure unstructured)`);
  }
  const refiner = cfg.refine !== undefined ? getRefiner(cfg.refine) : null;
  const refineOptions = refiner ? parseOptions(`refine ${refiner.name}`, refiner.options, cfg.refineOptions) : null;
  const needsData = method.stats.length > 0 || allocator !== null || refiner !== null;
  // the checks of the plan that need no model, before anything is read
  method.check?.(pruneOptions, methodOptions);
  if (refiner && method.updatesWeights) {
    throw new ConfigError(`--refine ${refiner.name}: ${cfg.method} updates the weights it keeps; refine a method that only masks (wanda, magnitude, ria)`);
  }
  const dir = await resolveModelPath(cfg.model, { token: cfg.hubToken });
  const ckpt = Checkpoint.open(dir);
  let staged: StagedFolder | null = null;
  let writer: CheckpointWriter | null = null;
  let store: ResumeStore | null = null;
  try {
    const c = ckpt.config;
    const seqlen = cfg.seqlen ?? c.maxPositions;
    if (!Number.isInteger(seqlen) || seqlen < 1 || seqlen > c.maxPositions) {
      throw new ConfigError(`--seqlen ${seqlen}: must be an integer in 1..${c.maxPositions} (the model context)`);
    }
    const nsamples = cfg.nsamples ?? PRUNE_DEFAULTS.nsamples;
    const seed = cfg.seed ?? PRUNE_DEFAULTS.seed;
    // refuse an existing --out before the calibration data is read (which can take long)
    const resume = cfg.resume ?? PRUNE_DEFAULTS.resume;
    staged = new StagedFolder(cfg.out, {
      overwrite: (cfg.overwrite ?? PRUNE_DEFAULTS.overwrite) || resume,
      resumable,
      keep: resume,
      ...(cfg.onNote ? { onNote: cfg.onNote } : {}),
    });
    if (resumable) {
      // llm-prune's signal cleanup (lib/interrupt.ts) keeps the folder once it holds a state (staged.protect() below)
      keepOnInterrupt(
        join(staged.tmp, 'resume', 'state.json'),
        `kept the finished blocks in ${shown(staged.tmp)}: ${cfg.resumeHint ?? 'rerun the same command with --resume to continue'}`,
        '',
      );
    }
    let calibration: CalibrationSet | null = null;
    const tc = performance.now();
    // the whole plan is checked before the calibration data is read
    const planSpec = {
      method,
      methodOptions,
      target: pruneOptions,
      refiner,
      refinerOptions: refineOptions,
      targets: cfg.targets ?? [],
      ignore: cfg.ignore ?? [],
    };
    buildPlan(c, planSpec);
    if (needsData) {
      const who = method.stats.length > 0 ? `method ${cfg.method}` : allocator ? `--layerwise ${allocator.name}` : `--refine ${refiner!.name}`;
      if (!cfg.calibration) throw new ConfigError(`--calibration: ${who} needs a calibration data file`);
      const tokenizer = HfTokenizer.fromFolder(dir);
      calibration = await calibrationFromFile(cfg.calibration, {
        tokenizer,
        nsamples,
        seqlen,
        seed,
        ...(cfg.calibrationField !== undefined ? { field: cfg.calibrationField } : {}),
      });
    }
    const calibrationSampling = (performance.now() - tc) / 1000;
    const dtype = cfg.dtype ?? ckpt.mainDtype();
    const compress = compressOptions(c, cfg.format ?? PRUNE_DEFAULTS.format, describeStructure(structure));
    const maxShardBytes = cfg.maxShardBytes ?? (ckpt.sharded ? 5e9 : undefined);
    const batchSize = cfg.batchSize ?? PRUNE_DEFAULTS.batchSize;
    const actStorage = (cfg.resumeActivations ?? PRUNE_DEFAULTS.resumeActivations) === 'input' ? ckpt.mainDtype() : 'F32';
    // everything the output bytes depend on; OWL's allocation is a function of these (model, calibration, batch
    // size, layerwise options, targets/ignore) and is stored in the state, so a resume does not rerun OWL's pass 1
    const fingerprintInputs = {
      model: checkpointStamp(ckpt), config: c.raw, method: cfg.method, options: pruneOptions, methodOptions,
      layerwise: allocator ? { name: allocator.name, options: layerwiseOptions } : null,
      refine: refiner ? { name: refiner.name, options: refineOptions } : null,
      targets: planSpec.targets, ignore: planSpec.ignore,
      calibration: calibration?.hash ?? null, batchSize, dtype, maxShardBytes: maxShardBytes ?? null, storage: actStorage,
    };
    const resumed = resumable ? openResume(cfg, staged, ckpt, fingerprintInputs, actStorage, needsData, nsamples, seqlen) : { store: null, start: null };
    store = resumed.store;
    const start = resumed.start;
    if (start) staged.protect();
    const tensors = expectedTensors(c);
    writer = new CheckpointWriter(staged.tmp, tensors, {
      dtype,
      reopen: start !== null,
      ...(maxShardBytes !== undefined ? { maxShardBytes } : {}),
      ...(compress ? { compress } : {}),
    });
    if (start) {
      const done = (name: string): boolean => { const m = /^model\.layers\.(\d+)\./.exec(name); return !m || Number(m[1]) < start.nextLayer; };
      writer.markWritten(tensors.map((t) => t.name).filter(done));
    }
    let allocation: StoredAllocation | null = start?.allocation ?? null;
    if (allocator && layerwiseOptions && !allocation) {
      const { selected } = selectLinears(c, planSpec.targets, planSpec.ignore);
      allocation = await owlAllocate(ckpt, calibration!, batchSize, sparsity, layerwiseOptions, selected, (l, n) =>
        cfg.onProgress?.({ layer: l, layers: n, elapsed: 0, eta: 0, tokensPerSecond: 0, pass: 'owl' }),
      );
    }
    store?.setAllocation(allocation);
    const plan = buildPlan(c, { ...planSpec, ...(allocation ? { blockSparsities: allocation.sparsities } : {}) });
    const w = writer;
    const st = staged;
    const loop = await runLayerLoop({
      checkpoint: ckpt,
      plan,
      calibration,
      batchSize,
      writer,
      ...(start ? { start } : {}),
      ...(store
        ? {
            onCheckpoint: async (cp: Parameters<ResumeStore['save']>[0]) => {
              await store!.save(cp, () => w.sync());
              st.protect();
            },
          }
        : {}),
      ...(cfg.onProgress ? { onProgress: cfg.onProgress } : {}),
    });
    writer.finish();
    const storage = storageReport(writer, c, staged.tmp, dtype, compress);
    writeModelFiles(staged.tmp, c, dir, dtype, writer.quantizationConfig());
    writer = null;
    const zeros = loop.blocks.reduce((a, b) => a + b.zeros, 0);
    const params = loop.blocks.reduce((a, b) => a + b.params, 0);
    const report: PruneReport = {
      model: dir,
      out: resolve(cfg.out),
      method: cfg.method,
      structure: describeStructure(structure),
      sparsityTarget: sparsity,
      useVariant: (methodOptions as { variant?: boolean }).variant === true,
      plan: {
        methodOptions,
        layerwise: allocator && allocation ? { name: allocator.name, options: layerwiseOptions, outlierRatios: allocation.ratios, sparsities: allocation.sparsities } : null,
        refine: refiner
          ? { name: refiner.name, options: refineOptions, linears: plan.blocks.flatMap((b) => Object.values(b.linears).filter((e) => e?.refine).map((e) => e!.ref.name)) }
          : null,
        targets: cfg.targets ?? [],
        ignore: cfg.ignore ?? [],
        skipped: plan.skipped,
      },
      ...(Object.keys(loop.permutations).length > 0 ? { permutations: loop.permutations } : {}),
      calibration: calibration
        ? {
            file: resolve(cfg.calibration!),
            nsamples,
            seqlen,
            seed,
            hash: calibration.hash,
            windows: calibration.windows.map((w) => [w.doc, w.offset]),
          }
        : null,
      sparsity: { overall: zeros / params, blocks: loop.blocks },
      times: { ...loop.times, calibrationSampling, total: (performance.now() - t0) / 1000 + (start?.seconds ?? 0) },
      backend: activeBackend()?.name ?? 'unknown',
      peakRssMB: process.resourceUsage().maxRSS / 1024,
      dtype,
      storage,
      resumedAt: store?.resumes ?? [],
    };
    store?.clear();
    store = null;
    writeJsonAtomic(staged.path('report.json'), report);
    staged.commit();
    staged = null;
    return report;
  } catch (e) {
    if (staged && hasResumeState(staged.tmp) && e instanceof Error) {
      e.message += ` (the finished blocks are kept in ${staged.tmp}: ${cfg.resumeHint ?? 'rerun with --resume to continue'})`;
    }
    throw e;
  } finally {
    writer?.abort();
    if (staged && !hasResumeState(staged.tmp)) staged.abandon();
    ckpt.close();
  }
}
