import { execFileSync } from 'node:child_process';
import { ConfigError } from '../../lib/errors.js';
import { PythonRandom, seedKey } from '../../lib/data/random.js';

/** Run a Python 3 script with a JSON value on stdin; parse its stdout as JSON. */
function python(script: string, input: unknown): unknown {
  const out = execFileSync('python3', ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
  return JSON.parse(out);
}

const SEEDS: (number | bigint)[] = [0, 1, 42, 2 ** 32 + 5, 123456789, -7, 2 ** 53 - 1];
const BIG_SEED = 2n ** 100n + 12345n;

// Ranges for randint: tiny (including the one-value range, which still consumes a draw), around powers of two
// (worst case for the rejection loop), large up to 2^31 and beyond 32 bits.
const RANGES: [number, number][] = [
  [0, 0], [0, 1], [1, 6], [0, 2], [0, 999], [5, 5], [-10, 10], [0, 1023], [0, 1024], [0, 65535],
  [0, 65536], [3, 1000003], [0, 2 ** 31 - 1], [0, 2 ** 31], [-(2 ** 31), 2 ** 31 - 1], [0, 2 ** 32 - 1],
  [0, 2 ** 32], [7, 2 ** 40 + 3], [0, 2 ** 53 - 2],
];

const PY_DRAWS = `
import json, random, sys
cfg = json.load(sys.stdin)
out = {}
for s in cfg["seeds"]:
    seed = int(s)
    r = random.Random(seed)
    raw = [r.getrandbits(32) for _ in range(700)]  # crosses a 624-word regeneration
    bits = [r.getrandbits(k) for k in cfg["bits"]]
    ints = [r.randint(a, b) for _ in range(cfg["reps"]) for (a, b) in cfg["ranges"]]
    floats = [r.random() for _ in range(50)]
    out[s] = {"raw": raw, "bits": bits, "ints": ints, "floats": [repr(f) for f in floats]}
print(json.dumps(out))
`;

interface PyDraws {
  raw: number[];
  bits: number[];
  ints: number[];
  floats: string[];
}

describe('PythonRandom', () => {
  const bits = [0, 1, 5, 31, 32, 33, 40, 53];
  const reps = 40;
  let expected: Record<string, PyDraws>;

  beforeAll(() => {
    const seeds = [...SEEDS, BIG_SEED].map(String);
    expected = python(PY_DRAWS, { seeds, bits, ranges: RANGES, reps }) as Record<string, PyDraws>;
  });

  for (const seed of [...SEEDS, BIG_SEED]) {
    test(`seed ${seed}: raw words, getrandbits, randint and random() equal CPython's`, () => {
      const exp = expected[String(seed)]!;
      const r = new PythonRandom(seed);
      const raw = Array.from({ length: 700 }, () => r.genrandUint32());
      expect(raw).toEqual(exp.raw);
      expect(bits.map((k) => r.getrandbits(k))).toEqual(exp.bits);
      const ints: number[] = [];
      for (let i = 0; i < reps; i++) for (const [a, b] of RANGES) ints.push(r.randint(a, b));
      expect(ints).toEqual(exp.ints);
      const floats = Array.from({ length: 50 }, () => r.random());
      expect(floats).toEqual(exp.floats.map(Number));
    });
  }

  test('known first values: random.seed(0); randint(0, 999) and random()', () => {
    const py = python(
      'import json, random\nrandom.seed(0)\na = random.randint(0, 999)\nprint(json.dumps([a, repr(random.random())]))',
      null,
    ) as [number, string];
    const r = new PythonRandom(0);
    expect(r.randint(0, 999)).toBe(py[0]);
    expect(r.random()).toBe(Number(py[1]));
    expect(py[0]).toBe(864); // pins the Python side too
  });

  test('a number seed and the same bigint seed give the same stream; negative seeds use |seed|', () => {
    const a = new PythonRandom(2 ** 32 + 5);
    const b = new PythonRandom(2n ** 32n + 5n);
    const c = new PythonRandom(-(2 ** 32 + 5));
    for (let i = 0; i < 10; i++) {
      const x = a.genrandUint32();
      expect(b.genrandUint32()).toBe(x);
      expect(c.genrandUint32()).toBe(x);
    }
  });

  test('seed() restarts the stream', () => {
    const r = new PythonRandom(42);
    const first = [r.randint(0, 100), r.randint(0, 100), r.randint(0, 100)];
    r.seed(42);
    expect([r.randint(0, 100), r.randint(0, 100), r.randint(0, 100)]).toEqual(first);
  });

  test('seedKey splits the integer into little-endian 32-bit words', () => {
    expect(seedKey(0)).toEqual([0]);
    expect(seedKey(1)).toEqual([1]);
    expect(seedKey(2 ** 32 + 5)).toEqual([5, 1]);
    expect(seedKey(-(2 ** 32))).toEqual([0, 1]);
    expect(seedKey(2n ** 64n)).toEqual([0, 0, 1]);
  });

  test('bad arguments are rejected with ConfigError', () => {
    const r = new PythonRandom(0);
    expect(() => r.seed(1.5)).toThrow(ConfigError);
    expect(() => r.seed(2 ** 60)).toThrow('expected an integer within +-(2^53-1)');
    expect(() => r.randint(5, 4)).toThrow('randint(5, 4): empty range (b < a)');
    expect(() => r.randint(0, 1.5)).toThrow(ConfigError);
    expect(() => r.randbelow(0)).toThrow('randbelow(0): expected a positive integer');
    expect(() => r.getrandbits(54)).toThrow('getrandbits(54)');
  });
});
