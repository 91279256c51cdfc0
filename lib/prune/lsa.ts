/**
 * Linear sum assignment (the Hungarian method, shortest augmenting paths with potentials, O(n^3)) on a square
 * matrix, as scipy.optimize.linear_sum_assignment does for RIA's channel permutation. No npm package was both exact
 * and maintained; this one is tested against brute force (test/ria.test.ts).
 */
import { ConfigError } from '../errors.js';

/**
 * The column assigned to each row of the n x n `cost` (row-major) that minimises (or, with `maximize`, maximises)
 * the total. Every entry must be finite. Returns cols with cols[row] = column.
 */
export function linearSumAssignment(cost: ArrayLike<number>, n: number, maximize = false): number[] {
  if (!Number.isInteger(n) || n < 0 || cost.length !== n * n) {
    throw new ConfigError(`linearSumAssignment: expected ${n} x ${n} = ${n * n} values, got ${cost.length}`);
  }
  for (let i = 0; i < cost.length; i++) {
    if (!Number.isFinite(cost[i] as number)) throw new ConfigError(`linearSumAssignment: entry ${i} is not finite`);
  }
  const a = (i: number, j: number): number => (maximize ? -(cost[i * n + j] as number) : (cost[i * n + j] as number));
  // 1-based arrays as in the classic formulation; column 0 is the virtual start.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1); // p[j] = row matched to column j (0 = none)
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Infinity);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0] as number;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = a(i0 - 1, j - 1) - (u[i0] as number) - (v[j] as number);
        if (cur < (minv[j] as number)) {
          minv[j] = cur;
          way[j] = j0;
        }
        if ((minv[j] as number) < delta) {
          delta = minv[j] as number;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j] as number] = (u[p[j] as number] as number) + delta;
          v[j] = (v[j] as number) - delta;
        } else {
          minv[j] = (minv[j] as number) - delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0] as number;
      p[j0] = p[j1] as number;
      j0 = j1;
    } while (j0 !== 0);
  }
  const cols = new Array<number>(n).fill(-1);
  for (let j = 1; j <= n; j++) if ((p[j] as number) > 0) cols[(p[j] as number) - 1] = j - 1;
  return cols;
}
