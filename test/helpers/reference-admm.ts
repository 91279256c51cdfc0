/**
 * A plain-loop float64 port of the ADMM weight update of fmfi-compbio/admm-pruning lib/admm.py (`AdmmPruner.add_batch`
 * and `fasterprune`; percdamp 0.1 as `prune_admm` passes it), for tests only: it imports nothing from lib/.
 * Layouts as the Python code: W is (weight * norm)^T, [in, out] row-major. The inverse is Gauss-Jordan elimination
 * with partial pivoting (the reference calls torch.inverse). Ties among equal values: lower flat index first.
 * Beyond the reference (which hard-codes 2:4 in its gradual branch): any N:M, keeping the M - N largest per group
 * and growing the target to N/M by the same cubic schedule.
 */

export type RefAdmmStructure = { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };

export interface RefAdmmOptions {
  structure: RefAdmmStructure;
  iters?: number; // 20
  rounds?: number; // iterative_prune, 15
  damp?: number; // percdamp, 0.1
  rho?: number; // 1
  /** A given mask ([out, in], 1 = removed): iterative_prune = 0 with this mask instead of the |W| one. */
  mask?: Uint8Array;
  /**
   * Store every matrix (XX, its inverse, XY, W, U, Z) as float32, as the reference does on its float32 tensors:
   * the same steps rounded to float32 after each one, to measure how far float32 rounding alone moves the masks.
   */
  float32?: boolean;
}

type Vec = Float64Array | Float32Array;
type VecOf = Float64ArrayConstructor | Float32ArrayConstructor;

const at = (a: ArrayLike<number>, i: number): number => a[i] as number;

/** add_batch over samples (each [seq, in] row-major): XX += X^T X, in float64. */
export function refGram(samples: Float32Array[], seq: number, inF: number): Float64Array {
  const xx = new Float64Array(inF * inF);
  for (const x of samples) {
    for (let t = 0; t < seq; t++) {
      for (let i = 0; i < inF; i++) {
        const xi = at(x, t * inF + i);
        if (xi === 0) continue;
        for (let j = 0; j < inF; j++) xx[i * inF + j] = at(xx, i * inF + j) + xi * at(x, t * inF + j);
      }
    }
  }
  return xx;
}

/** The inverse of a ([n, n] row-major), Gauss-Jordan with partial pivoting. */
export function refInverse(a: Vec, n: number, F: VecOf = Float64Array): Vec {
  const m = F.from(a);
  const inv = new F(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(at(m, r * n + c)) > Math.abs(at(m, p * n + c))) p = r;
    if (at(m, p * n + c) === 0) throw new Error('refInverse: singular matrix');
    if (p !== c) {
      for (let j = 0; j < n; j++) {
        [m[c * n + j], m[p * n + j]] = [at(m, p * n + j), at(m, c * n + j)];
        [inv[c * n + j], inv[p * n + j]] = [at(inv, p * n + j), at(inv, c * n + j)];
      }
    }
    const d = at(m, c * n + c);
    for (let j = 0; j < n; j++) {
      m[c * n + j] = at(m, c * n + j) / d;
      inv[c * n + j] = at(inv, c * n + j) / d;
    }
    for (let r = 0; r < n; r++) {
      const f = at(m, r * n + c);
      if (r === c || f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j] = at(m, r * n + j) - f * at(m, c * n + j);
        inv[r * n + j] = at(inv, r * n + j) - f * at(inv, c * n + j);
      }
    }
  }
  return inv;
}

/** a [p, q] times b [q, r], row-major. */
function matmul(a: Vec, b: Vec, p: number, q: number, r: number, F: VecOf): Vec {
  const c = new F(p * r);
  for (let i = 0; i < p; i++) {
    for (let k = 0; k < q; k++) {
      const v = at(a, i * q + k);
      if (v === 0) continue;
      for (let j = 0; j < r; j++) c[i * r + j] = at(c, i * r + j) + v * at(b, k * r + j);
    }
  }
  return c;
}

/** torch.topk(|v|.flatten(), k, largest=False): keep = 0 on the k smallest (lower index first among ties). */
function keepTopk(v: Vec, k: number): Uint8Array {
  const abs = Float64Array.from(v, Math.abs);
  const idx = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => at(abs, a) - at(abs, b) || a - b);
  const keep = new Uint8Array(v.length).fill(1);
  for (let i = 0; i < k; i++) keep[idx[i]!] = 0;
  return keep;
}

/** N:M groups of W^T ([out, in] rows of M inputs): 1 on the M - N largest |v| of each (lower index removed first). */
function groupTop(v: Vec, inF: number, out: number, n: number, m: number): Uint8Array {
  const top = new Uint8Array(v.length);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < inF; g += m) {
      const idx = Array.from({ length: m }, (_, i) => g + i);
      idx.sort((a, b) => Math.abs(at(v, a * out + o)) - Math.abs(at(v, b * out + o)) || a - b);
      for (let r = n; r < m; r++) top[idx[r]! * out + o] = 1;
    }
  }
  return top;
}

/** The gradual N:M round: Z2 = |v| with the group's largest at inf; keep Z2 >= kthvalue(Z2, floor(numel cur) + 1). */
function keepGradual(v: Vec, inF: number, out: number, n: number, m: number, cur: number): Uint8Array {
  const top = groupTop(v, inF, out, n, m);
  const z2 = Float64Array.from(v, (x, i) => (top[i] ? Infinity : Math.abs(x)));
  const sorted = Float64Array.from(z2).sort();
  const thres = at(sorted, Math.floor(v.length * cur));
  return Uint8Array.from(z2, (x) => (x >= thres ? 1 : 0));
}

/** fasterprune on weight ([out, in] float32) with XX ([in, in]). Returns the new weight and mask, [out, in]. */
export function refAdmm(weight: Float32Array, xxRaw: Float64Array, out: number, inF: number, o: RefAdmmOptions): { weight: Float64Array; mask: Uint8Array } {
  const iters = o.iters ?? 20;
  const rounds = o.mask ? 0 : (o.rounds ?? 15);
  const damp = o.damp ?? 0.1;
  const rho = o.rho ?? 1;
  const F: VecOf = o.float32 ? Float32Array : Float64Array;
  const map = (a: ArrayLike<number>, f: (x: number, i: number) => number): Vec => {
    const r = new F(a.length);
    for (let i = 0; i < a.length; i++) r[i] = f(at(a, i), i);
    return r;
  };
  const gram = F.from(xxRaw);
  const norm = new F(inF);
  for (let j = 0; j < inF; j++) norm[j] = Math.sqrt(at(gram, j * inF + j)) + 1e-8;
  const xx = map(gram, (v, idx) => v / at(norm, idx % inF) / at(norm, Math.floor(idx / inF)));
  let mean = 0;
  for (let j = 0; j < inF; j++) mean += at(xx, j * inF + j) / inF;
  for (let j = 0; j < inF; j++) xx[j * inF + j] = at(xx, j * inF + j) + damp * mean;
  let w: Vec = new F(inF * out); // [in, out]
  for (let r = 0; r < out; r++) for (let j = 0; j < inF; j++) w[j * out + r] = at(weight, r * inF + j) * at(norm, j);
  const s = o.structure;
  let keep: Uint8Array | null = null;
  if (rounds === 0) {
    if (o.mask) keep = Uint8Array.from(w, (_, idx) => 1 - at(o.mask!, (idx % out) * inF + Math.floor(idx / out)));
    else if (s.kind === 'nm') keep = groupTop(w, inF, out, s.n, s.m);
    else keep = keepTopk(w, Math.floor(w.length * s.sparsity));
  }
  const xy = matmul(xx, w, inF, inF, out, F);
  for (let j = 0; j < inF; j++) xx[j * inF + j] = at(xx, j * inF + j) + rho;
  const xxInv = refInverse(xx, inF, F);
  let u: Vec = new F(w.length);
  for (let itt = 0; itt < iters; itt++) {
    if (rounds > 0 && itt < rounds) {
      const wu = map(w, (x, i) => x + at(u, i));
      if (s.kind === 'nm') {
        const sp = s.n / s.m;
        keep = keepGradual(wu, inF, out, s.n, s.m, sp - sp * Math.pow(1 - (itt + 1) / rounds, 3));
      } else keep = keepTopk(wu, Math.floor(w.length * s.sparsity));
    }
    const z = map(w, (x, i) => (x + at(u, i)) * at(keep!, i));
    u = map(u, (x, i) => x + (at(w, i) - at(z, i)));
    const rhs = map(xy, (x, i) => x + rho * (at(z, i) - at(u, i)));
    w = matmul(xxInv, rhs, inF, inF, out, F);
  }
  const result = new Float64Array(out * inF);
  const mask = new Uint8Array(out * inF);
  for (let r = 0; r < out; r++) {
    for (let j = 0; j < inF; j++) {
      const k = at(keep!, j * out + r);
      result[r * inF + j] = ((at(w, j * out + r) + at(u, j * out + r)) * k) / at(norm, j);
      mask[r * inF + j] = 1 - k;
    }
  }
  return { weight: result, mask };
}
