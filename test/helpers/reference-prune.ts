/**
 * Straightforward reference implementations of REFERENCE.md section 3, for tests only: plain loops over typed
 * arrays, written from the text (and the reference Python code), never calling lib/prune. Matrices are row-major.
 */

/** Deterministic random numbers (mulberry32 + Box-Muller). */
export class TestRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  normals(count: number, scale = 1): Float32Array {
    const a = new Float32Array(count);
    for (let i = 0; i < count; i++) a[i] = this.normal() * scale;
    return a;
  }
}

export type RefStructure = { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };

const at = (a: ArrayLike<number>, i: number): number => a[i] as number;

/** Wanda's scaler_row: after each sample, s = s * n/(n+1) + ||x_j||^2/(n+1), in float32 (Math.fround). */
export function refWandaScaler(samples: Float32Array[], seq: number, inF: number): Float32Array {
  const f = Math.fround;
  const s = new Float32Array(inF);
  samples.forEach((x, n) => {
    for (let j = 0; j < inF; j++) {
      let ss = 0;
      for (let t = 0; t < seq; t++) ss += at(x, t * inF + j) ** 2;
      s[j] = f(f(at(s, j) * f(n / (n + 1))) + f(f(ss) / (n + 1)));
    }
  });
  return s;
}

/** SparseGPT's H = (2 / nsamples) * sum over all rows x x^T, in float64. */
export function refHessian(samples: Float32Array[], seq: number, inF: number): Float64Array {
  const h = new Float64Array(inF * inF);
  for (const x of samples) {
    for (let t = 0; t < seq; t++) {
      for (let i = 0; i < inF; i++) {
        const xi = at(x, t * inF + i);
        for (let j = 0; j < inF; j++) h[i * inF + j] = at(h, i * inF + j) + xi * at(x, t * inF + j);
      }
    }
  }
  for (let i = 0; i < h.length; i++) h[i] = (at(h, i) * 2) / samples.length;
  return h;
}

/** Ascending argsort of a[from..from+len) by (value, index): a stable sort. */
function stableArgsort(a: ArrayLike<number>, from: number, len: number): number[] {
  const idx = Array.from({ length: len }, (_, i) => i);
  idx.sort((p, q) => at(a, from + p) - at(a, from + q) || p - q);
  return idx;
}

/** Per row, the k smallest (stable: lower index first among ties) are removed (1). */
export function refRowMask(metric: ArrayLike<number>, rows: number, cols: number, k: number): Uint8Array {
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const order = stableArgsort(metric, r * cols, cols);
    for (let i = 0; i < k; i++) mask[r * cols + at(order, i)] = 1;
  }
  return mask;
}

/** Per row and group of M columns from a multiple of M: the N smallest (lower index first among ties). */
export function refNmMask(metric: ArrayLike<number>, rows: number, cols: number, n: number, m: number): Uint8Array {
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const order = stableArgsort(metric, r * cols + g, m);
      for (let i = 0; i < n; i++) mask[r * cols + g + at(order, i)] = 1;
    }
  }
  return mask;
}

/** Magnitude: unstructured threshold sorted(|W|)[floor(numel p)] with <=, or N:M per row on |W|. */
export function refMagnitudeMask(w: Float32Array, rows: number, cols: number, s: RefStructure): Uint8Array {
  const metric = Float32Array.from(w, Math.abs);
  if (s.kind === 'nm') return refNmMask(metric, rows, cols, s.n, s.m);
  const sorted = Float32Array.from(metric).sort();
  const thresh = at(sorted, Math.floor(metric.length * s.sparsity));
  return Uint8Array.from(metric, (v) => (v <= thresh ? 1 : 0));
}

/** Wanda's metric |W| * sqrt(s), rounded to float32 as the float32 tensors compute it. */
export function refWandaMetric(w: Float32Array, scaler: Float32Array, rows: number, cols: number): Float32Array {
  const m = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) m[r * cols + c] = Math.abs(at(w, r * cols + c)) * Math.fround(Math.sqrt(at(scaler, c)));
  }
  return m;
}

/** Wanda mask: unstructured floor(cols p) per row, or N:M. */
export function refWandaMask(metric: Float32Array, rows: number, cols: number, s: RefStructure): Uint8Array {
  if (s.kind === 'nm') return refNmMask(metric, rows, cols, s.n, s.m);
  return refRowMask(metric, rows, cols, Math.floor(cols * s.sparsity));
}

/**
 * Wanda variant, written from lib/prune.py return_given_alpha and the bisection loop (float32 cumulative sums;
 * a row whose first cumulative sum already exceeds alpha * row_sum keeps everything).
 */
export function refWandaVariant(
  metric: Float32Array,
  rows: number,
  cols: number,
  target: number,
): { mask: Uint8Array; alpha: number; sparsity: number } {
  const f = Math.fround;
  const sorted: Float32Array[] = [];
  const cums: Float32Array[] = [];
  const sums: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = metric.slice(r * cols, (r + 1) * cols);
    const srt = Float32Array.from(row).sort();
    const cum = new Float32Array(cols);
    let acc = 0;
    for (let c = 0; c < cols; c++) {
      acc = f(acc + at(srt, c));
      cum[c] = acc;
    }
    let total = 0;
    for (let c = 0; c < cols; c++) total = f(total + at(row, c));
    sorted.push(srt);
    cums.push(cum);
    sums.push(total);
  }
  const given = (alpha: number): { mask: Uint8Array; sparsity: number } => {
    const mask = new Uint8Array(rows * cols);
    let removed = 0;
    for (let r = 0; r < rows; r++) {
      const limit = f(at(sums, r) * f(alpha));
      const cum = cums[r] as Float32Array;
      let count = 0;
      for (let c = 0; c < cols; c++) if (at(cum, c) <= limit) count++;
      if (count === 0) continue;
      const thres = at(sorted[r] as Float32Array, count - 1);
      for (let c = 0; c < cols; c++) {
        if (at(metric, r * cols + c) <= thres) {
          mask[r * cols + c] = 1;
          removed++;
        }
      }
    }
    return { mask, sparsity: f(f(removed) / f(rows * cols)) };
  };
  let alpha = 0.4;
  let lo = 0;
  let hi = 0.8;
  let cur = given(alpha);
  const t = f(target);
  while (Math.abs(f(cur.sparsity - t)) > f(0.001) && hi - lo >= 0.001) {
    if (cur.sparsity > t) {
      const a = (alpha + lo) / 2;
      hi = alpha;
      alpha = a;
    } else {
      const a = (alpha + hi) / 2;
      lo = alpha;
      alpha = a;
    }
    cur = given(alpha);
  }
  return { ...cur, alpha };
}

/** Lower Cholesky factor (float64), column by column. */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = at(a, j * n + j);
    for (let k = 0; k < j; k++) s -= at(l, j * n + k) ** 2;
    if (!(s > 0)) throw new Error(`reference cholesky: not positive definite at ${j}`);
    l[j * n + j] = Math.sqrt(s);
    for (let i = j + 1; i < n; i++) {
      let t = at(a, i * n + j);
      for (let k = 0; k < j; k++) t -= at(l, i * n + k) * at(l, j * n + k);
      l[i * n + j] = t / at(l, j * n + j);
    }
  }
  return l;
}

/** torch.cholesky_inverse: (L L^T)^-1 from L, by solving L L^T X = I column by column (float64). */
function choleskyInverse(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  const y = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    for (let i = 0; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = 0; k < i; k++) s -= at(l, i * n + k) * at(y, k);
      y[i] = s / at(l, i * n + i);
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = at(y, i);
      for (let k = i + 1; k < n; k++) s -= at(l, k * n + i) * at(x, k * n + c);
      x[i * n + c] = s / at(l, i * n + i);
    }
  }
  return x;
}

/**
 * SparseGPT fasterprune in float64, literally: dead inputs, damp 0.01 * mean(diag), cholesky -> cholesky_inverse
 * -> upper cholesky, blocks of 128, mask per block (unstructured) or per M columns (N:M), per-column OBS updates,
 * propagation to later columns. Returns the updated weight and the mask.
 */
export function refSparseGpt(
  w0: Float32Array,
  hIn: Float64Array,
  rows: number,
  cols: number,
  s: RefStructure,
  opts: { damp?: number; blocksize?: number } = {}, // percdamp and blocksize (reference: 0.01, 128)
): { weight: Float64Array; mask: Uint8Array } {
  const n = cols;
  const w = Float64Array.from(w0);
  const h = Float64Array.from(hIn);
  for (let j = 0; j < n; j++) {
    if (at(h, j * n + j) === 0) {
      h[j * n + j] = 1;
      for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
    }
  }
  let trace = 0;
  for (let j = 0; j < n; j++) trace += at(h, j * n + j);
  for (let j = 0; j < n; j++) h[j * n + j] = at(h, j * n + j) + ((opts.damp ?? 0.01) * trace) / n;
  const hi = choleskyInverse(cholesky(h, n), n);
  const lo = cholesky(hi, n); // lower L with L L^T = H^-1; the upper factor is U = L^T
  const u = (i: number, j: number): number => at(lo, j * n + i);
  const mask = new Uint8Array(rows * cols);
  const bs = opts.blocksize ?? 128;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    const err = new Float64Array(rows * (i2 - i1));
    if (s.kind === 'unstructured') {
      const tmp: number[] = [];
      for (let r = 0; r < rows; r++) for (let c = i1; c < i2; c++) tmp.push(at(w, r * cols + c) ** 2 / u(c, c) ** 2);
      const sorted = Float64Array.from(tmp).sort();
      const thresh = at(sorted, Math.floor(tmp.length * s.sparsity));
      for (let r = 0; r < rows; r++) {
        for (let c = i1; c < i2; c++) if (at(w, r * cols + c) ** 2 / u(c, c) ** 2 <= thresh) mask[r * cols + c] = 1;
      }
    }
    for (let c = i1; c < i2; c++) {
      if (s.kind === 'nm' && (c - i1) % s.m === 0) {
        for (let r = 0; r < rows; r++) {
          const tmp = Array.from({ length: s.m }, (_, k) => at(w, r * cols + c + k) ** 2 / u(c + k, c + k) ** 2);
          const order = stableArgsort(tmp, 0, s.m);
          for (let k = 0; k < s.n; k++) mask[r * cols + c + at(order, k)] = 1;
        }
      }
      const d = u(c, c);
      for (let r = 0; r < rows; r++) {
        const wv = at(w, r * cols + c);
        const q = mask[r * cols + c] ? 0 : wv;
        const e = (wv - q) / d;
        err[r * (i2 - i1) + (c - i1)] = e;
        for (let k = c + 1; k < i2; k++) w[r * cols + k] = at(w, r * cols + k) - e * u(c, k);
        w[r * cols + c] = q;
      }
    }
    for (let r = 0; r < rows; r++) {
      for (let k = i2; k < cols; k++) {
        let acc = 0;
        for (let c = i1; c < i2; c++) acc += at(err, r * (i2 - i1) + (c - i1)) * u(c, k);
        w[r * cols + k] = at(w, r * cols + k) - acc;
      }
    }
  }
  return { weight: w, mask };
}

/** Upper Cholesky factor of H^-1 as the reference computes it (three steps), float64, row-major [n, n]. */
export function refUpperCholeskyOfInverse(h: Float64Array, n: number): Float64Array {
  const lo = cholesky(choleskyInverse(cholesky(h, n), n), n);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = at(lo, j * n + i);
  return u;
}
