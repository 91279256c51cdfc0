/**
 * LoRA adapters on disk, in Hugging Face PEFT's layout, and merged checkpoints.
 *
 * PEFT layout (what `PeftModel.save_pretrained` writes for a LLaMA with LoRA on q_proj and v_proj):
 *   adapter_config.json        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "lora_alpha": 16,
 *                               "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"], "bias": "none", ...}
 *   adapter_model.safetensors  base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight  [r, in]  F32
 *                              base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight  [out, r] F32
 * Only long-standing LoraConfig fields are written; fields added by later PEFT versions (use_rslora, use_dora,
 * rank_pattern, ...) take their defaults when PEFT reads the file.
 *
 * Merging: W' = W + scale * B A for every adapted matrix, written as a full checkpoint in the base's dtype.
 * `masked` keeps every weight that is zero in the base at exactly that zero (the pruning mask re-applied, so the
 * sparsity is unchanged); `dense` is the plain merge (what PEFT's merge_and_unload does: the zeros fill in).
 */
import { existsSync, readFileSync } from '../platform/fs.js';
import { join, resolve } from '../platform/path.js';
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, ConfigError, UnsupportedError } from '../errors.js';
import type { LlamaConfig } from '../model/config.js';
import {
  Checkpoint,
  CheckpointWriter,
  compressOptions,
  sparsityStructureOf,
  storageReport,
  type StorageReport,
} from '../model/checkpoint.js';
import type { CheckpointFormat } from '../model/compressed-tensors.js';
import { countZeros } from '../model/sparsity.js';
import { checkBinding } from '../model/binding.js';
import { LINEAR_NAMES, expectedTensors, fusedTensors, linearShape, linearTensorName, type LinearName } from '../model/architecture.js';
import type { ForwardOptions, LlamaModel } from '../model/llama.js';
import { SafetensorsFile, writeFloat32Safetensors, type DType } from '../model/safetensors.js';
import { StagedFolder, writeAtomic, writeJsonAtomic, writeModelFiles } from '../model/save.js';
import { LoraAdapters, loraKey, validateLoraConfig, type LoraArrays, type LoraConfig } from './lora.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** PEFT's tensor name of A or B of block `layer`'s linear `name`. */
export function peftTensorName(layer: number, name: LinearName, which: 'A' | 'B'): string {
  return `base_model.model.${linearTensorName(layer, name).replace(/\.weight$/, `.lora_${which}.weight`)}`;
}

/** adapter_config.json for the adapters (the fields of PEFT's LoraConfig and PeftConfig). */
export function adapterConfigJson(cfg: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: cfg.rank,
    target_modules: [...cfg.targets],
    task_type: 'CAUSAL_LM',
  };
}

/** Write F32 tensors to a safetensors file atomically (writeAtomic). */
function writeSafetensorsAtomic(file: string, tensors: { name: string; shape: number[]; values: Float32Array }[]): void {
  writeAtomic(file, (tmp) => writeFloat32Safetensors(tmp, tensors));
}

/**
 * Save adapters in the PEFT layout into the existing folder `dir` (adapter_config.json and
 * adapter_model.safetensors, each written to a temporary name and renamed into place).
 */
export async function saveAdapters(dir: string, adapters: LoraAdapters, baseModel: string): Promise<void> {
  const r = adapters.config.rank;
  const arrays = await adapters.toArrays();
  const tensors: { name: string; shape: number[]; values: Float32Array }[] = [];
  for (const p of adapters.pairs) {
    const v = arrays.get(loraKey(p.layer, p.name))!;
    tensors.push({ name: peftTensorName(p.layer, p.name, 'A'), shape: [r, p.inFeatures], values: v.a });
    tensors.push({ name: peftTensorName(p.layer, p.name, 'B'), shape: [p.outFeatures, r], values: v.b });
  }
  writeSafetensorsAtomic(join(dir, ADAPTER_WEIGHTS_FILE), tensors);
  writeJsonAtomic(join(dir, ADAPTER_CONFIG_FILE), adapterConfigJson(adapters.config, baseModel));
}

/** What an adapter folder holds, checked against a model config. */
export interface AdapterFiles {
  config: LoraConfig;
  baseModel: string | null; // base_model_name_or_path
  arrays: Map<string, LoraArrays>; // `${layer}.${name}` -> A [r, in], B [out, r] (row-major)
}

function parseAdapterConfig(file: string): { config: LoraConfig; baseModel: string | null } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read as JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CheckpointError(`${file}: not a JSON object`);
  const o = raw as Record<string, unknown>;
  const bad = (field: string, want: string): never => {
    throw new CheckpointError(`${file}: field '${field}' must be ${want}, got ${JSON.stringify(o[field])}`);
  };
  if (o['peft_type'] !== 'LORA') bad('peft_type', '"LORA"');
  const r = o['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad('r', 'a positive integer');
  const alpha = o['lora_alpha'];
  if (typeof alpha !== 'number' || !(alpha > 0)) bad('lora_alpha', 'a positive number');
  const dropout = o['lora_dropout'] ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1) bad('lora_dropout', 'a number in [0, 1)');
  let targets = o['target_modules'];
  if (typeof targets === 'string') targets = [targets];
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string')) {
    bad('target_modules', 'a non-empty list of module names');
  }
  for (const t of targets as string[]) {
    if (!(LINEAR_NAMES as readonly string[]).includes(t)) {
      throw new UnsupportedError(
        `${file}: target_modules entry '${t}' is not a LLaMA linear layer name (${LINEAR_NAMES.join(', ')}); ` +
          'regular expressions and other modules are not supported',
      );
    }
  }
  const unsupported: [string, (v: unknown) => boolean, string][] = [
    ['bias', (v) => v === undefined || v === 'none', 'only bias "none" is supported'],
    ['fan_in_fan_out', (v) => v === undefined || v === false, 'fan_in_fan_out (Conv1D layers) is not supported'],
    ['use_dora', (v) => v === undefined || v === false, 'DoRA adapters are not supported'],
    ['use_rslora', (v) => v === undefined || v === false, 'rsLoRA scaling is not supported'],
    ['layers_to_transform', (v) => v === undefined || v === null, 'adapters on a subset of layers are not supported'],
    ['modules_to_save', (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0), 'modules_to_save is not supported'],
    ['rank_pattern', (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0), 'per-module ranks are not supported'],
    ['alpha_pattern', (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0), 'per-module alphas are not supported'],
  ];
  for (const [field, ok, why] of unsupported) {
    if (!ok(o[field])) throw new UnsupportedError(`${file}: ${field} = ${JSON.stringify(o[field])}: ${why}`);
  }
  const base = o['base_model_name_or_path'];
  return {
    config: validateLoraConfig({ rank: r as number, alpha: alpha as number, dropout: dropout as number, targets: targets as LinearName[] }),
    baseModel: typeof base === 'string' ? base : null,
  };
}

/**
 * Read and check an adapter folder against a model config: every tensor name must be PEFT's for an adapted layer
 * of this model, every (block, target) must have both A [r, in] and B [out, r].
 */
export function readAdapterFiles(dir: string, model: LlamaConfig): AdapterFiles {
  const root = resolve(dir);
  const cfgFile = join(root, ADAPTER_CONFIG_FILE);
  const weightsFile = join(root, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(cfgFile)) throw new CheckpointError(`${root}: no ${ADAPTER_CONFIG_FILE} (not a PEFT adapter folder)`);
  if (!existsSync(weightsFile)) {
    throw new CheckpointError(`${root}: no ${ADAPTER_WEIGHTS_FILE} (only safetensors adapters are supported)`);
  }
  const { config, baseModel } = parseAdapterConfig(cfgFile);
  const expected = new Map<string, { key: string; which: 'A' | 'B'; shape: number[] }>();
  for (let layer = 0; layer < model.numLayers; layer++) {
    for (const name of config.targets) {
      const [out, inp] = linearShape(model, name);
      expected.set(peftTensorName(layer, name, 'A'), { key: loraKey(layer, name), which: 'A', shape: [config.rank, inp] });
      expected.set(peftTensorName(layer, name, 'B'), { key: loraKey(layer, name), which: 'B', shape: [out, config.rank] });
    }
  }
  const file = SafetensorsFile.open(weightsFile);
  try {
    for (const [name, e] of file.entries) {
      const want = expected.get(name);
      if (!want) {
        throw new CheckpointError(
          `${weightsFile}: tensor '${name}' is not a LoRA weight of this model's ${config.targets.join(', ')} ` +
            `(${model.numLayers} blocks; expected names like '${peftTensorName(0, config.targets[0]!, 'A')}')`,
        );
      }
      if (e.shape.join(',') !== want.shape.join(',')) {
        throw new CheckpointError(`${weightsFile}: tensor '${name}' has shape [${e.shape.join(', ')}], expected [${want.shape.join(', ')}]`);
      }
    }
    const arrays = new Map<string, LoraArrays>();
    for (const [name, want] of expected) {
      if (!file.entries.has(name)) throw new CheckpointError(`${weightsFile}: tensor '${name}' is missing`);
      const v = file.readFloat32(name);
      const cur = arrays.get(want.key) ?? { a: new Float32Array(0), b: new Float32Array(0) };
      if (want.which === 'A') cur.a = v;
      else cur.b = v;
      arrays.set(want.key, cur);
    }
    return { config, baseModel, arrays };
  } finally {
    file.close();
  }
}

/** Adapters loaded for evaluation: pass `forward` to perplexity / harness calls; `dispose()` frees them. */
export interface LoadedAdapters {
  dir: string;
  config: LoraConfig;
  baseModel: string | null;
  adapters: LoraAdapters;
  forward: ForwardOptions; // evaluation mode (no dropout), adapters unmerged
  dispose(): void;
}

/** Load a PEFT LoRA folder for `model` (unmerged: the base weights are untouched). */
export function loadAdapters(dir: string, model: LlamaModel): LoadedAdapters {
  const files = readAdapterFiles(dir, model.config);
  const adapters = LoraAdapters.fromArrays(model.config, files.config, files.arrays);
  return {
    dir: resolve(dir),
    config: adapters.config,
    baseModel: files.baseModel,
    adapters,
    forward: adapters.forward(),
    dispose: () => adapters.dispose(),
  };
}


/** What a merge did to the sparsity (counted in the files written, after dtype rounding). */
export interface MergeReport {
  mode: 'masked' | 'dense';
  dir: string;
  dtype: DType;
  sparsityBefore: number; // zero fraction of all block linear weights of the base
  sparsityAfter: number; // the same in the merged checkpoint
  zerosLost: number; // base zeros that are no longer zero (0 for masked)
  adapted: { tensor: string; params: number; zerosBefore: number; zerosAfter: number }[];
  sameZeroCounts: boolean; // every linear matrix has exactly as many zeros as in the base
  storage: StorageReport; // bytes on disk, dense vs as written
}

export interface MergeOptions {
  checkpoint: Checkpoint; // the base the adapters were trained on
  adapters: LoraAdapters;
  mode: 'masked' | 'dense';
  out: string; // output checkpoint folder (written staged, renamed into place when complete)
  dtype?: DType; // default: the base's main dtype
  format?: CheckpointFormat; // dense (default) or compressed (compressed-tensors; masked merges only)
  overwrite?: boolean;
  maxShardBytes?: number;
}

/** Check that the adapters fit the checkpoint and the mode and format go together; the compression to write with. */
function checkMerge(o: MergeOptions): ReturnType<typeof compressOptions> {
  const ckpt = o.checkpoint;
  const c = ckpt.config;
  if (o.mode !== 'masked' && o.mode !== 'dense') throw new ConfigError(`--merge: '${String(o.mode)}' is not masked or dense`);
  for (const p of o.adapters.pairs) {
    const [out, inp] = p.layer < c.numLayers ? linearShape(c, p.name) : [0, 0];
    if (out !== p.outFeatures || inp !== p.inFeatures) {
      throw new ConfigError(
        `merge: the adapter of block ${p.layer} ${p.name} [${p.outFeatures}, ${p.inFeatures}] does not fit the checkpoint ${ckpt.dir} ` +
          `(${c.numLayers} blocks${p.layer < c.numLayers ? `, ${p.name} is [${out}, ${inp}]` : ''})`,
      );
    }
  }
  const format = o.format ?? 'dense';
  if (format !== 'dense' && format !== 'compressed') throw new ConfigError(`--format: '${String(format)}' is not dense or compressed`);
  if (format === 'compressed' && o.mode !== 'masked') {
    throw new ConfigError(`--format compressed needs --merge masked: a dense merge fills the pruned zeros in, so nothing would be smaller`);
  }
  // masked merges keep the base's zeros, hence its structure (2:4 gets sparse-24-bitmask)
  return compressOptions(c, format, format === 'compressed' ? sparsityStructureOf(ckpt) : 'unstructured');
}

/**
 * Write every tensor of the base into `dir` (a staged folder), the adapted matrices as W + scale * B A (masked:
 * the base's zeros kept), with config and tokenizer files. Returns the storage report; on failure the writer is
 * aborted (the caller abandons the folder).
 */
async function writeMergedTensors(o: MergeOptions, dir: string, dtype: DType, compress: ReturnType<typeof compressOptions>): Promise<StorageReport> {
  const ckpt = o.checkpoint;
  const c = ckpt.config;
  const adapted = new Map(o.adapters.pairs.map((p) => [linearTensorName(p.layer, p.name), p]));
  const writer = new CheckpointWriter(dir, expectedTensors(c), {
    dtype,
    fused: fusedTensors(c),
    ...(o.maxShardBytes !== undefined ? { maxShardBytes: o.maxShardBytes } : ckpt.sharded ? { maxShardBytes: 5e9 } : {}),
    ...(compress ? { compress } : {}),
  });
  try {
    for (const { name, shape } of expectedTensors(c)) {
      const values = ckpt.read(name);
      const pair = adapted.get(name);
      if (!pair) {
        writer.write(name, values);
        continue;
      }
      checkBinding([shape[0]!, shape[1]!], name); // on webgpu: the merge needs the whole weight as one tensor
      const merged = tf.tidy(() => {
        const wT = tf.transpose(tf.tensor2d(values, [shape[0]!, shape[1]!])) as tf.Tensor2D; // [in, out]
        return tf.transpose(o.adapters.mergedWeightT(pair, wT, o.mode)); // [out, in]
      });
      try {
        writer.write(name, (await merged.data()) as Float32Array);
      } finally {
        merged.dispose();
      }
    }
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  const storage = storageReport(writer, c, dir, dtype, compress);
  writeModelFiles(dir, c, ckpt.dir, dtype, writer.quantizationConfig());
  return storage;
}

/** Zeros of every block linear in the base and in the merged files: what the merge kept and what it filled in. */
function mergedZeros(
  base: Checkpoint,
  mergedDir: string,
  adapted: ReadonlySet<string>,
): Pick<MergeReport, 'sparsityBefore' | 'sparsityAfter' | 'zerosLost' | 'adapted' | 'sameZeroCounts'> {
  const c = base.config;
  const mergedCkpt = Checkpoint.open(mergedDir);
  let params = 0;
  let zerosBefore = 0;
  let zerosAfter = 0;
  let zerosLost = 0;
  let sameZeroCounts = true;
  const perTensor: MergeReport['adapted'] = [];
  try {
    for (let layer = 0; layer < c.numLayers; layer++) {
      for (const n of LINEAR_NAMES) {
        const tensor = linearTensorName(layer, n);
        const b = base.read(tensor);
        const m = mergedCkpt.read(tensor);
        const zb = countZeros(b);
        const za = countZeros(m);
        for (let i = 0; i < b.length; i++) if (b[i] === 0 && m[i] !== 0) zerosLost++;
        params += b.length;
        zerosBefore += zb;
        zerosAfter += za;
        if (zb !== za) sameZeroCounts = false;
        if (adapted.has(tensor)) perTensor.push({ tensor, params: b.length, zerosBefore: zb, zerosAfter: za });
      }
    }
  } finally {
    mergedCkpt.close();
  }
  return { sparsityBefore: zerosBefore / params, sparsityAfter: zerosAfter / params, zerosLost, adapted: perTensor, sameZeroCounts };
}

/**
 * Write base + adapters as one Hugging Face checkpoint. Unadapted tensors are copied value for value; adapted
 * matrices become W + scale * B A (masked: the base's zeros kept). Sparsity is then counted in the written files.
 */
export async function writeMergedCheckpoint(o: MergeOptions): Promise<MergeReport> {
  const compress = checkMerge(o);
  const dtype = o.dtype ?? o.checkpoint.mainDtype();
  const staged = new StagedFolder(o.out, { overwrite: o.overwrite ?? false });
  let storage: StorageReport;
  try {
    storage = await writeMergedTensors(o, staged.tmp, dtype, compress);
    staged.commit();
  } catch (e) {
    staged.abandon();
    throw e;
  }
  const adapted = new Set(o.adapters.pairs.map((p) => linearTensorName(p.layer, p.name)));
  return { mode: o.mode, dir: staged.out, dtype, ...mergedZeros(o.checkpoint, staged.out, adapted), storage };
}
