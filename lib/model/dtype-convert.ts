/**
 * float32 <-> BF16 / F16 conversion of tensor data, the hot loop of every block's load and save (bench/prune.ts
 * part 3 measures it against cat, dd and memcpy). Two implementations that give identical bits:
 * - a WebAssembly SIMD kernel (8 values per instruction sequence; hand-assembled below, no toolchain), used when the
 *   runtime supports SIMD (Node >= 16.4); data pass through one 4 MB wasm memory in cache-sized chunks;
 * - plain JS on integer views (the fallback, the tails of chunks, and the reference the kernel is tested against).
 * Rounding is round-to-nearest-even (torch's `.to(bfloat16)` / `.half()`); NaN stays NaN (quiet), F16 overflow gives
 * infinity. Decoding is exact; an F16 NaN decodes to the canonical float32 NaN 0x7fc00000.
 */

// ---------------------------------------------------------------------------------------------------------------
// plain JS

/** IEEE half -> float32 value. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Every IEEE half as float32 bits (built on first use): F16 decoding in JS is one table lookup per value. */
let halfTable: Int32Array | null = null;
function halfBitsTable(): Int32Array {
  if (!halfTable) {
    const f = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f[h] = halfToFloat(h);
    halfTable = new Int32Array(f.buffer);
  }
  return halfTable;
}

/** float32 bits (signed 32-bit integer) -> bfloat16 in the low 16 bits; round to nearest even, NaN kept quiet. */
export function bf16Of(b: number): number {
  return (b & 0x7fffffff) > 0x7f800000 ? (b >> 16) | 0x40 : (b + 0x7fff + ((b >> 16) & 1)) >> 16;
}

const f32Scratch = new Float32Array(1);
const i32Scratch = new Int32Array(f32Scratch.buffer);

/**
 * float32 -> IEEE half, round to nearest even: F. Giesen's float_to_half_fast3_rtne. `b` is the value's bits (signed
 * 32-bit), `x` the value. Identical to a bit-by-bit rounding for all 2^32 inputs (scripts/check-dtype-convert.ts):
 * normal results round by an integer add, subnormal ones by a float add of 0.5 (exact in float64 for every input
 * that does not round to zero, then rounded once by the float32 store).
 */
export function halfOf(b: number, x: number): number {
  const a = b & 0x7fffffff;
  let o: number;
  if (a >= 0x47800000) o = a > 0x7f800000 ? 0x7e00 : 0x7c00; // overflow -> inf; NaN -> quiet NaN
  else if (a < 0x38800000) {
    f32Scratch[0] = Math.abs(x) + 0.5; // subnormal or zero: the add aligns the 10 mantissa bits and rounds
    o = i32Scratch[0]! - 0x3f000000;
  } else o = (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13; // rebias the exponent, round to nearest even
  return o | ((b >>> 16) & 0x8000);
}

/** JS: `n` 16-bit values from `src[from..]` -> float32 bits at `dst[at..]`. */
function decodeJs(src: Uint16Array, from: number, n: number, dtype: Dtype16, dst: Int32Array, at: number): void {
  if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) dst[at + i] = src[from + i]! << 16;
    return;
  }
  const table = halfBitsTable();
  for (let i = 0; i < n; i++) dst[at + i] = table[src[from + i]!]!;
}

/** JS: `n` float32 values from `values[from..]` -> 16-bit words at `dst[at..]`. */
function encodeJs(values: Float32Array, from: number, n: number, dtype: Dtype16, dst: Uint16Array, at: number): void {
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) dst[at + i] = bf16Of(bits[from + i]!);
  } else {
    for (let i = 0; i < n; i++) dst[at + i] = halfOf(bits[from + i]!, values[from + i]!);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// WebAssembly SIMD kernels, assembled from the opcodes of the WebAssembly 2.0 spec (section 5.4, SIMD: 0xfd prefix
// + LEB128 opcode). Each function is (src: i32, dst: i32, srcBytes: i32) -> (), loops over whole 16-byte vectors
// of its input; srcBytes must be a multiple of its step (the JS side does the tail).

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n ? b | 0x80 : b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const op = {
  get: (i: number) => [0x20, i], // local.get
  set: (i: number) => [0x21, i], // local.set
  tee: (i: number) => [0x22, i], // local.tee
  i32: (v: number) => [0x41, ...sleb(v)], // i32.const
  load: (offset: number) => [...simd(0x00), 4, ...uleb(offset)], // v128.load align=16
  store: (offset: number) => [...simd(0x0b), 4, ...uleb(offset)], // v128.store align=16
  splat: (v: number) => [0x41, ...sleb(v), ...simd(0x11)], // i32.const v; i32x4.splat
  and: simd(0x4e), // v128.and
  or: simd(0x50), // v128.or
  bitselect: simd(0x52), // v128.bitselect(a, b, mask): a where mask bits are 1, else b
  eq: simd(0x37), // i32x4.eq
  ltU: simd(0x3a), // i32x4.lt_u
  gtU: simd(0x3c), // i32x4.gt_u
  geU: simd(0x40), // i32x4.ge_u
  narrowU: simd(0x86), // i16x8.narrow_i32x4_u (saturating; our values are already in [0, 65535])
  extLoU: simd(0xa9), // i32x4.extend_low_i16x8_u
  extHiU: simd(0xaa), // i32x4.extend_high_i16x8_u
  shl: simd(0xab), // i32x4.shl (shift count from an i32)
  shrU: simd(0xad), // i32x4.shr_u
  add: simd(0xae), // i32x4.add
  sub: simd(0xb1), // i32x4.sub
  fadd: simd(0xe4), // f32x4.add
  fsub: simd(0xe5), // f32x4.sub
};
const F32 = (x: number): number => {
  f32Scratch[0] = x;
  return i32Scratch[0]!;
};

/**
 * `for (end = src + srcBytes; src < end; src += srcStep, dst += dstStep) body`. Locals: 0 src, 1 dst, 2 srcBytes,
 * 3 end (i32), 4 and 5 scratch vectors (v128).
 */
function loop(srcStep: number, dstStep: number, body: number[]): number[] {
  return [
    ...op.get(0), ...op.get(2), 0x6a, ...op.set(3), // end = src + srcBytes (i32.add)
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...op.get(0), ...op.get(3), 0x4f, 0x0d, 1, // br_if 1 (exit) when src >= end (i32.ge_u)
    ...body,
    ...op.get(0), ...op.i32(srcStep), 0x6a, ...op.set(0),
    ...op.get(1), ...op.i32(dstStep), 0x6a, ...op.set(1),
    0x0c, 0, 0x0b, 0x0b, // br 0 (next iteration), end loop, end block
  ];
}

/** BF16 -> float32: widen 8 halves to 2 x 4 words, shift into the high half. */
const bf16ToF32 = loop(16, 32, [
  ...op.get(1), ...op.get(0), ...op.load(0), ...op.tee(4), ...op.extLoU, ...op.i32(16), ...op.shl, ...op.store(0),
  ...op.get(1), ...op.get(4), ...op.extHiU, ...op.i32(16), ...op.shl, ...op.store(16),
]);

/**
 * F16 bits widened in vector `k` -> float32 bits: F. Giesen's half_to_float with the magic subtract (no float
 * operation sees a subnormal input: those take a slow microcode path on x86). NaN becomes the canonical
 * 0x7fc00000, as the JS table holds. Local 5 = m = h & 0x7fff; the exponent/mantissa tests are on m.
 */
const halfVec = (k: number): number[] => [
  ...op.get(k), ...op.splat(0x7fff), ...op.and, ...op.set(5),
  ...op.splat(0x7fc00000), // NaN result (selected last)
  // zero/subnormal: ((m << 13) + (113 << 23)) as float - 2^-14 renormalizes
  ...op.get(5), ...op.i32(13), ...op.shl, ...op.splat(0x38800000), ...op.add, ...op.splat(F32(2 ** -14)), ...op.fsub,
  // normal: (m << 13) + (112 << 23); inf: + (112 << 23) more, exponent all ones
  ...op.get(5), ...op.i32(13), ...op.shl, ...op.splat(0x38000000), ...op.add,
  ...op.get(5), ...op.splat(0x7c00), ...op.geU, ...op.splat(0x38000000), ...op.and, ...op.add,
  ...op.get(5), ...op.splat(0x0400), ...op.ltU, // exponent 0?
  ...op.bitselect,
  ...op.get(k), ...op.i32(16), ...op.shl, ...op.splat(0x80000000 | 0), ...op.and, ...op.or, // sign
  ...op.get(5), ...op.splat(0x7c00), ...op.gtU, // NaN?
  ...op.bitselect,
];
const f16ToF32 = loop(16, 32, [
  ...op.get(1), ...op.get(0), ...op.load(0), ...op.extLoU, ...op.set(4), ...halfVec(4), ...op.store(0),
  ...op.get(1), ...op.get(0), ...op.load(0), ...op.extHiU, ...op.set(4), ...halfVec(4), ...op.store(16),
]);

/** float32 bits in vector `k` -> bfloat16 in the low 16 bits of each lane (as bf16Of). */
const bf16Vec = (k: number): number[] => [
  ...op.get(k), ...op.i32(16), ...op.shrU, ...op.splat(0x40), ...op.or, // NaN: top half, quiet bit set
  ...op.get(k), ...op.splat(0x7fff), ...op.add, ...op.get(k), ...op.i32(16), ...op.shrU, ...op.splat(1), ...op.and, ...op.add,
  ...op.i32(16), ...op.shrU, // (b + 0x7fff + lsb) >>> 16: round to nearest even
  ...op.get(k), ...op.splat(0x7fffffff), ...op.and, ...op.splat(0x7f800000), ...op.gtU, // NaN?
  ...op.bitselect,
];

/** float32 bits in vector `k` -> IEEE half in the low 16 bits of each lane (as halfOf). */
const halfOfVec = (k: number): number[] => [
  ...op.splat(0x7e00), ...op.splat(0x7c00), // inf/NaN/overflow results
  ...op.get(k), ...op.splat(0x7fffffff), ...op.and, ...op.tee(5), ...op.splat(0x7f800000), ...op.gtU,
  ...op.bitselect,
  ...op.get(5), ...op.splat(F32(0.5)), ...op.fadd, ...op.splat(0x3f000000), ...op.sub, // subnormal or zero
  // normal: (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >>> 13
  ...op.get(5), ...op.splat(-0x38000000 + 0xfff), ...op.add, ...op.get(5), ...op.i32(13), ...op.shrU, ...op.splat(1), ...op.and,
  ...op.add, ...op.i32(13), ...op.shrU,
  ...op.get(5), ...op.splat(0x38800000), ...op.ltU,
  ...op.bitselect,
  ...op.get(5), ...op.splat(0x47800000), ...op.geU,
  ...op.bitselect,
  ...op.get(k), ...op.i32(16), ...op.shrU, ...op.splat(0x8000), ...op.and, ...op.or, // sign
];

const encodeBody = (vec: (k: number) => number[]): number[] =>
  loop(32, 16, [
    ...op.get(1),
    ...op.get(0), ...op.load(0), ...op.set(4), ...vec(4),
    ...op.get(0), ...op.load(16), ...op.set(4), ...vec(4),
    ...op.narrowU, ...op.store(0),
  ]);

const MEMORY_PAGES = 64; // 4 MB: input at 0 (up to 2 MB), output at 2 MB (up to 2 MB)
const IN = 0;
const OUT = 2 << 20;
/** Values per chunk: 512K, i.e. 1 MB of 16-bit or 2 MB of float32 data. */
export const CHUNK_VALUES = 1 << 19;

function moduleBytes(): Uint8Array {
  const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];
  const name = (s: string): number[] => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
  const locals = [2, 1, 0x7f, 2, 0x7b]; // 1 x i32, 2 x v128
  const body = (code: number[]): number[] => {
    const b = [...locals, ...code, 0x0b];
    return [...uleb(b.length), ...b];
  };
  const funcs: [string, number[]][] = [
    ['bf16_f32', bf16ToF32],
    ['f16_f32', f16ToF32],
    ['f32_bf16', encodeBody(bf16Vec)],
    ['f32_f16', encodeBody(halfOfVec)],
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type 0: (i32, i32, i32) -> ()
    ...section(3, [funcs.length, ...funcs.map(() => 0)]), // every function has type 0
    ...section(5, [1, 0x00, ...uleb(MEMORY_PAGES)]), // one memory, min pages, no max
    ...section(7, [funcs.length + 1, ...name('mem'), 2, 0, ...funcs.flatMap(([n], i) => [...name(n), 0, i])]), // exports
    ...section(10, [funcs.length, ...funcs.flatMap(([, code]) => body(code))]), // code
  ]);
}

type Kernel = (src: number, dst: number, srcBytes: number) => void;
interface Kernels {
  bf16_f32: Kernel;
  f16_f32: Kernel;
  f32_bf16: Kernel;
  f32_f16: Kernel;
  mem: { buffer: ArrayBuffer };
}

/** The part of the WebAssembly global used here (the project's TypeScript lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

let kernels: Kernels | null | undefined;
let simdEnabled = true;

/** The SIMD kernels, or null where WebAssembly SIMD is unavailable (or switched off by `useSimd(false)`). */
function simdKernels(): Kernels | null {
  if (!simdEnabled) return null;
  if (kernels === undefined) {
    try {
      const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
      kernels = wasm ? (new wasm.Instance(new wasm.Module(moduleBytes())).exports as Kernels) : null;
    } catch {
      kernels = null; // no SIMD: the JS loops do all the work
    }
  }
  return kernels;
}

/** Use the WebAssembly SIMD kernels when available (default) or only plain JS (tests, benchmarks); returns whether SIMD is in use. */
export function useSimd(on: boolean): boolean {
  simdEnabled = on;
  return simdKernels() !== null;
}

export type Dtype16 = 'BF16' | 'F16';

// ---------------------------------------------------------------------------------------------------------------
// streaming conversion: the callers' I/O goes straight into / out of the chunk buffers

/**
 * Decode `bytes` bytes of 16-bit data chunk by chunk (`chunkValues` values at most, a multiple of 8 unless it is the
 * whole data): `fill(buf, offset)` must fill `buf` with the data's bytes [offset, offset + buf.length) (e.g. readSync
 * from a file); `take(bits, first)` receives each chunk's float32 bits (valid only during the call) and the index of
 * its first value. No buffer of the data's size is allocated.
 */
function decodeChunks(
  dtype: Dtype16,
  bytes: number,
  chunkValues: number,
  fill: (buf: Uint8Array, offset: number) => void,
  take: (bits: Int32Array, first: number) => void,
): void {
  const k = simdKernels();
  const buf = k ? new Uint8Array(k.mem.buffer, IN, CHUNK_VALUES * 2) : jsChunk();
  const words = new Uint16Array(buf.buffer, buf.byteOffset, CHUNK_VALUES);
  const out = k ? new Int32Array(k.mem.buffer, OUT, CHUNK_VALUES) : jsDecoded();
  for (let off = 0; off < bytes; off += chunkValues * 2) {
    const len = Math.min(chunkValues * 2, bytes - off);
    fill(buf.subarray(0, len), off);
    const n = len >> 1;
    const done = k ? n & ~7 : 0;
    if (k) (dtype === 'BF16' ? k.bf16_f32 : k.f16_f32)(IN, OUT, done * 2);
    decodeJs(words, done, n - done, dtype, out, done);
    take(out.subarray(0, n), off >> 1);
  }
}

/** Decode `bytes` bytes of 16-bit data into `dst` (float32); `fill` as for decodeChunks. */
export function decodeStream(dtype: Dtype16, bytes: number, dst: Float32Array, fill: (buf: Uint8Array, offset: number) => void): void {
  const d = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
  decodeChunks(dtype, bytes, CHUNK_VALUES, fill, (bits, first) => d.set(bits, first));
}

/**
 * Decode a row-major [rows, cols] matrix of 16-bit data into `dst` transposed ([cols, rows], float32), chunk by
 * chunk of whole rows: each chunk's columns are written as runs of consecutive values, so the transpose costs about
 * what the copy does (no separate transpose pass over the whole matrix). `fill` as for decodeChunks.
 */
export function decodeStreamTransposed(
  dtype: Dtype16,
  rows: number,
  cols: number,
  dst: Float32Array,
  fill: (buf: Uint8Array, offset: number) => void,
): void {
  const d = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
  const rowsPerChunk = Math.floor(CHUNK_VALUES / cols);
  if (rowsPerChunk < 8) {
    // rows longer than a chunk / 8: decode whole, then transpose (a one-off allocation; no LLaMA linear is this wide)
    const whole = new Float32Array(rows * cols);
    decodeStream(dtype, rows * cols * 2, whole, fill);
    transposeFloat32(whole, rows, cols, dst);
    return;
  }
  const chunk = rowsPerChunk - (rowsPerChunk % 8); // whole rows, a multiple of 8 values
  decodeChunks(dtype, rows * cols * 2, chunk * cols, fill, (bits, first) =>
    transposeBits(bits, first / cols, bits.length / cols, cols, d, rows),
  );
}

/**
 * Decode whole rows of a 16-bit [rows, cols] matrix, `src` holding rows [firstRow, firstRow + src.length / (2 cols))
 * and at most CHUNK_VALUES values, into their transposed places in `dst` ([cols, rows] float32): the async readers'
 * step (one chunk per read).
 */
export function decodeTransposedRows(dtype: Dtype16, src: Uint8Array, firstRow: number, cols: number, dst: Float32Array, rows: number): void {
  if (src.length > CHUNK_VALUES * 2) throw new RangeError(`decodeTransposedRows: ${src.length / 2} values, at most ${CHUNK_VALUES} at a time`);
  const d = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
  decodeChunks(dtype, src.length, src.length / 2, (buf) => buf.set(src), (bits) => transposeBits(bits, firstRow, bits.length / cols, cols, d, rows));
}

/** Transpose float32 `values` [rows, cols] into `dst` [cols, rows] (a new array when not given). */
export function transposeFloat32(values: Float32Array, rows: number, cols: number, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(rows * cols);
  const bits = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);
  transposeBits(bits(values), 0, rows, cols, bits(dst), rows);
  return dst;
}

/**
 * Rows [r0, r0 + nr) of a [*, cols] matrix held in `src` (from its row r0) -> columns of the [cols, rows] `dst`,
 * 8 rows at a time: 8 strided reads, 8 consecutive writes (about twice as fast as one row at a time here).
 */
function transposeBits(src: Int32Array, r0: number, nr: number, cols: number, dst: Int32Array, rows: number): void {
  let rb = 0;
  for (; rb + 8 <= nr; rb += 8) {
    const s = rb * cols;
    for (let c = 0; c < cols; c++) {
      const o = c * rows + r0 + rb;
      const i = s + c;
      dst[o] = src[i]!;
      dst[o + 1] = src[i + cols]!;
      dst[o + 2] = src[i + 2 * cols]!;
      dst[o + 3] = src[i + 3 * cols]!;
      dst[o + 4] = src[i + 4 * cols]!;
      dst[o + 5] = src[i + 5 * cols]!;
      dst[o + 6] = src[i + 6 * cols]!;
      dst[o + 7] = src[i + 7 * cols]!;
    }
  }
  for (; rb < nr; rb++) for (let c = 0; c < cols; c++) dst[c * rows + r0 + rb] = src[rb * cols + c]!;
}

/**
 * Encode float32 `values` as 16-bit data chunk by chunk: `sink(bytes, offset)` receives each chunk's bytes (valid
 * only during the call; e.g. writeSync to a file) and its offset in the encoded data.
 */
export function encodeStream(values: Float32Array, dtype: Dtype16, sink: (bytes: Uint8Array, offset: number) => void): void {
  const k = simdKernels();
  const input = k ? new Float32Array(k.mem.buffer, IN, CHUNK_VALUES) : null;
  const out = k ? new Uint16Array(k.mem.buffer, OUT, CHUNK_VALUES) : new Uint16Array(jsChunk().buffer, 0, CHUNK_VALUES);
  for (let i = 0; i < values.length; i += CHUNK_VALUES) {
    const n = Math.min(CHUNK_VALUES, values.length - i);
    let done = 0;
    if (k && input) {
      done = n & ~7;
      input.set(values.subarray(i, i + done));
      (dtype === 'BF16' ? k.f32_bf16 : k.f32_f16)(IN, OUT, done * 4);
    }
    encodeJs(values, i + done, n - done, dtype, out, done);
    sink(new Uint8Array(out.buffer, out.byteOffset, n * 2), i * 2);
  }
}

/** The JS path's chunk buffers (1 MB of 16-bit data, 2 MB decoded), reused by every call (all of it is synchronous). */
let jsBuffer: Uint8Array | null = null;
let jsDecodedBuffer: Int32Array | null = null;
function jsChunk(): Uint8Array {
  jsBuffer ??= new Uint8Array(CHUNK_VALUES * 2);
  return jsBuffer;
}
function jsDecoded(): Int32Array {
  jsDecodedBuffer ??= new Int32Array(CHUNK_VALUES);
  return jsDecodedBuffer;
}
