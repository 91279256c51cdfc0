/**
 * The linear-sum-assignment solver (lib/prune/lsa.ts) against brute force and an exact subset dynamic program.
 */
import { ConfigError } from '../../lib/errors.js';
import { linearSumAssignment } from '../../lib/prune/lsa.js';
import { refAssignmentBounds, refMaxAssignment } from '../helpers/reference-newer.js';
import { TestRng } from '../helpers/reference-prune.js';
import { useTestBackend } from '../helpers/backend.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('linear sum assignment', () => {
  it.each([1, 2, 3, 4, 5, 6, 7])('n = %i: equals brute force (min and max, real and tied integer costs)', (n) => {
    const rng = new TestRng(100 + n);
    for (const ties of [false, true]) {
      for (let trial = 0; trial < 5; trial++) {
        const cost = Float64Array.from({ length: n * n }, () => (ties ? Math.floor(rng.uniform() * 3) : rng.normal()));
        const { min, max } = refAssignmentBounds(cost, n);
        for (const maximize of [false, true]) {
          const cols = linearSumAssignment(cost, n, maximize);
          expect([...cols].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i)); // a permutation
          const total = cols.reduce((t, c, r) => t + (cost[r * n + c] as number), 0);
          expect(total).toBeCloseTo(maximize ? max : min, 9);
        }
      }
    }
  });

  it('a 14 x 14 matrix: equals the subset dynamic program', () => {
    const rng = new TestRng(5);
    const n = 14;
    const score = Float64Array.from({ length: n * n }, () => rng.uniform());
    const cols = linearSumAssignment(score, n, true);
    const total = cols.reduce((t, c, r) => t + (score[r * n + c] as number), 0);
    expect(total).toBeCloseTo(refMaxAssignment(score, n).total, 9);
  });

  it('rejects a wrong size and non-finite entries', () => {
    expect(() => linearSumAssignment([1, 2, 3], 2)).toThrow(ConfigError);
    expect(() => linearSumAssignment([1, NaN, 3, 4], 2)).toThrow(ConfigError);
    expect(linearSumAssignment([], 0)).toEqual([]);
  });
});
