/**
 * safetensors I/O: lazy, validated reading tensor by tensor from a random-access byte source (a file, a Blob, an
 * HTTP URL: lib/platform/bytes.ts), block by block, and writing (single file or shards with an index) in F32, F16 or
 * BF16 to byte sinks. Format: u64 little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data area.
 */
import { CheckpointError } from '../errors.js';
import { platform } from '../platform/index.js';
import type { ByteSink, ByteSource, SinkFolder } from '../platform/bytes.js';
import { CHUNK_VALUES, decodeStream, decodeStreamTransposed, decodeTransposedRows, encodeStream, transposeFloat32 } from './dtype-convert.js';

export type DType = 'F32' | 'F16' | 'BF16';
export const DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];
const DTYPE_SIZE: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};
const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit

/** Rows start .. start + count - 1 of a 2-D tensor. */
export interface RowRange {
  start: number;
  count: number;
}

/** The data offset and byte count of a tensor, or of a row range of a 2-D one (validated against its shape). */
function rowBytes(e: TensorEntry, es: number, where: string, rows?: RowRange): { begin: number; bytes: number } {
  if (!rows) return { begin: e.begin, bytes: e.end - e.begin };
  const [n, cols] = e.shape as [number, number];
  if (e.shape.length !== 2 || rows.start < 0 || rows.count < 0 || rows.start + rows.count > n) {
    throw new CheckpointError(`${where}: rows ${rows.start}..${rows.start + rows.count - 1} are outside its shape [${e.shape.join(', ')}]`);
  }
  return { begin: e.begin + rows.start * cols * es, bytes: rows.count * cols * es };
}

/** One tensor's header entry. Offsets are relative to the start of the data area. */
export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

// ---------------------------------------------------------------------------------------------------------------
// dtype conversion (float32 compute; files may be F16 or BF16): lib/model/dtype-convert.ts

/** Decode raw little-endian bytes of a tensor to float32. */
export function decodeToFloat32(bytes: Uint8Array, dtype: string, where: string): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  if (dtype !== 'BF16' && dtype !== 'F16') throw notFloat(where, dtype);
  const out = new Float32Array(bytes.byteLength >> 1);
  decodeStream(dtype, out.length * 2, out, (buf, off) => buf.set(bytes.subarray(off, off + buf.length)));
  return out;
}

function notFloat(where: string, dtype: string): CheckpointError {
  return new CheckpointError(`${where}: dtype ${dtype} cannot be read as floating point (supported: F32, F16, BF16)`);
}

/** Encode float32 values in `dtype` (little-endian). BF16 and F16 round to nearest even. */
export function encodeFromFloat32(values: Float32Array, dtype: DType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint8Array(values.length * 2);
  encodeStream(values, dtype, (bytes, off) => out.set(bytes, off));
  return out;
}

export function dtypeSize(dtype: DType): number {
  return DTYPE_SIZE[dtype]!;
}

/** Bytes per element of any safetensors dtype name (I64, U8, ...); undefined when unknown. */
export function elementSize(dtype: string): number | undefined {
  return DTYPE_SIZE[dtype];
}

// ---------------------------------------------------------------------------------------------------------------
// reading

/** Bytes [offset, offset + length) of a source, exactly; `what` names the data when the source ends early or fails. */
async function readAt(src: ByteSource, offset: number, length: number, what: () => string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await src.read(offset, length);
  } catch (e) {
    throw new CheckpointError(`${what()}: reading bytes ${offset}-${offset + length} failed (${(e as Error).message})`);
  }
  if (bytes.length !== length) throw new CheckpointError(`${what()}: the source ends after ${bytes.length} of ${length} bytes`);
  return bytes;
}

/** Fill `into` from the source at `offset` synchronously (a source with `readSync` only). */
function readAtSync(src: ByteSource, offset: number, into: Uint8Array, what: () => string): void {
  if (!src.readSync) throw new CheckpointError(`${src.name}: this source reads asynchronously only; use the *Async readers`);
  if (src.readSync(offset, into) !== into.length) throw new CheckpointError(what());
}

/** The header length in the first 8 bytes, checked against the source's size. */
function headerLength(name: string, size: number, first: Uint8Array): number {
  const headerLen = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(size - 8)) {
    throw new CheckpointError(
      `${name}: header length ${headerLen} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`,
    );
  }
  if (headerLen > BigInt(MAX_HEADER)) throw new CheckpointError(`${name}: header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit`);
  return Number(headerLen);
}

/** Parse and validate the header's JSON bytes. */
function parseHeader(name: string, bytes: Uint8Array, dataSize: number): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new CheckpointError(`${name}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new CheckpointError(`${name}: header is not a JSON object`);
  return validateHeader(name, header as Record<string, unknown>, dataSize);
}

function tooShort(name: string, size: number): CheckpointError {
  return new CheckpointError(`${name}: file is ${size} bytes, too short for a safetensors header`);
}

/**
 * An open safetensors file: header parsed and validated, tensors read on demand from its byte source. The
 * synchronous readers need a source that reads synchronously (a Node file, memory); the *Async ones read any source
 * (a Blob, an HTTP URL) one chunk at a time. Call `close()` when done.
 */
export class SafetensorsFile {
  private closed = false;

  private constructor(
    readonly source: ByteSource,
    private readonly dataStart: number,
    readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  /** What names the file in messages (its path, URL or name). */
  get path(): string {
    return this.source.name;
  }

  /** Open and validate the file at `path` (header bounds, dtypes, shapes, offsets inside the data area, no overlaps). */
  static open(path: string): SafetensorsFile {
    const src = platform().openFile(path);
    try {
      return SafetensorsFile.openSourceSync(src);
    } catch (e) {
      src.close?.();
      throw e;
    }
  }

  /** Open and validate a source that reads synchronously. */
  static openSourceSync(src: ByteSource): SafetensorsFile {
    if (src.size < 8) throw tooShort(src.name, src.size);
    const first = new Uint8Array(8);
    readAtSync(src, 0, first, () => `${src.name}: header length unreadable`);
    const n = headerLength(src.name, src.size, first);
    const headerBytes = new Uint8Array(n);
    readAtSync(src, 8, headerBytes, () => `${src.name}: header ends past the end of the file`);
    const { entries, metadata } = parseHeader(src.name, headerBytes, src.size - 8 - n);
    return new SafetensorsFile(src, 8 + n, entries, metadata);
  }

  /** Open and validate any source (reads the 8-byte length, then the header; no tensor data). */
  static async openSource(src: ByteSource): Promise<SafetensorsFile> {
    if (src.size < 8) throw tooShort(src.name, src.size);
    const n = headerLength(src.name, src.size, await readAt(src, 0, 8, () => `${src.name}: header length`));
    const headerBytes = await readAt(src, 8, n, () => `${src.name}: header`);
    const { entries, metadata } = parseHeader(src.name, headerBytes, src.size - 8 - n);
    return new SafetensorsFile(src, 8 + n, entries, metadata);
  }

  /** Raw bytes of a tensor (a fresh copy). */
  readBytes(name: string): Uint8Array {
    const e = this.entry(name);
    const buf = new Uint8Array(e.end - e.begin);
    readAtSync(this.live(), this.dataStart + e.begin, buf, () => this.pastEnd(name));
    return buf;
  }

  async readBytesAsync(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    return readAt(this.live(), this.dataStart + e.begin, e.end - e.begin, () => `${this.path}: tensor '${name}'`);
  }

  /**
   * One tensor as float32, into `out` when given (its length must be the values read). `rows` reads only rows
   * start .. start + count - 1 of a 2-D tensor (a linear stacked in a fused tensor), straight from their bytes.
   */
  readFloat32(name: string, out?: Float32Array, rows?: RowRange): Float32Array {
    const { e, dst, begin, bytes } = this.floatTarget(name, out, rows);
    const src = this.live();
    const pastEnd = (): string => this.pastEnd(name);
    if (e.dtype === 'F32') {
      readAtSync(src, this.dataStart + begin, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), pastEnd);
      return dst;
    }
    decodeStream(e.dtype as 'BF16' | 'F16', bytes, dst, (buf, off) => readAtSync(src, this.dataStart + begin + off, buf, pastEnd));
    return dst;
  }

  /** readFloat32 from any source: one chunk (CHUNK_VALUES values) per read, decoded as it arrives. */
  async readFloat32Async(name: string, out?: Float32Array, rows?: RowRange): Promise<Float32Array> {
    const { e, dst, begin } = this.floatTarget(name, out, rows);
    const size = DTYPE_SIZE[e.dtype]!;
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    for (let first = 0; first < dst.length; first += CHUNK_VALUES) {
      const n = Math.min(CHUNK_VALUES, dst.length - first);
      const chunk = await readAt(this.live(), this.dataStart + begin + first * size, n * size, () => `${this.path}: tensor '${name}'`);
      if (e.dtype === 'F32') bytes.set(chunk, first * 4);
      else decodeStream(e.dtype as 'BF16' | 'F16', chunk.length, dst.subarray(first, first + n), (buf, off) => buf.set(chunk.subarray(off, off + buf.length)));
    }
    return dst;
  }

  /**
   * A 2-D tensor [rows, cols] (or its `rows` range) as float32 transposed ([cols, rows] row-major), into `out` when
   * given (as for readFloat32): the transpose happens chunk by chunk as the data are decoded, instead of as a
   * separate pass.
   */
  readFloat32Transposed(name: string, out?: Float32Array, range?: RowRange): Float32Array {
    const { e, rows, cols, begin } = this.matrix(name, out, range);
    if (rows * cols === 0) return out ?? new Float32Array(0); // [rows, 0] or [0, cols]: nothing to walk, however many rows
    if (e.dtype !== 'BF16' && e.dtype !== 'F16') return transposeFloat32(this.readFloat32(name, undefined, range), rows, cols, out);
    const dst = out ?? new Float32Array(rows * cols);
    const src = this.live();
    decodeStreamTransposed(e.dtype, rows, cols, dst, (buf, off) => readAtSync(src, this.dataStart + begin + off, buf, () => this.pastEnd(name)));
    return dst;
  }

  /** readFloat32Transposed from any source: whole rows per read (about CHUNK_VALUES values), transposed as they arrive. */
  async readFloat32TransposedAsync(name: string, out?: Float32Array, range?: RowRange): Promise<Float32Array> {
    const { e, rows, cols, begin } = this.matrix(name, out, range);
    if (rows * cols === 0) return out ?? new Float32Array(0); // as readFloat32Transposed
    const step = Math.floor(CHUNK_VALUES / Math.max(1, cols));
    // F32, or rows too long for whole rows per chunk (no LLaMA linear is): read whole, then transpose
    if ((e.dtype !== 'BF16' && e.dtype !== 'F16') || step < 8) return transposeFloat32(await this.readFloat32Async(name, undefined, range), rows, cols, out);
    const dst = out ?? new Float32Array(rows * cols);
    for (let r = 0; r < rows; r += step) {
      const n = Math.min(step, rows - r);
      const chunk = await readAt(this.live(), this.dataStart + begin + r * cols * 2, n * cols * 2, () => `${this.path}: tensor '${name}'`);
      decodeTransposedRows(e.dtype, chunk, r, cols, dst, rows);
    }
    return dst;
  }

  private floatTarget(name: string, out?: Float32Array, rows?: RowRange): { e: TensorEntry; dst: Float32Array; begin: number; bytes: number } {
    const e = this.entry(name);
    const where = `${this.path}: tensor '${name}'`;
    if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw notFloat(where, e.dtype);
    const es = DTYPE_SIZE[e.dtype]!;
    const { begin, bytes } = rowBytes(e, es, where, rows);
    const n = bytes / es;
    if (out && out.length !== n) throw new CheckpointError(`${where}: holds ${n} values, the array given has ${out.length}`);
    return { e, dst: out ?? new Float32Array(n), begin, bytes };
  }

  private matrix(name: string, out?: Float32Array, range?: RowRange): { e: TensorEntry; rows: number; cols: number; begin: number } {
    const e = this.entry(name);
    const where = `${this.path}: tensor '${name}'`;
    if (e.shape.length !== 2) throw new CheckpointError(`${where}: has shape [${e.shape.join(', ')}]; only a 2-D tensor can be read transposed`);
    const cols = e.shape[1]!;
    const rows = range ? range.count : e.shape[0]!;
    if (out && out.length !== rows * cols) throw new CheckpointError(`${where}: holds ${rows * cols} values, the array given has ${out.length}`);
    if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw notFloat(where, e.dtype);
    const { begin } = rowBytes(e, DTYPE_SIZE[e.dtype]!, where, range);
    return { e, rows, cols, begin };
  }

  private entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`${this.path}: no tensor '${name}'`);
    return e;
  }

  private live(): ByteSource {
    if (this.closed) throw new CheckpointError(`${this.path}: file already closed`);
    return this.source;
  }

  private pastEnd(name: string): string {
    return `${this.path}: tensor '${name}' ends past the end of the file`;
  }

  close(): void {
    if (!this.closed) this.source.close?.();
    this.closed = true;
  }
}

function validateHeader(
  path: string,
  header: Record<string, unknown>,
  dataSize: number,
): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        metadata = Object.fromEntries(
          Object.entries(value as Record<string, unknown>).filter((kv): kv is [string, string] => typeof kv[1] === 'string'),
        );
      }
      continue;
    }
    const where = `${path}: tensor '${name}'`;
    if (!value || typeof value !== 'object') throw new CheckpointError(`${where}: header entry is not an object`);
    const v = value as Record<string, unknown>;
    const dtype = v['dtype'];
    if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) {
      throw new CheckpointError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    const shape = v['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new CheckpointError(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offs = v['data_offsets'];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new CheckpointError(`${where}: data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataSize) {
      throw new CheckpointError(
        `${where}: data_offsets [${begin}, ${end}] fall outside the data area of ${dataSize} bytes (truncated file?)`,
      );
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * DTYPE_SIZE[dtype]!;
    if (end - begin !== expected) {
      throw new CheckpointError(
        `${where}: holds ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    entries.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries.values()].filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw new CheckpointError(
        `${path}: tensors '${prev.name}' [${prev.begin}, ${prev.end}) and '${cur.name}' [${cur.begin}, ${cur.end}) overlap`,
      );
    }
  }
  return { entries, metadata };
}

// ---------------------------------------------------------------------------------------------------------------
// writing

/** A tensor to be written: its name, shape and the dtype it is stored in. */
export interface PlannedTensor {
  name: string;
  shape: number[];
  dtype: DType;
}

/** The 8-byte length and the JSON header, padded so the data area starts at a multiple of 8. */
function headerBytes(header: Record<string, unknown>): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((json.length + 8) % 8)) % 8;
  const out = new Uint8Array(8 + json.length + pad).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  out.set(json, 8);
  return out;
}

/** A sink for `target`: a path through the platform's files, or the sink given. */
function sinkOf(target: string | ByteSink, keep = false): ByteSink {
  return typeof target === 'string' ? platform().createFile(target, { keep }) : target;
}

/**
 * Writes one safetensors file whose tensor list is known in advance: the header goes first, then each tensor is
 * written at its offset as it becomes available (any order), so a pipeline can stream blocks out one at a time.
 * The file is a path or any byte sink (lib/platform/bytes.ts). `finish()` checks every planned tensor was written.
 */
export class SafetensorsWriter {
  private sink: ByteSink | null;
  private readonly offsets = new Map<string, { begin: number; end: number; dtype: DType }>();
  private readonly written = new Set<string>();
  private readonly dataStart: number;
  private closing: void | Promise<void> = undefined;
  readonly totalBytes: number;
  readonly path: string;

  constructor(
    target: string | ByteSink,
    plan: PlannedTensor[],
    metadata: Record<string, string> = { format: 'pt' },
    options: { reopen?: boolean } = {}, // reopen: continue a file written earlier (same plan) without truncating it
  ) {
    this.path = typeof target === 'string' ? target : target.name;
    const header: Record<string, unknown> = { __metadata__: metadata };
    let pos = 0;
    for (const t of plan) {
      if (this.offsets.has(t.name)) throw new CheckpointError(`${this.path}: tensor '${t.name}' planned twice`);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes] };
      this.offsets.set(t.name, { begin: pos, end: pos + bytes, dtype: t.dtype });
      pos += bytes;
    }
    const head = headerBytes(header);
    this.sink = sinkOf(target, options.reopen);
    this.sink.write(0, head);
    this.dataStart = head.length;
    this.totalBytes = pos;
  }

  has(name: string): boolean {
    return this.offsets.has(name);
  }

  /**
   * Write a planned tensor's float32 values (converted to its planned dtype): F32 straight from the array, 16-bit
   * dtypes encoded chunk by chunk into one reused buffer (lib/model/dtype-convert.ts).
   */
  write(name: string, values: Float32Array): void {
    const o = this.offsets.get(name);
    if (!o) throw new CheckpointError(`${this.path}: tensor '${name}' is not in the planned header`);
    const sink = this.sink;
    if (sink === null) throw new CheckpointError(`${this.path}: writer already finished`);
    const size = dtypeSize(o.dtype);
    if (values.length * size !== o.end - o.begin) {
      throw new CheckpointError(
        `${this.path}: tensor '${name}' got ${values.length} values, its planned shape needs ${(o.end - o.begin) / size}`,
      );
    }
    const at = this.dataStart + o.begin;
    if (o.dtype === 'F32') sink.write(at, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    else encodeStream(values, o.dtype, (bytes, off) => sink.write(at + off, bytes));
    this.written.add(name);
  }

  /** Count tensors as written by an earlier process (a resumed run). */
  markWritten(names: Iterable<string>): void {
    for (const n of names) if (this.offsets.has(n)) this.written.add(n);
  }

  /** Flush the file's data to the disk. */
  sync(): void {
    this.sink?.sync?.();
  }

  /** Close the file; throws if a planned tensor was never written. */
  finish(): void {
    const missing = [...this.offsets.keys()].filter((n) => !this.written.has(n));
    this.abort();
    if (missing.length) {
      throw new CheckpointError(`${this.path}: ${missing.length} planned tensors never written (first: '${missing[0]}')`);
    }
  }

  /** Resolves once the sink has stored everything (sinks with asynchronous storage: a directory handle). */
  async finished(): Promise<void> {
    await this.closing;
  }

  /** Close without checking (used when a run is abandoned). */
  abort(): void {
    if (this.sink !== null) this.closing = this.sink.close();
    this.sink = null;
  }
}

/** A tensor of any dtype given as its raw little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: string; // safetensors dtype name: F32, BF16, I64, U8, ...
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Writes one safetensors file whose tensor sizes are not known in advance (compressed weights): tensors are
 * appended to one temporary file per element size as they arrive, and `finish()` writes the header, then the data
 * with 8-byte elements first, then 4-, 2- and 1-byte ones (as the reference serializer orders by alignment), so
 * every tensor starts at a multiple of its element size and the data area has no gaps.
 */
export class AppendingSafetensorsWriter {
  private readonly parts = new Map<number, { name: string; sink: ByteSink; size: number; entries: { t: RawTensor; begin: number; end: number }[] }>();
  private readonly names = new Set<string>();
  private readonly folder: SinkFolder;
  private readonly file: string;
  private closed = false;
  private closing: void | Promise<void> = undefined;
  dataBytes = 0;
  readonly path: string;

  /** `target`: a path (files through the platform), or a file name in a sink folder (its parts are files there too). */
  constructor(
    target: string | { folder: SinkFolder; name: string },
    private readonly metadata: Record<string, string> = { format: 'pt' },
  ) {
    if (typeof target === 'string') {
      this.folder = { create: (n) => platform().createFile(n), remove: (n) => platform().fs.rmSync(n, { force: true }) };
      this.file = target;
      this.path = target;
    } else {
      this.folder = target.folder;
      this.file = target.name;
      this.path = target.name;
    }
  }

  write(t: RawTensor): void {
    if (this.closed) throw new CheckpointError(`${this.path}: writer already finished`);
    if (this.names.has(t.name)) throw new CheckpointError(`${this.path}: tensor '${t.name}' written twice`);
    const es = elementSize(t.dtype);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (es === undefined || numel * es !== t.bytes.length) {
      throw new CheckpointError(`${this.path}: tensor '${t.name}' ${t.dtype} ${JSON.stringify(t.shape)} got ${t.bytes.length} bytes`);
    }
    let part = this.parts.get(es);
    if (!part) {
      const name = `${this.file}.part${es}`;
      part = { name, sink: this.folder.create(name), size: 0, entries: [] };
      if (!part.sink.readSync) throw new CheckpointError(`${part.sink.name}: a compressed checkpoint is assembled from parts read back; this sink cannot be read (write to memory, then copy)`);
      this.parts.set(es, part);
    }
    part.sink.write(part.size, t.bytes);
    part.entries.push({ t: { ...t, bytes: new Uint8Array(0) }, begin: part.size, end: part.size + t.bytes.length });
    part.size += t.bytes.length;
    this.names.add(t.name);
  }

  /**
   * Write the final file and remove the temporary parts. Tensors are ordered by decreasing element size, then by
   * name (as the reference serializer does), whatever order they arrived in.
   */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    const sizes = [...this.parts.keys()].sort((a, b) => b - a);
    const order = sizes.flatMap((es) => {
      const part = this.parts.get(es)!;
      return [...part.entries].sort((a, b) => (a.t.name < b.t.name ? -1 : a.t.name > b.t.name ? 1 : 0)).map((e) => ({ part, e }));
    });
    const header: Record<string, unknown> = { __metadata__: this.metadata };
    let pos = 0;
    for (const { e } of order) {
      header[e.t.name] = { dtype: e.t.dtype, shape: e.t.shape, data_offsets: [pos, pos + e.end - e.begin] };
      pos += e.end - e.begin;
    }
    this.dataBytes = pos;
    const head = headerBytes(header);
    const out = this.folder.create(this.file);
    try {
      out.write(0, head);
      let at = head.length;
      const buf = new Uint8Array(16 << 20);
      for (const { part, e } of order) {
        for (let off = e.begin; off < e.end; ) {
          const got = part.sink.readSync!(off, buf.subarray(0, Math.min(buf.length, e.end - off)));
          if (got === 0) throw new CheckpointError(`${part.name}: shorter than the ${part.size} bytes written`);
          out.write(at, buf.subarray(0, got));
          at += got;
          off += got;
        }
      }
    } finally {
      this.closing = out.close();
      this.abort();
    }
  }

  /** Resolves once the sink has stored the final file (sinks with asynchronous storage). */
  async finished(): Promise<void> {
    await this.closing;
  }

  /** Close and delete the temporary parts (the final file, if any, is left to the caller's staged folder). */
  abort(): void {
    this.closed = true;
    for (const part of this.parts.values()) {
      try {
        void part.sink.close();
      } catch {
        // already closed
      }
      this.folder.remove(part.name);
    }
    this.parts.clear();
  }
}

/** Write float32 tensors, all at hand, to one safetensors file (closed also when a write throws). */
export function writeFloat32Safetensors(path: string, tensors: { name: string; shape: number[]; values: Float32Array }[]): void {
  const w = new SafetensorsWriter(path, tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const })));
  try {
    for (const t of tensors) w.write(t.name, t.values);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}
