/**
 * safetensors I/O: lazy, validated reading tensor by tensor straight from the file bytes, and writing (single file
 * or shards with an index) in F32, F16 or BF16. Format: u64 little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data area.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { CheckpointError } from '../errors.js';
import { decodeStream, decodeStreamTransposed, encodeStream, transposeFloat32 } from './dtype-convert.js';

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

/** Read exactly `buf.length` bytes of `fd` at `pos`; `what` names the data in the error when the file ends early. */
function readExact(fd: number, buf: Uint8Array, pos: number, what: () => string): void {
  let done = 0;
  while (done < buf.length) {
    const got = readSync(fd, buf, done, buf.length - done, pos + done);
    if (got === 0) throw new CheckpointError(what());
    done += got;
  }
}

/** Write all of `buf` to `fd` at `pos`. */
function writeExact(fd: number, buf: Uint8Array, pos: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
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

/** An open safetensors file: header parsed and validated, tensors read on demand. Call `close()` when done. */
export class SafetensorsFile {
  readonly entries: Map<string, TensorEntry>;
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly dataStart: number;

  private constructor(
    readonly path: string,
    fd: number,
    dataStart: number,
    entries: Map<string, TensorEntry>,
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.dataStart = dataStart;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Open and validate `path` (header bounds, dtypes, shapes, offsets inside the data area, no overlaps). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new CheckpointError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new CheckpointError(`${path}: file is ${size} bytes, too short for a safetensors header`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(size - 8)) {
        throw new CheckpointError(
          `${path}: header length ${headerLen} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`,
        );
      }
      if (headerLen > BigInt(MAX_HEADER)) {
        throw new CheckpointError(`${path}: header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit`);
      }
      const n = Number(headerLen);
      const headerBuf = Buffer.alloc(n);
      readSync(fd, headerBuf, 0, n, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (e) {
        throw new CheckpointError(`${path}: header is not valid JSON (${(e as Error).message})`);
      }
      if (!header || typeof header !== 'object' || Array.isArray(header)) {
        throw new CheckpointError(`${path}: header is not a JSON object`);
      }
      const dataSize = size - 8 - n;
      const { entries, metadata } = validateHeader(path, header as Record<string, unknown>, dataSize);
      return new SafetensorsFile(path, fd, 8 + n, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Raw bytes of a tensor (a fresh copy). */
  readBytes(name: string): Uint8Array {
    const e = this.entry(name);
    const buf = new Uint8Array(e.end - e.begin);
    readExact(this.openFd(), buf, this.dataStart + e.begin, () => this.pastEnd(name));
    return buf;
  }

  /**
   * One tensor as float32, into `out` when given (its length must be the values read). `rows` reads only rows
   * start .. start + count - 1 of a 2-D tensor (a linear stacked in a fused tensor), straight from their bytes.
   */
  readFloat32(name: string, out?: Float32Array, rows?: RowRange): Float32Array {
    const e = this.entry(name);
    const where = `${this.path}: tensor '${name}'`;
    if (e.dtype !== 'F32' && e.dtype !== 'BF16' && e.dtype !== 'F16') throw notFloat(where, e.dtype);
    const es = DTYPE_SIZE[e.dtype]!;
    const { begin, bytes } = rowBytes(e, es, where, rows);
    const fd = this.openFd();
    const n = bytes / es;
    if (out && out.length !== n) throw new CheckpointError(`${where}: holds ${n} values, the array given has ${out.length}`);
    const dst = out ?? new Float32Array(n);
    const pastEnd = (): string => this.pastEnd(name);
    if (e.dtype === 'F32') {
      readExact(fd, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), this.dataStart + begin, pastEnd);
      return dst;
    }
    decodeStream(e.dtype, bytes, dst, (buf, off) => readExact(fd, buf, this.dataStart + begin + off, pastEnd));
    return dst;
  }

  /**
   * A 2-D tensor [rows, cols] (or its `rows` range) as float32 transposed ([cols, rows] row-major), into `out` when
   * given (as for readFloat32): the transpose happens chunk by chunk as the data are decoded, instead of as a
   * separate pass.
   */
  readFloat32Transposed(name: string, out?: Float32Array, range?: RowRange): Float32Array {
    const e = this.entry(name);
    const where = `${this.path}: tensor '${name}'`;
    if (e.shape.length !== 2) throw new CheckpointError(`${where}: has shape [${e.shape.join(', ')}]; only a 2-D tensor can be read transposed`);
    const cols = e.shape[1]!;
    const rows = range ? range.count : e.shape[0]!;
    if (out && out.length !== rows * cols) throw new CheckpointError(`${where}: holds ${rows * cols} values, the array given has ${out.length}`);
    if (e.dtype !== 'BF16' && e.dtype !== 'F16') return transposeFloat32(this.readFloat32(name, undefined, range), rows, cols, out);
    const { begin } = rowBytes(e, 2, where, range);
    const dst = out ?? new Float32Array(rows * cols);
    const fd = this.openFd();
    decodeStreamTransposed(e.dtype, rows, cols, dst, (buf, off) => readExact(fd, buf, this.dataStart + begin + off, () => this.pastEnd(name)));
    return dst;
  }

  private entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`${this.path}: no tensor '${name}'`);
    return e;
  }

  private openFd(): number {
    if (this.fd === null) throw new CheckpointError(`${this.path}: file already closed`);
    return this.fd;
  }

  private pastEnd(name: string): string {
    return `${this.path}: tensor '${name}' ends past the end of the file`;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
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

/**
 * Writes one safetensors file whose tensor list is known in advance: the header goes first, then each tensor is
 * written at its offset as it becomes available (any order), so a pipeline can stream blocks out one at a time.
 * `finish()` checks every planned tensor was written.
 */
export class SafetensorsWriter {
  private fd: number | null;
  private readonly offsets = new Map<string, { begin: number; end: number; dtype: DType }>();
  private readonly written = new Set<string>();
  private readonly dataStart: number;
  readonly totalBytes: number;

  constructor(
    readonly path: string,
    plan: PlannedTensor[],
    metadata: Record<string, string> = { format: 'pt' },
    options: { reopen?: boolean } = {}, // reopen: continue a file written earlier (same plan) without truncating it
  ) {
    const header: Record<string, unknown> = { __metadata__: metadata };
    let pos = 0;
    for (const t of plan) {
      if (this.offsets.has(t.name)) throw new CheckpointError(`${path}: tensor '${t.name}' planned twice`);
      const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + bytes] };
      this.offsets.set(t.name, { begin: pos, end: pos + bytes, dtype: t.dtype });
      pos += bytes;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8); // data area aligned to 8 bytes
    const headerBuf = Buffer.from(json, 'utf8');
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));
    this.fd = openSync(path, options.reopen ? 'r+' : 'w');
    writeSync(this.fd, lenBuf, 0, 8, 0);
    writeSync(this.fd, headerBuf, 0, headerBuf.length, 8);
    this.dataStart = 8 + headerBuf.length;
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
    if (this.fd === null) throw new CheckpointError(`${this.path}: writer already finished`);
    const size = dtypeSize(o.dtype);
    if (values.length * size !== o.end - o.begin) {
      throw new CheckpointError(
        `${this.path}: tensor '${name}' got ${values.length} values, its planned shape needs ${(o.end - o.begin) / size}`,
      );
    }
    const at = this.dataStart + o.begin;
    if (o.dtype === 'F32') {
      writeExact(this.fd, new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
    } else {
      const fd = this.fd;
      encodeStream(values, o.dtype, (bytes, off) => writeExact(fd, bytes, at + off));
    }
    this.written.add(name);
  }

  /** Count tensors as written by an earlier process (a resumed run). */
  markWritten(names: Iterable<string>): void {
    for (const n of names) if (this.offsets.has(n)) this.written.add(n);
  }

  /** Flush the file's data to the disk. */
  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  /** Close the file; throws if a planned tensor was never written. */
  finish(): void {
    const missing = [...this.offsets.keys()].filter((n) => !this.written.has(n));
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    if (missing.length) {
      throw new CheckpointError(`${this.path}: ${missing.length} planned tensors never written (first: '${missing[0]}')`);
    }
  }

  /** Close without checking (used when a run is abandoned). */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
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
  private readonly parts = new Map<number, { path: string; fd: number; size: number; entries: { t: RawTensor; begin: number; end: number }[] }>();
  private readonly names = new Set<string>();
  private closed = false;
  dataBytes = 0;

  constructor(
    readonly path: string,
    private readonly metadata: Record<string, string> = { format: 'pt' },
  ) {}

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
      const p = `${this.path}.part${es}`;
      part = { path: p, fd: openSync(p, 'w+'), size: 0, entries: [] };
      this.parts.set(es, part);
    }
    let done = 0;
    while (done < t.bytes.length) done += writeSync(part.fd, t.bytes, done, t.bytes.length - done, part.size + done);
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
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
    const headerBuf = Buffer.from(json, 'utf8');
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));
    const out = openSync(this.path, 'w');
    try {
      writeSync(out, lenBuf, 0, 8, 0);
      writeSync(out, headerBuf, 0, headerBuf.length, 8);
      let at = 8 + headerBuf.length;
      const buf = Buffer.alloc(16 << 20);
      for (const { part, e } of order) {
        for (let off = e.begin; off < e.end; ) {
          const got = readSync(part.fd, buf, 0, Math.min(buf.length, e.end - off), off);
          if (got === 0) throw new CheckpointError(`${part.path}: shorter than the ${part.size} bytes written`);
          let w = 0;
          while (w < got) w += writeSync(out, buf, w, got - w, at + w);
          at += got;
          off += got;
        }
      }
    } finally {
      closeSync(out);
      this.abort();
    }
  }

  /** Close and delete the temporary parts (the final file, if any, is left to the caller's staged folder). */
  abort(): void {
    this.closed = true;
    for (const part of this.parts.values()) {
      try {
        closeSync(part.fd);
      } catch {
        // already closed
      }
      rmSync(part.path, { force: true });
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
