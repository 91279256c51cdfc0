/**
 * A Hugging Face checkpoint folder: config.json, model.safetensors or shards + model.safetensors.index.json,
 * tokenizer files. Reading is lazy (tensor by tensor); writing streams tensors into planned shards.
 */
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CheckpointError } from '../errors.js';
import { readConfig, type LlamaConfig } from './config.js';
import {
  AppendingSafetensorsWriter,
  SafetensorsFile,
  SafetensorsWriter,
  decodeToFloat32,
  dtypeSize,
  encodeFromFloat32,
  type DType,
  type PlannedTensor,
  type RowRange,
} from './safetensors.js';
import {
  PARAM_NAMES,
  checkCompressedHeaders,
  compressWeight,
  countZeros,
  decompressWeight,
  quantizationConfigBlock,
  readSparsityInfo,
  sparseFormatFor,
  type CheckpointFormat,
  type SparseFormat,
  type SparsityInfo,
} from './compressed-tensors.js';
import { transposeFloat32 } from './dtype-convert.js';
import {
  EMBED_TOKENS,
  LINEAR_NAMES,
  LM_HEAD,
  expectedTensors,
  fuseTensorList,
  fusedLocation,
  fusedTensors,
  linearShape,
  linearTensorName,
  storedTensors,
  type FusedTensor,
  type LinearName,
  type TensorSpec,
} from './architecture.js';

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';


function readJsonObject(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read as JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CheckpointError(`${file}: not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * An open checkpoint: config parsed, every safetensors header validated, every tensor the config implies
 * present with the right shape. Tensor data is read only when asked for.
 *
 * Tensors are named as `expectedTensors` lists them: a fused tensor (Phi-3's qkv_proj, gate_up_proj) is seen as
 * the linears it stacks, each read from its rows.
 */
export class Checkpoint {
  private readonly where = new Map<string, { file: SafetensorsFile; entry: string }>();
  /** Weights stored in a compressed-tensors sparse format: weight name -> its stored parts. */
  private readonly compressed = new Map<
    string,
    { format: SparseFormat; parts: Record<string, { file: SafetensorsFile; entry: string }>; shape?: number[] }
  >();

  private constructor(
    readonly dir: string,
    readonly config: LlamaConfig,
    readonly files: SafetensorsFile[],
    readonly sharded: boolean,
    /** config.json's compressed-tensors `quantization_config` (null: a plain checkpoint). */
    readonly sparsity: SparsityInfo | null,
  ) {}

  static open(dir: string): Checkpoint {
    const root = resolve(dir);
    if (!existsSync(root)) throw new CheckpointError(`${dir}: checkpoint folder does not exist`);
    const config = readConfig(join(root, 'config.json'));
    const sparsity = readSparsityInfo(config.raw, join(root, 'config.json'));
    const indexPath = join(root, INDEX_FILE);
    let fileNames: string[];
    let weightMap: Record<string, string> | null = null;
    if (existsSync(indexPath)) {
      const index = readJsonObject(indexPath);
      const wm = index['weight_map'];
      if (!wm || typeof wm !== 'object' || Array.isArray(wm)) {
        throw new CheckpointError(`${indexPath}: field 'weight_map' must be an object {tensor: file}`);
      }
      weightMap = {};
      for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
        if (typeof file !== 'string' || file === '') {
          throw new CheckpointError(`${indexPath}: weight_map['${tensor}'] must be a file name, got ${JSON.stringify(file)}`);
        }
        const full = resolve(root, file);
        const rel = relative(root, full);
        if (isAbsolute(file) || rel.startsWith('..') || rel.includes(`..${sep}`) || isAbsolute(rel)) {
          throw new CheckpointError(
            `${indexPath}: weight_map['${tensor}'] = '${file}' points outside the checkpoint folder ${root}`,
          );
        }
        weightMap[tensor] = rel;
      }
      fileNames = [...new Set(Object.values(weightMap))].sort();
    } else if (existsSync(join(root, SINGLE_FILE))) {
      fileNames = [SINGLE_FILE];
    } else {
      throw new CheckpointError(`${root}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found (only safetensors is supported)`);
    }
    const files: SafetensorsFile[] = [];
    try {
      for (const f of fileNames) files.push(SafetensorsFile.open(join(root, f)));
      const ckpt = new Checkpoint(root, config, files, weightMap !== null, sparsity);
      ckpt.indexTensors(weightMap, indexPath);
      if (sparsity && sparsity.format !== 'dense') ckpt.indexCompressed(sparsity.format);
      ckpt.checkExpected();
      return ckpt;
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  private indexTensors(weightMap: Record<string, string> | null, indexPath: string): void {
    for (const file of this.files) {
      for (const name of file.entries.keys()) {
        if (weightMap && weightMap[name] !== undefined && resolve(this.dir, weightMap[name]) !== resolve(file.path)) continue;
        if (this.where.has(name)) {
          throw new CheckpointError(`${file.path}: tensor '${name}' also appears in ${this.where.get(name)!.file.path}`);
        }
        this.where.set(name, { file, entry: name });
      }
    }
    if (weightMap) {
      for (const [tensor, f] of Object.entries(weightMap)) {
        if (!this.where.has(tensor)) {
          throw new CheckpointError(`${indexPath}: weight_map lists '${tensor}' in ${f}, but that file has no such tensor`);
        }
      }
    }
    // Aliases in __metadata__ (as transformers writes for shared tensors): {"alias name": "stored name"}.
    for (const file of this.files) {
      for (const [alias, target] of Object.entries(file.metadata)) {
        if (!this.where.has(alias) && this.where.has(target)) this.where.set(alias, this.where.get(target)!);
      }
    }
    // Tied embeddings stored under one name only.
    if (this.config.tieWordEmbeddings) {
      if (!this.where.has(EMBED_TOKENS) && this.where.has(LM_HEAD)) this.where.set(EMBED_TOKENS, this.where.get(LM_HEAD)!);
    }
  }

  /** Group `<prefix>.bitmask` and its sibling parts into compressed weights `<prefix>.weight`. */
  private indexCompressed(format: SparseFormat): void {
    for (const name of [...this.where.keys()]) {
      if (!name.endsWith('.bitmask')) continue;
      const prefix = name.slice(0, -'.bitmask'.length);
      const weight = `${prefix}.weight`;
      const parts: Record<string, { file: SafetensorsFile; entry: string }> = {};
      for (const p of PARAM_NAMES[format]) {
        const loc = this.where.get(`${prefix}.${p}`);
        if (!loc) throw new CheckpointError(`${this.where.get(name)!.file.path}: '${name}' has no '${prefix}.${p}' beside it (${format} stores ${PARAM_NAMES[format].join(', ')})`);
        parts[p] = loc;
      }
      if (this.where.has(weight)) {
        throw new CheckpointError(`${this.where.get(weight)!.file.path}: '${weight}' is stored both dense and as ${format} ('${name}')`);
      }
      this.compressed.set(weight, { format, parts });
    }
  }

  private checkExpected(): void {
    for (const { name, shape } of storedTensors(this.config)) {
      const packed = this.compressed.get(name);
      if (packed) {
        const headers = Object.fromEntries(
          Object.entries(packed.parts).map(([p, loc]) => [p, loc.file.entries.get(loc.entry)!]),
        );
        checkCompressedHeaders(`${packed.parts['bitmask']!.file.path}: weight '${name}' (${packed.format})`, packed.format, headers, shape);
        packed.shape = shape;
        continue;
      }
      const loc = this.where.get(name);
      if (!loc) {
        throw new CheckpointError(
          `${this.dir}: tensor '${name}' is missing; config.json (${this.config.architecture}, ${this.config.numLayers} layers) needs it`,
        );
      }
      const entry = loc.file.entries.get(loc.entry)!;
      if (entry.shape.join(',') !== shape.join(',')) {
        throw new CheckpointError(
          `${loc.file.path}: tensor '${name}' has shape [${entry.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
        );
      }
      if (!['F32', 'F16', 'BF16'].includes(entry.dtype)) {
        throw new CheckpointError(`${loc.file.path}: tensor '${name}' has dtype ${entry.dtype}; supported: F32, F16, BF16`);
      }
    }
  }

  /** The stored tensor holding `name`, with the rows that are `name`'s when it is part of a fused tensor. */
  private locate(name: string): { name: string; rows?: RowRange } {
    const f = fusedLocation(this.config, name);
    return f ? { name: f.name, rows: { start: f.row, count: f.rows } } : { name };
  }

  has(name: string): boolean {
    const stored = this.locate(name).name;
    return this.where.has(stored) || this.compressed.has(stored);
  }

  /** Whether a weight is stored in a compressed-tensors sparse format (a fused one: the fused tensor is). */
  isCompressed(name: string): boolean {
    return this.compressed.has(this.locate(name).name);
  }

  /** Stored dtype of a tensor (of the values of a compressed weight). */
  dtypeOf(name: string): string {
    name = this.locate(name).name;
    const packed = this.compressed.get(name);
    if (packed) return this.dtypeOf(packed.parts['compressed']!.entry);
    const loc = this.where.get(name);
    if (!loc) throw new CheckpointError(`${this.dir}: no tensor '${name}'`);
    return loc.file.entries.get(loc.entry)!.dtype;
  }

  /** The dtype most weights are stored in (the output default). */
  mainDtype(): DType {
    const counts = new Map<string, number>();
    for (const f of this.files) {
      for (const e of f.entries.values()) if (['F32', 'F16', 'BF16'].includes(e.dtype)) counts.set(e.dtype, (counts.get(e.dtype) ?? 0) + e.end - e.begin);
    }
    const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
    return (['F32', 'F16', 'BF16'].includes(best) ? best : 'F32') as DType;
  }

  /**
   * Read one tensor as float32 (lazily, from the file bytes), into `out` when given (its length must be the
   * tensor's size: a caller that reuses one array saves allocating and page-faulting a fresh one per tensor).
   */
  read(name: string, out?: Float32Array): Float32Array {
    const { name: stored, rows } = this.locate(name);
    if (rows) {
      if (!this.compressed.has(stored)) {
        const loc = this.readStored(stored);
        return loc.file.readFloat32(loc.entry, out, rows);
      }
      const [, cols] = this.compressed.get(stored)!.shape as [number, number];
      const part = this.read(stored).subarray(rows.start * cols, (rows.start + rows.count) * cols);
      if (out && out.length !== part.length) throw new CheckpointError(`${this.dir}: tensor '${name}' holds ${part.length} values, the array given has ${out.length}`);
      return out ? (out.set(part), out) : part.slice();
    }
    const packed = this.compressed.get(name);
    if (packed) {
      const { parts, format } = packed;
      const bytes = (p: string): Uint8Array => parts[p]!.file.readBytes(parts[p]!.entry);
      const where = `${parts['bitmask']!.file.path}: weight '${name}' (${format})`;
      const values = decodeToFloat32(bytes('compressed'), this.dtypeOf(name), where);
      const shape = packed.shape;
      if (!shape) throw new CheckpointError(`${where}: config.json implies no such weight`);
      const dense = decompressWeight(where, format, {
        shape: bytes('shape'),
        compressed: values,
        bitmask: bytes('bitmask'),
        ...(format === 'sparse-bitmask' ? { rowOffsets: bytes('row_offsets') } : {}),
      }, shape);
      if (!out) return dense;
      if (out.length !== dense.length) throw new CheckpointError(`${where}: holds ${dense.length} values, the array given has ${out.length}`);
      out.set(dense);
      return out;
    }
    const loc = this.readStored(name);
    return loc.file.readFloat32(loc.entry, out);
  }

  private readStored(name: string): { file: SafetensorsFile; entry: string } {
    const loc = this.where.get(name);
    if (!loc) throw new CheckpointError(`${this.dir}: no tensor '${name}'`);
    return loc;
  }

  /**
   * Read a 2-D tensor [rows, cols] as float32 transposed ([cols, rows]), into `out` when given (as for `read`). A
   * dense 16-bit tensor is transposed chunk by chunk as it is decoded.
   */
  readTransposed(name: string, out?: Float32Array): Float32Array {
    const { name: stored, rows: range } = this.locate(name);
    const loc = this.compressed.has(stored) ? undefined : this.where.get(stored);
    if (loc) return loc.file.readFloat32Transposed(loc.entry, out, range);
    const shape = this.compressed.get(stored)?.shape;
    if (!shape || shape.length !== 2) throw new CheckpointError(`${this.dir}: no 2-D tensor '${name}'`);
    const [rows, cols] = range ? [range.count, shape[1]!] : (shape as [number, number]);
    if (out && out.length !== rows * cols) throw new CheckpointError(`${this.dir}: tensor '${name}' holds ${rows * cols} values, the array given has ${out.length}`);
    return transposeFloat32(this.read(name), rows, cols, out);
  }

  /** Total bytes of the safetensors files' data. */
  dataBytes(): number {
    let n = 0;
    for (const f of this.files) for (const e of f.entries.values()) n += e.end - e.begin;
    return n;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** Options for writing a checkpoint. */
export interface WriteOptions {
  dtype: DType; // storage dtype of every tensor
  maxShardBytes?: number; // split into shards (with an index) when the data exceeds this
  /** Store these weights in a compressed-tensors sparse format (lib/model/compressed-tensors.ts). */
  compress?: CompressOptions;
  reopen?: boolean; // continue files written earlier with the same plan (a resumed run) instead of truncating them
  /** Tensors stored fused (`fusedTensors(config)`): their parts are written by name and stored stacked. */
  fused?: readonly FusedTensor[];
}

/** Which weights to compress, and how. */
export interface CompressOptions {
  format: SparseFormat;
  structure: string; // sparsity_structure written to config.json ('unstructured', '2:4', ...)
  names: ReadonlySet<string>; // weights to compress (the pruned linears)
}

/** Bytes written, for reports: all tensors, and the compressed weights against their dense size. */
export interface WriteStats {
  dataBytes: number; // safetensors data areas (headers excluded)
  compressedBytes: number; // stored parts of the compressed weights
  compressedDenseBytes: number; // what those weights take dense, in the same dtype
  zeros: number; // zero values over all tensors written (compressed mode only)
  params: number;
}

/**
 * Streams a checkpoint's tensors into `dir` (single file or shards + index). The tensor list is planned up front so
 * tensors can be written in any order as they become available. Caller writes config/tokenizer files (with
 * `quantizationConfig()` for a compressed checkpoint).
 *
 * Dense: each file's header is written first and tensors go to their planned offsets. Compressed: sizes are known
 * only once the values are, so each file is assembled at `finish()` (AppendingSafetensorsWriter); shards are the
 * ones the dense sizes would give.
 */
export class CheckpointWriter {
  /** Fused tensors by part name, and the parts received so far of each one not yet complete. */
  private readonly fusedOf = new Map<string, FusedTensor>();
  private readonly pending = new Map<string, { values: Float32Array; missing: Set<string> }>();
  private readonly compressNames = new Set<string>();
  private readonly writers: SafetensorsWriter[] = [];
  private readonly byName = new Map<string, SafetensorsWriter>();
  private readonly appenders = new Map<string, { w: AppendingSafetensorsWriter; file: string; shape: number[] }>();
  private readonly weightMap: Record<string, string> = {};
  private readonly written = new Set<string>();
  readonly stats: WriteStats = { dataBytes: 0, compressedBytes: 0, compressedDenseBytes: 0, zeros: 0, params: 0 };

  constructor(
    readonly dir: string,
    plan: { name: string; shape: number[] }[],
    private readonly options: WriteOptions,
  ) {
    const fused = options.fused ?? [];
    for (const f of fused) for (const p of f.parts) this.fusedOf.set(p.name, f);
    for (const n of options.compress?.names ?? []) this.compressNames.add(n);
    for (const f of fused) if (f.parts.every((p) => this.compressNames.has(p.name))) this.compressNames.add(f.name);
    const planned: PlannedTensor[] = fuseTensorList(plan as TensorSpec[], fused).map((t) => ({ ...t, dtype: options.dtype }));
    const bytes = (t: PlannedTensor): number => t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
    const shards: PlannedTensor[][] = [[]];
    let cur = 0;
    for (const t of planned) {
      const b = bytes(t);
      if (options.maxShardBytes !== undefined && cur > 0 && cur + b > options.maxShardBytes) {
        shards.push([]);
        cur = 0;
      }
      shards[shards.length - 1]!.push(t);
      cur += b;
    }
    const n = shards.length;
    const names =
      n === 1
        ? [SINGLE_FILE]
        : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
    if (options.compress) {
      shards.forEach((s, i) => {
        const w = new AppendingSafetensorsWriter(join(dir, names[i]!));
        for (const t of s) this.appenders.set(t.name, { w, file: names[i]!, shape: t.shape });
      });
      return;
    }
    let total = 0;
    shards.forEach((s, i) => {
      const w = new SafetensorsWriter(join(dir, names[i]!), s, undefined, { reopen: options.reopen ?? false });
      this.writers.push(w);
      total += w.totalBytes;
      for (const t of s) {
        this.byName.set(t.name, w);
        this.weightMap[t.name] = names[i]!;
      }
    });
    this.stats.dataBytes = total;
    if (n > 1) {
      writeFileSync(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: total }, weight_map: this.weightMap }, null, 2));
    }
  }

  /** Write one tensor of the plan; a part of a fused tensor is held until the fused tensor is complete. */
  write(name: string, values: Float32Array): void {
    const f = this.fusedOf.get(name);
    if (!f) return this.writeStored(name, values);
    let p = this.pending.get(f.name);
    if (!p) this.pending.set(f.name, (p = { values: new Float32Array(f.shape[0] * f.shape[1]), missing: new Set(f.parts.map((x) => x.name)) }));
    let row = 0;
    for (const part of f.parts) {
      if (part.name === name) {
        if (values.length !== part.rows * f.shape[1]) {
          throw new CheckpointError(`${this.dir}: tensor '${name}' got ${values.length} values, its planned shape needs ${part.rows * f.shape[1]}`);
        }
        p.values.set(values, row * f.shape[1]);
      }
      row += part.rows;
    }
    p.missing.delete(name);
    if (p.missing.size > 0) return;
    this.pending.delete(f.name);
    this.writeStored(f.name, p.values);
  }

  private writeStored(name: string, values: Float32Array): void {
    if (!this.options.compress) {
      const w = this.byName.get(name);
      if (!w) throw new CheckpointError(`${this.dir}: tensor '${name}' is not in the planned checkpoint`);
      w.write(name, values);
      return;
    }
    const a = this.appenders.get(name);
    if (!a) throw new CheckpointError(`${this.dir}: tensor '${name}' is not in the planned checkpoint`);
    const numel = a.shape.reduce((x, y) => x * y, 1);
    if (values.length !== numel) {
      throw new CheckpointError(`${a.w.path}: tensor '${name}' got ${values.length} values, its planned shape needs ${numel}`);
    }
    const dtype = this.options.dtype;
    const es = dtypeSize(dtype);
    const bytes = encodeFromFloat32(values, dtype);
    const c = this.options.compress;
    if (this.compressNames.has(name)) {
      if (a.shape.length !== 2) throw new CheckpointError(`${this.dir}: '${name}' has shape [${a.shape.join(', ')}]; only 2-D weights are compressed`);
      const { tensors, zeros } = compressWeight(name, bytes, dtype, es, a.shape as [number, number], c.format);
      for (const t of tensors) {
        a.w.write(t);
        this.weightMap[t.name] = a.file;
        this.stats.compressedBytes += t.bytes.length;
      }
      this.stats.compressedDenseBytes += bytes.length;
      this.stats.zeros += zeros;
    } else {
      a.w.write({ name, dtype, shape: a.shape, bytes });
      this.weightMap[name] = a.file;
      this.stats.zeros += countZeros(bytes, es);
    }
    this.stats.params += numel;
    this.written.add(name);
  }

  /** config.json's `quantization_config` for what was written (null for a dense checkpoint). */
  quantizationConfig(): Record<string, unknown> | null {
    const c = this.options.compress;
    if (!c) return null;
    return quantizationConfigBlock(c.format, c.structure, this.stats.params ? this.stats.zeros / this.stats.params : 0);
  }

  /** Count tensors as written by an earlier process (a resumed run; dense format only). */
  markWritten(names: string[]): void {
    const stored = [...new Set(names.map((n) => this.fusedOf.get(n)?.name ?? n))];
    for (const w of this.writers) w.markWritten(stored);
  }

  /** Flush every shard to the disk (dense format; a compressed checkpoint is assembled at finish()). */
  sync(): void {
    for (const w of this.writers) w.sync();
  }

  finish(): void {
    const partial = [...this.pending.entries()][0];
    if (partial) {
      this.abort();
      throw new CheckpointError(`${this.dir}: fused tensor '${partial[0]}' never got '${[...partial[1].missing][0]}'`);
    }
    if (!this.options.compress) {
      for (const w of this.writers) w.finish();
      return;
    }
    const missing = [...this.appenders.keys()].filter((n) => !this.written.has(n));
    if (missing.length) {
      this.abort();
      throw new CheckpointError(`${this.dir}: ${missing.length} planned tensors never written (first: '${missing[0]}')`);
    }
    const shards = [...new Set([...this.appenders.values()].map((a) => a.w))];
    for (const w of shards) {
      w.finish();
      this.stats.dataBytes += w.dataBytes;
    }
    if (shards.length > 1) {
      const weightMap = Object.fromEntries(Object.keys(this.weightMap).sort().map((k) => [k, this.weightMap[k]]));
      writeFileSync(join(this.dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: this.stats.dataBytes }, weight_map: weightMap }, null, 2));
    }
  }

  abort(): void {
    for (const w of this.writers) w.abort();
    for (const a of this.appenders.values()) a.w.abort();
  }
}

/** What `format` means for the writer: dense, or every decoder linear weight compressed for `structure`. */
export function compressOptions(c: LlamaConfig, format: CheckpointFormat, structure: string): CompressOptions | undefined {
  if (format === 'dense') return undefined;
  const names = new Set<string>();
  for (let i = 0; i < c.numLayers; i++) for (const n of LINEAR_NAMES) names.add(linearTensorName(i, n));
  return { format: sparseFormatFor(structure), structure, names };
}

/**
 * The sparsity structure of a checkpoint's decoder linears: config.json's when it is a compressed-tensors one,
 * else '2:4' when every group of 4 holds at least 2 zeros (llm-compressor's tensor_follows_mask_structure),
 * else 'unstructured'. Reads every linear weight of a plain checkpoint.
 */
export function sparsityStructureOf(ckpt: Checkpoint): string {
  if (ckpt.sparsity && ckpt.sparsity.format !== 'dense') return ckpt.sparsity.structure;
  const c = ckpt.config;
  for (let i = 0; i < c.numLayers; i++) {
    for (const n of LINEAR_NAMES) {
      if (linearShape(c, n)[1] % 4 !== 0) return 'unstructured';
      const w = ckpt.read(linearTensorName(i, n));
      for (let g = 0; g < w.length; g += 4) {
        if ((w[g] === 0 ? 1 : 0) + (w[g + 1] === 0 ? 1 : 0) + (w[g + 2] === 0 ? 1 : 0) + (w[g + 3] === 0 ? 1 : 0) < 2) return 'unstructured';
      }
    }
  }
  return '2:4';
}

/** Bytes of a written checkpoint, dense vs as stored (report.json's `storage`). */
export interface StorageReport {
  format: CheckpointFormat;
  sparseFormat: SparseFormat | null;
  safetensorsBytes: number; // the .safetensors files on disk, headers included
  dataBytes: number; // their data areas
  denseDataBytes: number; // the data areas of the same checkpoint written dense
  linearBytes: number; // the decoder linear weights as stored (all their parts)
  linearDenseBytes: number; // the same weights dense
  linearRatio: number; // linearBytes / linearDenseBytes
}

/** The storage report of a finished writer whose files are in `dir`. */
export function storageReport(w: CheckpointWriter, c: LlamaConfig, dir: string, dtype: DType, compress?: CompressOptions): StorageReport {
  const es = dtypeSize(dtype);
  const denseData = expectedTensors(c).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * es, 0);
  let linearDense = 0;
  for (let i = 0; i < c.numLayers; i++) for (const n of LINEAR_NAMES) linearDense += linearShape(c, n)[0] * linearShape(c, n)[1] * es;
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const linearBytes = compress ? w.stats.compressedBytes : linearDense;
  return {
    format: compress ? 'compressed' : 'dense',
    sparseFormat: compress?.format ?? null,
    safetensorsBytes: files.reduce((a, f) => a + statSync(join(dir, f)).size, 0),
    dataBytes: w.stats.dataBytes,
    denseDataBytes: denseData,
    linearBytes,
    linearDenseBytes: linearDense,
    linearRatio: linearBytes / linearDense,
  };
}
