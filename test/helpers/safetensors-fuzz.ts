/**
 * Fuzzing the safetensors reader (fast-check): valid files mutated in the header's JSON (dtypes, shapes, offsets,
 * entries, metadata), in the header length, by truncation, by byte flips, or replaced by random bytes. Every input
 * must open and read without error, or fail with a CheckpointError that names the tensor or the field; never another
 * exception, never a hang. Both the synchronous and the asynchronous readers run on each input.
 */
import fc from 'fast-check';
import { CheckpointError } from '../../lib/errors.js';
import { SafetensorsFile, SafetensorsWriter } from '../../lib/model/safetensors.js';
import { MemorySink, bytesSource, type ByteSource } from '../../lib/platform/bytes.js';

/** A valid file: float tensors of each dtype (2-D, 1-D, empty, scalar) and non-float ones. */
function seedFile(): Uint8Array {
  const sink = new MemorySink('seed');
  const plan = [
    { name: 'a.weight', shape: [3, 4], dtype: 'BF16' as const },
    { name: 'b', shape: [5], dtype: 'F32' as const },
    { name: 'c', shape: [2, 2], dtype: 'F16' as const },
    { name: 'empty', shape: [0, 3], dtype: 'F32' as const },
    { name: 'scalar', shape: [], dtype: 'F16' as const },
  ];
  const w = new SafetensorsWriter(sink, plan);
  for (const t of plan) w.write(t.name, Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, (_, i) => i - 1.5));
  w.finish();
  return sink.bytes();
}

const SEED = seedFile();
const HEADER_LEN = Number(new DataView(SEED.buffer).getBigUint64(0, true));
const HEADER = JSON.parse(new TextDecoder().decode(SEED.subarray(8, 8 + HEADER_LEN))) as Record<string, Record<string, unknown>>;
const DATA = SEED.subarray(8 + HEADER_LEN);
const NAMES = Object.keys(HEADER).filter((k) => k !== '__metadata__');

/** A file from a header object and a data area (length field correct unless `length` is given). */
function fileOf(header: unknown, data: Uint8Array, length?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined));
const dim = fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom(2 ** 31, 2 ** 53, 1e300, 0.5, -0, Number.MAX_SAFE_INTEGER));
const offset = fc.oneof(fc.integer({ min: -5, max: DATA.length + 10 }), fc.constantFrom(2 ** 32, 2 ** 53, 1e300, 1.5, Number.MAX_SAFE_INTEGER));
const fieldValue = {
  dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL', 'F64', 'F8_E4M3', 'f32', '', 'X'), anyJson),
  shape: fc.oneof(fc.array(dim, { maxLength: 4 }), anyJson),
  data_offsets: fc.oneof(fc.tuple(offset, offset), fc.array(offset, { maxLength: 3 }), anyJson),
};

/** One mutation of a tensor entry's field, or of the entry as a whole. */
const entryMutation = fc.record({
  name: fc.constantFrom(...NAMES),
  change: fc.oneof(
    fc.record({ field: fc.constant('dtype' as const), value: fieldValue.dtype }),
    fc.record({ field: fc.constant('shape' as const), value: fieldValue.shape }),
    fc.record({ field: fc.constant('data_offsets' as const), value: fieldValue.data_offsets }),
    fc.record({ field: fc.constant('entry' as const), value: anyJson }),
    fc.record({ field: fc.constant('rename' as const), value: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...NAMES, '__metadata__', '__proto__')) }),
  ),
});

const headerMutation = fc.record({ changes: fc.array(entryMutation, { minLength: 1, maxLength: 4 }), metadata: fc.option(anyJson), cut: fc.option(fc.nat(DATA.length)) }).map(({ changes, metadata, cut }) => {
  const h = JSON.parse(JSON.stringify(HEADER)) as Record<string, unknown>;
  for (const { name, change } of changes) {
    const e = h[name];
    if (change.field === 'entry') h[name] = change.value;
    else if (change.field === 'rename') {
      delete h[name];
      h[change.value as string] = e;
    } else if (e && typeof e === 'object') (e as Record<string, unknown>)[change.field] = change.value;
  }
  if (metadata !== null) h['__metadata__'] = metadata;
  return fileOf(h, cut === null ? DATA : DATA.subarray(0, cut));
});

const lengthMutation = fc
  .oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: -8, max: 8 }).map((d) => BigInt(Math.max(0, HEADER_LEN + d))))
  .map((len) => {
    const out = SEED.slice();
    new DataView(out.buffer).setBigUint64(0, len, true);
    return out;
  });

const truncation = fc.nat(SEED.length).map((n) => SEED.slice(0, n));

const byteFlips = fc.array(fc.tuple(fc.nat(SEED.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((flips) => {
  const out = SEED.slice();
  for (const [at, v] of flips) out[at] = v;
  return out;
});

/** Random bytes as the header (length field correct), the seed's data after it. */
const headerBytes = fc.uint8Array({ maxLength: 64 }).map((junk) => {
  const out = new Uint8Array(8 + junk.length + DATA.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(junk.length), true);
  out.set(junk, 8);
  out.set(DATA, 8 + junk.length);
  return out;
});

/** Every malformed-input generator. */
export const malformedFile: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: headerMutation },
  { weight: 1, arbitrary: lengthMutation },
  { weight: 1, arbitrary: truncation },
  { weight: 2, arbitrary: byteFlips },
  { weight: 1, arbitrary: headerBytes },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
);

/** A CheckpointError's message names a tensor or a field of the file, and the source. */
const NAMED = /^fuzz\.safetensors: (.*tensors? '|header|file is \d+ bytes)/s;

function check(e: unknown): void {
  if (!(e instanceof CheckpointError)) throw new Error(`not a CheckpointError: ${(e as Error)?.stack ?? String(e)}`);
  if (!NAMED.test(e.message)) throw new Error(`the message names no tensor or field: ${e.message}`);
}

/** Read everything synchronously; rethrows anything that is not a well-named CheckpointError. */
function readAllSync(src: ByteSource): void {
  let f: SafetensorsFile;
  try {
    f = SafetensorsFile.openSourceSync(src);
  } catch (e) {
    return check(e);
  }
  for (const name of f.entries.keys()) {
    for (const read of [() => f.readBytes(name), () => f.readFloat32(name), () => f.readFloat32Transposed(name)]) {
      try {
        read();
      } catch (e) {
        check(e);
      }
    }
  }
}

async function readAllAsync(src: ByteSource): Promise<void> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.openSource(src);
  } catch (e) {
    return check(e);
  }
  for (const name of f.entries.keys()) {
    for (const read of [() => f.readBytesAsync(name), () => f.readFloat32Async(name), () => f.readFloat32TransposedAsync(name)]) {
      try {
        await read();
      } catch (e) {
        check(e);
      }
    }
  }
}

/** Run `numRuns` cases; resolves when every one passed (fast-check throws with the shrunk counterexample otherwise). */
export async function fuzzReader(numRuns: number, seed?: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(malformedFile, async (bytes) => {
      readAllSync(bytesSource(bytes, 'fuzz.safetensors'));
      await readAllAsync(bytesSource(bytes, 'fuzz.safetensors'));
    }),
    { numRuns, ...(seed !== undefined ? { seed } : {}) },
  );
}

export { SEED as seedFile };
