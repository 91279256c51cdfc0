import { decodeStream, decodeStreamTransposed, encodeStream, transposeFloat32, useSimd, CHUNK_VALUES, type Dtype16 } from '../../lib/model/dtype-convert.js';
import { bitByBitBf16, bitByBitHalf, halfToFloat32Bits } from '../helpers/dtype-reference.js';

/**
 * The conversion kernels (WebAssembly SIMD and plain JS) against plain bit-by-bit references: every 16-bit pattern
 * decoded, a spread of 2^32 float32 patterns plus the edge cases encoded, over lengths that exercise the vector
 * loop, its scalar tail and the chunk boundaries. scripts/check-dtype-convert.ts runs all 2^32 encodings.
 */

afterAll(() => useSimd(true));

function decodeAll(dtype: Dtype16, bytes: Uint8Array): Int32Array {
  const out = new Float32Array(bytes.length >> 1);
  decodeStream(dtype, out.length * 2, out, (buf, off) => buf.set(bytes.subarray(off, off + buf.length)));
  return new Int32Array(out.buffer);
}

function encodeAll(dtype: Dtype16, values: Float32Array): Uint16Array {
  const out = new Uint8Array(values.length * 2);
  let next = 0;
  encodeStream(values, dtype, (b, off) => {
    expect(off).toBe(next); // chunks arrive in order, back to back
    out.set(b, off);
    next = off + b.length;
  });
  expect(next).toBe(out.length);
  return new Uint16Array(out.buffer);
}

/** Float32 bit patterns: edge cases, then a stride through all 2^32 that hits every exponent and many mantissas. */
function patterns(): Int32Array {
  const edges: number[] = [];
  for (const sign of [0, 0x80000000]) {
    for (const b of [
      0, 1, 0x7fffff, 0x800000, 0x7f7fffff, 0x7f800000, 0x7f800001, 0x7fbfffff, 0x7fc00000, 0x7fffffff,
      0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, // BF16 ties and neighbours
      0x3f801000, 0x3f803000, 0x3f800fff, 0x3f801001, // F16 ties and neighbours
      0x477fe000, 0x477fefff, 0x477ff000, 0x47800000, // 65504, just below / at the overflow tie, 65536
      0x38800000, 0x387fffff, 0x33800000, 0x33000000, 0x33000001, 0x32ffffff, 0x33c00000, 0x34400000, // F16 subnormal edges
    ]) edges.push((b | sign) | 0);
  }
  const stride = 4099; // prime: about 1.05M patterns, every exponent, varied low bits
  const n = Math.floor(2 ** 32 / stride);
  const out = new Int32Array(edges.length + n);
  out.set(edges);
  for (let i = 0; i < n; i++) out[edges.length + i] = (i * stride) | 0;
  return out;
}

describe.each([true, false])('dtype conversion (WebAssembly SIMD: %s)', (simd) => {
  beforeAll(() => {
    const active = useSimd(simd);
    if (simd) expect(active).toBe(true); // Node 20 has WebAssembly SIMD: the kernel must compile, not fall back
    else expect(active).toBe(false);
  });

  test.each(['BF16', 'F16'] as const)('%s: every 16-bit pattern decodes exactly (NaN -> 0x7fc00000)', (dtype) => {
    const n = 65536 + 7; // not a multiple of 8: the scalar tail runs too
    const bytes = new Uint8Array(n * 2);
    for (let h = 0; h < n; h++) {
      bytes[2 * h] = h & 0xff;
      bytes[2 * h + 1] = (h >> 8) & 0xff;
    }
    const got = decodeAll(dtype, bytes);
    for (let h = 0; h < n; h++) {
      const want = dtype === 'BF16' ? (h & 0xffff) << 16 : halfToFloat32Bits(h & 0xffff);
      if (got[h] !== want) throw new Error(`${dtype} 0x${h.toString(16)}: got 0x${(got[h]! >>> 0).toString(16)}, want 0x${(want >>> 0).toString(16)}`);
    }
  });

  test.each(['BF16', 'F16'] as const)('%s: encoding rounds to nearest even like the bit-by-bit reference', (dtype) => {
    const bits = patterns();
    const got = encodeAll(dtype, new Float32Array(bits.buffer));
    const ref = dtype === 'BF16' ? bitByBitBf16 : bitByBitHalf;
    for (let i = 0; i < bits.length; i++) {
      const want = ref(bits[i]!);
      if (got[i] !== want) throw new Error(`${dtype} 0x${(bits[i]! >>> 0).toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
    }
  });

  test.each([
    [3, 5], // one chunk
    [(CHUNK_VALUES >> 6) + 13, 64], // several chunks of whole rows, a partial last one
    [9, CHUNK_VALUES >> 2], // rows too long for 8 per chunk: decoded whole, then transposed
  ])('decoding [%i, %i] transposed equals decoding then transposing', (rows, cols) => {
    for (const dtype of ['BF16', 'F16'] as const) {
      const bytes = new Uint8Array(rows * cols * 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
      const flat = new Float32Array(decodeAll(dtype, bytes).buffer);
      const t = new Float32Array(rows * cols);
      decodeStreamTransposed(dtype, rows, cols, t, (buf, off) => buf.set(bytes.subarray(off, off + buf.length)));
      const want = new Int32Array(rows * cols);
      const fb = new Int32Array(flat.buffer);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) want[c * rows + r] = fb[r * cols + c]!;
      expect(Buffer.compare(Buffer.from(new Int32Array(t.buffer).buffer), Buffer.from(want.buffer))).toBe(0);
      expect(Buffer.compare(Buffer.from(transposeFloat32(flat, rows, cols).buffer), Buffer.from(want.buffer))).toBe(0);
    }
  });

  test('chunk boundaries: lengths around CHUNK_VALUES round-trip exactly', () => {
    for (const n of [1, 7, 8, 9, CHUNK_VALUES - 1, CHUNK_VALUES, CHUNK_VALUES + 9]) {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = (((i * 2654435761) >>> 0) / 2 ** 32 - 0.5) * 8;
      for (const dtype of ['BF16', 'F16'] as const) {
        const enc = encodeAll(dtype, v);
        const dec = new Float32Array(decodeAll(dtype, new Uint8Array(enc.buffer)).buffer);
        const again = encodeAll(dtype, dec); // decode is exact: re-encoding gives the same bits
        expect(Buffer.compare(Buffer.from(again.buffer), Buffer.from(enc.buffer))).toBe(0);
        const ref = dtype === 'BF16' ? bitByBitBf16 : bitByBitHalf;
        const bits = new Int32Array(v.buffer);
        for (const i of [0, n >> 1, n - 1]) expect(enc[i]).toBe(ref(bits[i]!));
      }
    }
  });
});
