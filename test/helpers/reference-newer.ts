/**
 * Plain-loop reference implementations of REFERENCE.md section 7 (OWL, RIA, DSnoT), for tests only. Written from
 * the text and the reference Python code (luuyin/OWL, biomedical-cybernetics/Relative-importance-and-activation-
 * pruning, zyxxmu/DSnoT), never calling lib/. Matrices are row-major [rows, cols], float32 where the references
 * compute in float32 (Math.fround).
 */
import { refNmMask, refRowMask } from './reference-prune.js';

const f = Math.fround;
const at = (a: ArrayLike<number>, i: number): number => a[i] as number;

// ------------------------------------------------------------------------------------------------------------
// Linear sum assignment, exact, by dynamic programming over subsets of columns (n <= ~18).

/** Maximum total of an assignment of rows to columns of the n x n `score`, and one assignment reaching it. */
export function refMaxAssignment(score: ArrayLike<number>, n: number): { total: number; cols: number[] } {
  const size = 1 << n;
  const best = new Float64Array(size).fill(-Infinity);
  const choice = new Int32Array(size).fill(-1);
  best[0] = 0;
  for (let mask = 0; mask < size; mask++) {
    if (best[mask] === -Infinity) continue;
    let row = 0;
    for (let x = mask; x; x &= x - 1) row++; // rows 0..row-1 are assigned to the columns in mask
    if (row >= n) continue;
    for (let c = 0; c < n; c++) {
      if (mask & (1 << c)) continue;
      const next = mask | (1 << c);
      const v = at(best, mask) + at(score, row * n + c);
      if (v > at(best, next)) {
        best[next] = v;
        choice[next] = c;
      }
    }
  }
  const cols = new Array<number>(n);
  let mask = size - 1;
  for (let row = n - 1; row >= 0; row--) {
    const c = at(choice, mask);
    cols[row] = c;
    mask &= ~(1 << c);
  }
  return { total: at(best, size - 1), cols };
}

/** Brute force over all permutations (n <= 8): the minimum and maximum totals. */
export function refAssignmentBounds(cost: ArrayLike<number>, n: number): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  const perm = Array.from({ length: n }, (_, i) => i);
  const visit = (k: number): void => {
    if (k === n) {
      let t = 0;
      for (let r = 0; r < n; r++) t += at(cost, r * n + at(perm, r));
      min = Math.min(min, t);
      max = Math.max(max, t);
      return;
    }
    for (let i = k; i < n; i++) {
      [perm[k], perm[i]] = [at(perm, i), at(perm, k)];
      visit(k + 1);
      [perm[k], perm[i]] = [at(perm, i), at(perm, k)];
    }
  };
  visit(0);
  return { min, max };
}

// ------------------------------------------------------------------------------------------------------------
// RIA

/** (|W|/colsum + |W|/rowsum) * sqrt(scaler)^a, float32 steps. */
export function refRiaMetric(w: Float32Array, scaler: Float32Array, rows: number, cols: number, a: number): Float32Array {
  const colSum = new Float64Array(cols);
  const rowSum = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.abs(at(w, r * cols + c));
      colSum[c] = at(colSum, c) + v;
      rowSum[r] = at(rowSum, r) + v;
    }
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.abs(at(w, r * cols + c));
      const rel = f(f(v / f(at(colSum, c))) + f(v / f(at(rowSum, r))));
      out[r * cols + c] = f(rel * f(f(Math.sqrt(at(scaler, c))) ** a));
    }
  }
  return out;
}

/** RIA unstructured, per matrix: t = sorted(flatten)[int(R*C*s)], remove metric <= t. */
export function refRiaUnstructured(metric: Float32Array, s: number): Uint8Array {
  const sorted = Float32Array.from(metric).sort();
  const t = at(sorted, Math.floor(metric.length * s));
  return Uint8Array.from(metric, (v) => (v <= t ? 1 : 0));
}

/** The RIA channel permutation: reallocation (snake over column sums) then one LSA round per slot. */
export function refRiaPermutation(metric: Float32Array, rows: number, cols: number, n: number, m: number): number[] {
  const sums = new Float32Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sums[c] = f(at(sums, c) + at(metric, r * cols + c));
  const sortedIdx = Array.from({ length: cols }, (_, i) => i).sort((x, y) => at(sums, x) - at(sums, y) || x - y);
  let index = new Array<number>(cols);
  for (let ii = 1; ii <= m; ii++) {
    let part = sortedIdx.slice(Math.trunc((cols * (ii - 1)) / m), Math.trunc((cols * ii) / m));
    if (ii % 2 === 0) part = part.reverse();
    for (let t = 0; t < part.length; t++) index[ii - 1 + t * m] = at(part, t);
  }
  const groups = cols / m;
  for (let lsaColumn = 0; lsaColumn < m; lsaColumn++) {
    const P = (r: number, k: number): number => at(metric, r * cols + at(index, k));
    // score[h][g]: strip of group g's other columns plus group h's lsaColumn column; then transposed to [g][h]
    const score = new Float64Array(groups * groups);
    for (let g = 0; g < groups; g++) {
      for (let h = 0; h < groups; h++) {
        let total = 0;
        for (let r = 0; r < rows; r++) {
          const strip = [P(r, h * m + lsaColumn)];
          for (let c = 0; c < m; c++) if (c !== lsaColumn) strip.push(P(r, g * m + c));
          strip.sort((x, y) => x - y);
          for (let q = n; q < m; q++) total += at(strip, q); // kept: not among the n smallest
        }
        score[g * groups + h] = total;
      }
    }
    const { cols: assign } = refMaxAssignment(score, groups);
    const next = index.slice();
    for (let g = 0; g < groups; g++) next[g * m + lsaColumn] = at(index, at(assign, g) * m + lsaColumn);
    index = next;
  }
  return index;
}

/** The RIA N:M mask chosen in the permuted order, unpermuted: mask[:, index[k]] = maskP[:, k]. */
export function refRiaPermutedMask(metric: Float32Array, rows: number, cols: number, n: number, m: number): { mask: Uint8Array; index: number[] } {
  const index = refRiaPermutation(metric, rows, cols, n, m);
  const permuted = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) permuted[r * cols + k] = at(metric, r * cols + at(index, k));
  const maskP = refNmMask(permuted, rows, cols, n, m);
  const mask = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) mask[r * cols + at(index, k)] = at(maskP, r * cols + k);
  return { mask, index };
}

// ------------------------------------------------------------------------------------------------------------
// OWL

/** 100 * #{v > M * mean(v)} / |v| over the concatenation of `parts`. */
export function refOutlierRatio(parts: Float32Array[], M: number): number {
  const all = parts.flatMap((p) => Array.from(p));
  const mean = f(all.reduce((a, b) => a + b, 0) / all.length);
  const thr = f(mean * M);
  return (all.filter((v) => v > thr).length / all.length) * 100;
}

/** OWL's mapping from outlier ratios to block sparsities (float64). */
export function refOwlSparsities(ratios: number[], s: number, lamda: number): number[] {
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  const scaled = ratios.map((r) => (r - min) * ((1 / (max - min)) * lamda * 2));
  const mean = scaled.reduce((a, b) => a + b, 0) / scaled.length;
  return scaled.map((x) => {
    const ratio = 1 - (x - mean + (1 - s));
    return ratio <= 0 ? 0.01 : ratio;
  });
}

// ------------------------------------------------------------------------------------------------------------
// DSnoT

/** sum_metric_row and var of WrappedGPT.add_batch, one sample [seq, in] at a time (float64 sums, float32 steps). */
export function refDsnotStats(samples: Float32Array[], seq: number, inF: number): { sum: Float32Array; variance: Float32Array } {
  const sum = new Float32Array(inF);
  const variance = new Float32Array(inF);
  let ntokens = 0;
  samples.forEach((x, n) => {
    for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let t = 0; t < seq; t++) s += at(x, t * inF + j);
      const mean = s / seq;
      let v = 0;
      for (let t = 0; t < seq; t++) v += (at(x, t * inF + j) - mean) ** 2;
      v /= seq;
      sum[j] = f(f(at(sum, j) * f(n / (n + 1))) + f(f(s) / (n + 1)));
      variance[j] = ntokens === 0 ? f(v) : f(f(f(at(variance, j) * ntokens) + f(f(v) * seq)) / (ntokens + seq));
    }
    ntokens += seq;
  });
  return { sum, variance };
}

/** The reference's return_reorder_indice for one row of values. */
function reorderIndices(values: number[]): number[] {
  const L = values.length;
  const pos = values.map((v, i) => (v > 0 ? i : Infinity)).sort((a, b) => a - b).reverse();
  const neg = values.map((v, i) => (v < 0 ? i : Infinity)).sort((a, b) => a - b);
  return Array.from({ length: L }, (_, i) => (at(neg, i) === Infinity ? 0 : at(neg, i)) + (at(pos, i) === Infinity ? 0 : at(pos, i)));
}

export interface RefDsnotInput {
  rows: number;
  cols: number;
  w: Float32Array;
  initialMask: Uint8Array; // 1 = pruned
  scaler: Float32Array;
  sum: Float32Array;
  variance: Float32Array;
  maxCycle: number;
  threshold: number;
}

/**
 * prune_DSnoT's unstructured branch, row-vectorised as the torch code (one pass of the while loop updates every row):
 * index lists [lo, hi] per row, `update_mask` shared across cycles, `e` float32.
 */
export function refDsnot(x: RefDsnotInput): Uint8Array {
  const { rows, cols } = x;
  const mask = x.initialMask.slice();
  const D = (r: number, j: number): number => f(at(x.w, r * cols + j) * at(x.sum, j));
  const regrow: number[][] = [];
  const pruneBlock: number[][] = [];
  const e: number[] = [];
  for (let r = 0; r < rows; r++) {
    const metricForRegrowing = Array.from({ length: cols }, (_, j) => (x.initialMask[r * cols + j] ? D(r, j) : 0));
    let err = 0;
    for (const v of metricForRegrowing) err += v;
    e.push(f(err));
    const divided = metricForRegrowing.map((v, j) => f(v / at(x.variance, j)));
    regrow.push(Array.from({ length: cols }, (_, j) => j).sort((a, b) => at(divided, a) - at(divided, b) || a - b));
    const wanda = Array.from({ length: cols }, (_, j) =>
      x.initialMask[r * cols + j] ? Infinity : f(Math.abs(at(x.w, r * cols + j)) * f(Math.sqrt(at(x.scaler, j)))),
    );
    const kept = x.initialMask.subarray(r * cols, (r + 1) * cols).reduce((a, b) => a + (b ? 0 : 1), 0);
    const res = Array.from({ length: cols }, (_, j) => j).sort((a, b) => at(wanda, a) - at(wanda, b) || a - b).slice(0, kept);
    const order = reorderIndices(res.map((j) => D(r, j)));
    pruneBlock.push(order.map((i) => at(res, i)));
  }
  const growIdx = Array.from({ length: rows }, () => [0, cols - 1]);
  const pruneIdx = pruneBlock.map((p) => [0, p.length - 1]);
  const update = new Array<boolean>(rows).fill(true);
  const stopped = new Array<boolean>(rows).fill(false); // index lists exhausted (torch would raise here)
  let cycle = 0;
  while (!(update.every((u) => !u) || cycle >= x.maxCycle)) {
    cycle++;
    for (let r = 0; r < rows; r++) {
      const gi = e[r]! > 0 ? 1 : 0;
      const pi = e[r]! < 0 ? 1 : 0;
      const gAt = growIdx[r]![gi]!;
      const pAt = pruneIdx[r]![pi]!;
      if (stopped[r] || gAt < 0 || gAt >= cols || pAt < 0 || pAt >= pruneBlock[r]!.length) {
        // the package's documented choice where the reference's gather would go out of range: the row stops
        stopped[r] = true;
        update[r] = false;
        continue;
      }
      const g = regrow[r]![gAt]!;
      growIdx[r]![gi] = growIdx[r]![gi]! + (gi === 1 ? -1 : 1);
      const p = pruneBlock[r]![pAt]!;
      pruneIdx[r]![pi] = pruneIdx[r]![pi]! + (pi === 1 ? -1 : 1);
      update[r] = update[r]! && Math.abs(e[r]!) > x.threshold;
      mask[r * cols + p] = update[r] ? 1 : 0;
      mask[r * cols + g] = update[r] ? 0 : 1;
      if (update[r]) e[r] = f(f(e[r]! + D(r, p)) - D(r, g));
    }
  }
  return mask;
}

/** Wanda's initial per-row mask of the DSnoT reference. */
export function refDsnotInitial(w: Float32Array, scaler: Float32Array, rows: number, cols: number, s: number): Uint8Array {
  const metric = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) metric[r * cols + c] = f(Math.abs(at(w, r * cols + c)) * f(Math.sqrt(at(scaler, c))));
  return refRowMask(metric, rows, cols, Math.floor(cols * s));
}
