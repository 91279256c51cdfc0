/** A small deterministic PRNG (mulberry32) with Box-Muller normals, for seeded test fixtures. */

// Math functions as module constants: global lookups are slow inside jest's vm context (~10x in hot loops).
const { PI, cos, imul, log, sin, sqrt } = Math;

export class TinyRandom {
  private state: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = sqrt(-2 * log(this.uniform()));
    const a = 2 * PI * this.uniform();
    this.spare = r * sin(a);
    return r * cos(a);
  }

  /** `n` values of N(mean, std^2) as float32. */
  normals(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

