import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../lib/errors.js';
import { SafetensorsFile, SafetensorsWriter, decodeToFloat32, encodeFromFloat32, type DType } from '../../lib/model/safetensors.js';
import { readSafetensorsFile } from '../helpers/reference-llama.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-st-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Write a safetensors file by hand: 8-byte length, header JSON, data bytes. */
function rawFile(name: string, header: unknown, data: Uint8Array | number = 0, headerLength?: bigint): string {
  const path = join(tmp, name);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  const bytes = typeof data === 'number' ? new Uint8Array(data) : data;
  writeFileSync(path, Buffer.concat([len, json, bytes]));
  return path;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Round float32 `x` through `dtype` and back. */
function roundTrip(x: number, dtype: DType): number {
  return decodeToFloat32(encodeFromFloat32(Float32Array.of(x), dtype), dtype, 'test')[0]!;
}

describe('dtype conversion: round to nearest, ties to even (as torch .bfloat16() / .half())', () => {
  // [input, expected after rounding]
  const BF16: [number, number][] = [
    [1, 1],
    [1 + 2 ** -8, 1], // halfway between 1 and 1 + 2^-7: tie to the even mantissa (1)
    [1 + 3 * 2 ** -8, 1 + 2 ** -6], // halfway between 1 + 2^-7 and 1 + 2^-6: tie to even (up)
    [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // just above halfway: up
    [1 + 2 ** -8 - 2 ** -20, 1], // just below halfway: down
    [Math.PI, 3.140625],
    [-2.5, -2.5],
    [3.4028234663852886e38, Infinity], // float32 max rounds past the largest BF16
    [Infinity, Infinity],
    [-Infinity, -Infinity],
  ];
  const F16: [number, number][] = [
    [1, 1],
    [1 + 2 ** -11, 1], // tie to even (down)
    [1 + 3 * 2 ** -11, 1 + 2 ** -9], // tie to even (up)
    [0.1, 0.0999755859375],
    [65504, 65504], // largest half
    [65519, 65504],
    [65520, Infinity], // halfway to the next (infinite) step: ties to even = infinity
    [2 ** -14, 2 ** -14], // smallest normal
    [2 ** -24, 2 ** -24], // smallest subnormal
    [2 ** -25, 0], // halfway between 0 and 2^-24: tie to even (0)
    [3 * 2 ** -26, 2 ** -24], // 0.75 of the smallest subnormal: up
    [3 * 2 ** -25, 2 ** -23], // 1.5 subnormal steps: tie to even (2 steps)
    [-3 * 2 ** -20, -3 * 2 ** -20], // exact subnormal
    [1e-9, 0],
    [-1e6, -Infinity],
  ];

  test.each(BF16)('BF16 %p -> %p', (x, want) => expect(roundTrip(x, 'BF16')).toBe(want));
  test.each(F16)('F16 %p -> %p', (x, want) => expect(roundTrip(x, 'F16')).toBe(want));

  test('little-endian bytes, signed zero and NaN', () => {
    expect([...encodeFromFloat32(Float32Array.of(1, -2), 'BF16')]).toEqual([0x80, 0x3f, 0x00, 0xc0]);
    expect([...encodeFromFloat32(Float32Array.of(1, -2), 'F16')]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
    expect([...encodeFromFloat32(Float32Array.of(1), 'F32')]).toEqual([0x00, 0x00, 0x80, 0x3f]);
    for (const d of ['F16', 'BF16'] as const) {
      expect(Object.is(roundTrip(-0, d), -0)).toBe(true);
      expect(Number.isNaN(roundTrip(NaN, d))).toBe(true);
    }
  });

  test('decoding a non-float dtype is refused', () => {
    expect(() => decodeToFloat32(new Uint8Array(4), 'I32', 'f.safetensors: tensor x')).toThrow(CheckpointError);
    expect(() => decodeToFloat32(new Uint8Array(4), 'I32', 'f.safetensors: tensor x')).toThrow(
      /^f\.safetensors: tensor x: dtype I32 cannot be read as floating point \(supported: F32, F16, BF16\)$/,
    );
  });
});

describe('write and read back', () => {
  const values = Float32Array.from({ length: 24 }, (_, i) => (i - 11.5) / 7 + (i % 3) * 2 ** -9);

  test.each(['F32', 'F16', 'BF16'] as const)('%s: header, offsets, values (lazy reads in any order)', (dtype) => {
    const path = join(tmp, `rt-${dtype}.safetensors`);
    const w = new SafetensorsWriter(path, [
      { name: 'a', shape: [2, 3, 4], dtype },
      { name: 'b', shape: [5], dtype },
      { name: 'empty', shape: [0, 3], dtype },
    ], { format: 'pt', note: 'test' });
    w.write('b', values.subarray(0, 5)); // any order
    w.write('empty', new Float32Array(0));
    w.write('a', values);
    w.finish();
    // the data area starts 8-byte aligned
    const n = Number(readFileSync(path).readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);

    const f = SafetensorsFile.open(path);
    try {
      expect(f.metadata).toEqual({ format: 'pt', note: 'test' });
      const size = dtype === 'F32' ? 4 : 2;
      expect(f.entries.get('a')).toEqual({ name: 'a', dtype, shape: [2, 3, 4], begin: 0, end: 24 * size });
      expect(f.entries.get('b')).toEqual({ name: 'b', dtype, shape: [5], begin: 24 * size, end: 29 * size });
      const want = (v: Float32Array): number[] => [...v].map((x) => roundTrip(x, dtype));
      expect([...f.readFloat32('b')]).toEqual(want(values.subarray(0, 5)));
      expect([...f.readFloat32('a')]).toEqual(want(values));
      expect(f.readFloat32('empty')).toHaveLength(0);
      if (dtype === 'F32') expect([...f.readFloat32('a')]).toEqual([...values]);
      else expect([...f.readFloat32('a')]).not.toEqual([...values]); // the 2^-9 parts do not survive 16 bits
      // an independent reader sees the same numbers
      expect([...readSafetensorsFile(path).tensors.get('a')!]).toEqual(want(values));
      expect(() => f.readFloat32('nope')).toThrow(new RegExp(`^${esc(path)}: no tensor 'nope'$`));
      // into a caller's array (reused), and transposed as decoded
      const into = new Float32Array(24).fill(7);
      expect(f.readFloat32('a', into)).toBe(into);
      expect([...into]).toEqual(want(values));
      expect(() => f.readFloat32('b', into)).toThrow(new RegExp(`^${esc(path)}: tensor 'b': holds 5 values, the array given has 24$`));
      const m = join(tmp, `t-${dtype}.safetensors`);
      const wm = new SafetensorsWriter(m, [{ name: 'm', shape: [4, 6], dtype }]);
      wm.write('m', values);
      wm.finish();
      const fm = SafetensorsFile.open(m);
      try {
        const t = fm.readFloat32Transposed('m');
        const r = want(values);
        for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) expect(t[j * 4 + i]).toBe(r[i * 6 + j]);
        expect(fm.readFloat32Transposed('m', into)).toBe(into);
        expect([...into]).toEqual([...t]);
      } finally {
        fm.close();
      }
      expect(() => f.readFloat32Transposed('a')).toThrow(new RegExp(`^${esc(path)}: tensor 'a': has shape \\[2, 3, 4\\]; only a 2-D tensor can be read transposed$`));
    } finally {
      f.close();
    }
    expect(() => f.readBytes('a')).toThrow(/file already closed/);
  });

  test('the writer checks counts, names and completeness', () => {
    const path = join(tmp, 'w.safetensors');
    const w = new SafetensorsWriter(path, [
      { name: 'a', shape: [2, 2], dtype: 'F32' },
      { name: 'b', shape: [3], dtype: 'BF16' },
    ]);
    expect(() => w.write('a', new Float32Array(3))).toThrow(
      new RegExp(`^${esc(path)}: tensor 'a' got 3 values, its planned shape needs 4$`),
    );
    expect(() => w.write('c', new Float32Array(1))).toThrow(new RegExp(`${esc(path)}: tensor 'c' is not in the planned header`));
    w.write('a', new Float32Array(4));
    expect(() => w.finish()).toThrow(new RegExp(`^${esc(path)}: 1 planned tensors never written \\(first: 'b'\\)$`));
    expect(() => new SafetensorsWriter(join(tmp, 'w2.safetensors'), [
      { name: 'a', shape: [1], dtype: 'F32' },
      { name: 'a', shape: [1], dtype: 'F32' },
    ])).toThrow(/tensor 'a' planned twice/);
  });
});

describe('malformed files are refused with a message naming the file and the problem', () => {
  const F32x4 = { dtype: 'F32', shape: [2, 2] };

  test('missing file', () => {
    const p = join(tmp, 'absent.safetensors');
    expect(() => SafetensorsFile.open(p)).toThrow(new RegExp(`^${esc(p)}: cannot open \\(ENOENT\\)$`));
  });

  test('shorter than the 8-byte length', () => {
    const p = join(tmp, 'short.safetensors');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expect(() => SafetensorsFile.open(p)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(p)).toThrow(new RegExp(`^${esc(p)}: file is 3 bytes, too short for a safetensors header$`));
  });

  test('header length past the end of the file', () => {
    const p = rawFile('hlen.safetensors', { a: { ...F32x4, data_offsets: [0, 16] } }, 16, 1000n);
    const size = readFileSync(p).length;
    expect(() => SafetensorsFile.open(p)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(p)).toThrow(
      new RegExp(`^${esc(p)}: header length 1000 runs past the end of the file \\(${size} bytes\\); the file is truncated or not safetensors$`),
    );
    const huge = rawFile('hlen2.safetensors', {}, 0, 2n ** 63n);
    expect(() => SafetensorsFile.open(huge)).toThrow(/header length 9223372036854775808 runs past the end of the file/);
  });

  test('an empty matrix with a huge other dimension reads transposed at once (no walk over its rows)', async () => {
    for (const dtype of ['BF16', 'F32']) {
      for (const shape of [[2 ** 40, 0], [0, 2 ** 40]]) {
        const p = rawFile(`empty-${dtype}-${shape[0]}.safetensors`, { w: { dtype, shape, data_offsets: [0, 0] } }, 0);
        const f = SafetensorsFile.open(p);
        try {
          expect(f.readFloat32Transposed('w')).toEqual(new Float32Array(0));
          expect(await f.readFloat32TransposedAsync('w')).toEqual(new Float32Array(0));
        } finally {
          f.close();
        }
      }
    }
  }, 10_000);

  test('header that is not JSON, or not an object', () => {
    const p = join(tmp, 'notjson.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(5n);
    writeFileSync(p, Buffer.concat([len, Buffer.from('{abc}')]));
    expect(() => SafetensorsFile.open(p)).toThrow(new RegExp(`^${esc(p)}: header is not valid JSON`));
    const arr = rawFile('array.safetensors', [1, 2]);
    expect(() => SafetensorsFile.open(arr)).toThrow(new RegExp(`^${esc(arr)}: header is not a JSON object$`));
  });

  test('truncated data area', () => {
    const p = join(tmp, 'trunc.safetensors');
    const w = new SafetensorsWriter(p, [
      { name: 'first', shape: [4], dtype: 'F32' },
      { name: 'second', shape: [8], dtype: 'F32' },
    ]);
    w.write('first', new Float32Array(4));
    w.write('second', new Float32Array(8));
    w.finish();
    const full = readFileSync(p).length;
    const open = SafetensorsFile.open(p); // a file that shrinks after it was opened
    truncateSync(p, full - 10);
    try {
      expect(open.readFloat32('first')).toHaveLength(4);
      expect(() => open.readFloat32('second')).toThrow(new RegExp(`^${esc(p)}: tensor 'second' ends past the end of the file$`));
    } finally {
      open.close();
    }
    expect(() => SafetensorsFile.open(p)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(p)).toThrow(
      new RegExp(`^${esc(p)}: tensor 'second': data_offsets \\[16, 48\\] fall outside the data area of 38 bytes \\(truncated file\\?\\)$`),
    );
  });

  test('overlapping tensors', () => {
    const p = rawFile('overlap.safetensors', {
      a: { ...F32x4, data_offsets: [0, 16] },
      b: { ...F32x4, data_offsets: [8, 24] },
    }, 24);
    expect(() => SafetensorsFile.open(p)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(p)).toThrow(new RegExp(`^${esc(p)}: tensors 'a' \\[0, 16\\) and 'b' \\[8, 24\\) overlap$`));
  });

  test('byte size that does not match dtype and shape', () => {
    const p = rawFile('size.safetensors', { a: { ...F32x4, data_offsets: [0, 12] } }, 12);
    expect(() => SafetensorsFile.open(p)).toThrow(CheckpointError);
    expect(() => SafetensorsFile.open(p)).toThrow(new RegExp(`^${esc(p)}: tensor 'a': holds 12 bytes but F32 \\[2,2\\] needs 16$`));
  });

  test('bad entries: unknown dtype, bad shape, bad offsets', () => {
    const dt = rawFile('dtype.safetensors', { a: { dtype: 'Q4', shape: [2], data_offsets: [0, 1] } }, 1);
    expect(() => SafetensorsFile.open(dt)).toThrow(new RegExp(`^${esc(dt)}: tensor 'a': unknown dtype "Q4"$`));
    const sh = rawFile('shape.safetensors', { a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, 8);
    expect(() => SafetensorsFile.open(sh)).toThrow(new RegExp(`^${esc(sh)}: tensor 'a': shape \\[2,-1\\] is not a list of non-negative integers$`));
    const of = rawFile('offs.safetensors', { a: { ...F32x4, data_offsets: [16] } }, 16);
    expect(() => SafetensorsFile.open(of)).toThrow(new RegExp(`^${esc(of)}: tensor 'a': data_offsets \\[16\\] is not \\[begin, end\\]$`));
    const rev = rawFile('rev.safetensors', { a: { ...F32x4, data_offsets: [16, 0] } }, 16);
    expect(() => SafetensorsFile.open(rev)).toThrow(/tensor 'a': data_offsets \[16, 0\] fall outside the data area of 16 bytes/);
  });
});
