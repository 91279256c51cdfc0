/**
 * SHA-256 for the platform layers: WebCrypto's `crypto.subtle.digest` (browsers, and Node >= 20), and FIPS 180-4
 * in plain TypeScript for where WebCrypto is missing: `crypto.subtle` exists only in secure contexts, so a page
 * served over plain http from a host other than localhost has none. Same digests as node:crypto
 * (test/platform/sha256.test.ts).
 */

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));

/** Process one 64-byte block at `off` of `b` into the state `h`. */
function compress(h: Uint32Array, w: Uint32Array, b: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) w[i] = (b[off + 4 * i]! << 24) | (b[off + 4 * i + 1]! << 16) | (b[off + 4 * i + 2]! << 8) | b[off + 4 * i + 3]!;
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!;
    const y = w[i - 2]!;
    w[i] = w[i - 16]! + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + w[i - 7]! + (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10));
  }
  let [a, bb, c, d, e, f, g, hh] = h as unknown as number[];
  for (let i = 0; i < 64; i++) {
    const t1 = (hh! + (rotr(e!, 6) ^ rotr(e!, 11) ^ rotr(e!, 25)) + ((e! & f!) ^ (~e! & g!)) + K[i]! + w[i]!) | 0;
    const t2 = ((rotr(a!, 2) ^ rotr(a!, 13) ^ rotr(a!, 22)) + ((a! & bb!) ^ (a! & c!) ^ (bb! & c!))) | 0;
    hh = g;
    g = f;
    f = e;
    e = (d! + t1) | 0;
    d = c;
    c = bb;
    bb = a;
    a = (t1 + t2) | 0;
  }
  const add = [a!, bb!, c!, d!, e!, f!, g!, hh!];
  for (let i = 0; i < 8; i++) h[i] = (h[i]! + add[i]!) | 0;
}

/** SHA-256 of the concatenated parts (strings as UTF-8), 32 bytes. */
export function portableSha256(parts: readonly (Uint8Array | string)[]): Uint8Array {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const block = new Uint8Array(64);
  let fill = 0;
  let total = 0;
  const encoder = new TextEncoder();
  for (const part of parts) {
    const bytes = typeof part === 'string' ? encoder.encode(part) : part;
    total += bytes.length;
    let i = 0;
    if (fill > 0) {
      const n = Math.min(64 - fill, bytes.length);
      block.set(bytes.subarray(0, n), fill);
      fill += n;
      i = n;
      if (fill < 64) continue;
      compress(h, w, block, 0);
      fill = 0;
    }
    for (; i + 64 <= bytes.length; i += 64) compress(h, w, bytes, i);
    block.set(bytes.subarray(i), 0);
    fill = bytes.length - i;
  }
  block.fill(0, fill);
  block[fill] = 0x80;
  if (fill >= 56) {
    compress(h, w, block, 0);
    block.fill(0);
  }
  const bits = total * 8;
  new DataView(block.buffer).setUint32(56, Math.floor(bits / 0x100000000));
  new DataView(block.buffer).setUint32(60, bits >>> 0);
  compress(h, w, block, 0);
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) view.setUint32(4 * i, h[i]!);
  return out;
}

/** The part of WebCrypto's SubtleCrypto used here. */
interface SubtleDigest {
  digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>;
}

/** The runtime's `crypto.subtle`, or null where there is none (not a secure context). */
export function webCrypto(): SubtleDigest | null {
  return (globalThis as unknown as { crypto?: { subtle?: SubtleDigest } }).crypto?.subtle ?? null;
}

/** The parts as one array (strings as UTF-8); a single byte part is used as it is. */
function concatParts(parts: readonly (Uint8Array | string)[]): Uint8Array {
  const encoder = new TextEncoder();
  const bytes = parts.map((p) => (typeof p === 'string' ? encoder.encode(p) : p));
  if (bytes.length === 1) return bytes[0]!;
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** SHA-256 of the concatenated parts through WebCrypto; throws where the runtime has no `crypto.subtle`. */
export async function webCryptoSha256(parts: readonly (Uint8Array | string)[]): Promise<Uint8Array> {
  const subtle = webCrypto();
  if (!subtle) throw new Error('crypto.subtle is not available here (WebCrypto needs a secure context: https or localhost)');
  return new Uint8Array(await subtle.digest('SHA-256', concatParts(parts)));
}

/** SHA-256 of the concatenated parts: WebCrypto where the runtime has it, else the portable function above. */
export async function defaultSha256(parts: readonly (Uint8Array | string)[]): Promise<Uint8Array> {
  return webCrypto() ? webCryptoSha256(parts) : portableSha256(parts);
}
