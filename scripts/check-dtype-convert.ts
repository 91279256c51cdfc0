/**
 * Exhaustive check of the float32 -> BF16/F16 encoders (WebAssembly SIMD and plain JS) against the bit-by-bit
 * reference, over all 2^32 float32 bit patterns, and of the decoders over all 2^16 patterns. A few minutes of CPU:
 *   npx tsx scripts/check-dtype-convert.ts
 * Prints the mismatch count per path and dtype; exits 1 if any.
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { decodeStream, encodeStream, useSimd, type Dtype16 } from '../lib/model/dtype-convert.js';
import { bitByBitBf16, bitByBitHalf, halfToFloat32Bits } from '../test/helpers/dtype-reference.js';

const M = 1 << 24;
const bits = new Int32Array(M);
const values = new Float32Array(bits.buffer);
const want = new Uint16Array(M);
const got = new Uint16Array(M);
const gotBytes = new Uint8Array(got.buffer);
let failures = 0;
for (const dtype of ['BF16', 'F16'] as Dtype16[]) {
  const ref = dtype === 'BF16' ? bitByBitBf16 : bitByBitHalf;
  const bad = { simd: 0, js: 0 };
  for (let base = 0; base < 2 ** 32; base += M) {
    for (let k = 0; k < M; k++) {
      bits[k] = (base + k) | 0;
      want[k] = ref(bits[k]!);
    }
    for (const path of ['simd', 'js'] as const) {
      if (useSimd(path === 'simd') !== (path === 'simd')) throw new Error('WebAssembly SIMD is not available here');
      encodeStream(values, dtype, (b, off) => gotBytes.set(b, off));
      for (let k = 0; k < M; k++) {
        if (got[k] !== want[k] && bad[path]++ < 3) {
          console.error(`${path} ${dtype} 0x${(base + k).toString(16)}: 0x${got[k]!.toString(16)}, want 0x${want[k]!.toString(16)}`);
        }
      }
    }
  }
  const halves = new Uint8Array(2 * 65536);
  for (let h = 0; h < 65536; h++) new Uint16Array(halves.buffer)[h] = h;
  const dec = { simd: 0, js: 0 };
  for (const path of ['simd', 'js'] as const) {
    useSimd(path === 'simd');
    const out = new Float32Array(65536);
    decodeStream(dtype, halves.length, out, (buf, off) => buf.set(halves.subarray(off, off + buf.length)));
    const o = new Int32Array(out.buffer);
    for (let h = 0; h < 65536; h++) if (o[h] !== (dtype === 'BF16' ? h << 16 : halfToFloat32Bits(h))) dec[path]++;
  }
  console.log(`${dtype}: encode mismatches over 2^32 inputs: simd ${bad.simd}, js ${bad.js}; decode mismatches over 2^16: simd ${dec.simd}, js ${dec.js}`);
  failures += bad.simd + bad.js + dec.simd + dec.js;
}
useSimd(true);
process.exit(failures ? 1 : 0);
