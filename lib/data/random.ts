/**
 * A bit-for-bit port of the parts of CPython's `random` module the calibration sampler uses (docs/methods.md
 * section 1): MT19937 seeded through `init_by_array` with the 32-bit words of an integer seed, `getrandbits`,
 * `_randbelow` (rejection sampling on `bit_length(n)` bits), `randint` and `random()`.
 * Same seed, same calls, same numbers as `import random; random.seed(seed)` in Python 3.
 */
import { ConfigError } from '../errors.js';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_POW_32 = 4294967296;

/** Number of bits needed to write the non-negative integer `n` (Python's `int.bit_length`). */
function bitLength(n: number): number {
  let bits = 0;
  while (n >= TWO_POW_32) {
    n = Math.floor(n / TWO_POW_32);
    bits += 32;
  }
  return bits + (n === 0 ? 0 : 32 - Math.clz32(n));
}

/** The 32-bit words of |seed|, least significant first, as CPython's `random_seed` builds the key ([0] for 0). */
export function seedKey(seed: number | bigint): number[] {
  let n: bigint;
  if (typeof seed === 'bigint') {
    n = seed < 0n ? -seed : seed;
  } else {
    if (!Number.isSafeInteger(seed)) {
      throw new ConfigError(
        `random seed ${seed}: expected an integer within +-(2^53-1) (pass a bigint for larger seeds)`,
      );
    }
    n = BigInt(Math.abs(seed));
  }
  const key: number[] = [];
  do {
    key.push(Number(n & 0xffffffffn));
    n >>= 32n;
  } while (n > 0n);
  return key;
}

/** Python's `random.Random` restricted to integer seeds, `getrandbits`, `randbelow`, `randint` and `random`. */
export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private mti = N + 1;

  /** Seeded as `random.Random(seed)`. */
  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /** `random.seed(seed)` for an integer seed (CPython uses |seed|). */
  seed(seed: number | bigint): void {
    this.initByArray(seedKey(seed));
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i) >>> 0;
    }
    this.mti = N;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
    this.mti = N;
  }

  /** The next raw 32-bit output of MT19937 (CPython's `genrand_uint32`). */
  genrandUint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      let kk = 0;
      for (; kk < N - M; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + (M - N)]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      const y = (mt[N - 1]! & UPPER_MASK) | (mt[0]! & LOWER_MASK);
      mt[N - 1] = mt[M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      this.mti = 0;
    }
    let y = mt[this.mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * `random.getrandbits(k)` for 0 <= k <= 53 (a JS number holds the result exactly). As CPython: one 32-bit draw
   * per word, least significant word first, the last word keeping its top `k mod 32` bits.
   */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 53) {
      throw new ConfigError(`getrandbits(${k}): expected an integer number of bits in [0, 53]`);
    }
    if (k <= 32) return k === 0 ? 0 : this.genrandUint32() >>> (32 - k);
    const low = this.genrandUint32();
    const high = this.genrandUint32() >>> (64 - k);
    return high * TWO_POW_32 + low;
  }

  /** `random._randbelow(n)`: uniform in [0, n) by rejection on `bit_length(n)` bits; n a positive safe integer. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new ConfigError(`randbelow(${n}): expected a positive integer up to 2^53-1`);
    }
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `random.randint(a, b)`: uniform in [a, b], both ends included; `a + randbelow(b - a + 1)`. */
  randint(a: number, b: number): number {
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) {
      throw new ConfigError(`randint(${a}, ${b}): expected safe integers`);
    }
    if (b < a) throw new ConfigError(`randint(${a}, ${b}): empty range (b < a)`);
    return a + this.randbelow(b - a + 1);
  }

  /** `random.random()`: a float in [0, 1) with 53 random bits, built from two 32-bit draws as CPython does. */
  random(): number {
    const a = this.genrandUint32() >>> 5;
    const b = this.genrandUint32() >>> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
  }
}
