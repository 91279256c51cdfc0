/**
 * Bit-by-bit references for float32 <-> BF16/F16 (the package's original scalar code, kept as the reference the
 * fast kernels of lib/model/dtype-convert.ts are checked against): round to nearest even, NaN kept quiet.
 */

/** float32 bits -> BF16: keep the top 16 bits, round to nearest even; a NaN keeps its top bits with the quiet bit. */
export function bitByBitBf16(bits: number): number {
  const b = bits >>> 0;
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits -> IEEE half, round to nearest even, field by field. */
export function bitByBitHalf(bits: number): number {
  const b = bits >>> 0;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

const f = new Float32Array(1);
const i = new Int32Array(f.buffer);

/** IEEE half -> float32 bits, from the value (a NaN is stored as the canonical 0x7fc00000). */
export function halfToFloat32Bits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  f[0] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  return i[0]!;
}
