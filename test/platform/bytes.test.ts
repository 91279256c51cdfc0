/**
 * Checkpoints through byte sources and sinks (lib/platform/bytes.ts): the same values from a file, memory, a Blob
 * and an HTTP server answering Range requests, read synchronously and asynchronously; writers to memory and to a
 * directory handle give the bytes the file writer gives.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../lib/errors.js';
import { Checkpoint, CheckpointWriter } from '../../lib/model/checkpoint.js';
import { SafetensorsFile, SafetensorsWriter, type DType } from '../../lib/model/safetensors.js';
import { CHUNK_VALUES } from '../../lib/model/dtype-convert.js';
import { MemoryFolder, MemorySink, DirectoryHandleFolder, blobSource, bytesSource, httpSource, type ByteSource, type DirectoryHandleLike } from '../../lib/platform/bytes.js';
import { expectedTensors } from '../../lib/model/architecture.js';
import { TinyRandom, writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let server: Server;
let base: string;
const requests: { path: string; range: string | undefined }[] = [];
let honourRange = true;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-bytes-'));
  server = createServer((req, res) => {
    const file = join(tmp, decodeURIComponent(req.url!.slice(1)));
    requests.push({ path: req.url!, range: req.headers.range });
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m || !honourRange) {
      res.writeHead(200, { 'content-length': body.length }).end(body);
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), body.length - 1);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}` }).end(body.subarray(start, end + 1));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

/** A file with a 2-D tensor larger than one decoding chunk (so reads span several chunks), in `dtype`. */
function bigFile(dtype: DType): { path: string; values: Map<string, Float32Array>; shapes: Map<string, number[]> } {
  const rng = new TinyRandom(7);
  const shapes = new Map<string, number[]>([
    ['w', [700, 1000]], // 700k values > CHUNK_VALUES
    ['odd', [13, 9]],
    ['v', [5]],
  ]);
  expect(700 * 1000).toBeGreaterThan(CHUNK_VALUES);
  const path = join(tmp, `big-${dtype}.safetensors`);
  const w = new SafetensorsWriter(path, [...shapes].map(([name, shape]) => ({ name, shape, dtype })));
  const values = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const v = rng.normals(shape.reduce((a, b) => a * b, 1), 1);
    w.write(name, v);
  }
  w.finish();
  const f = SafetensorsFile.open(path);
  for (const name of shapes.keys()) values.set(name, f.readFloat32(name));
  f.close();
  return { path, values, shapes };
}

const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe.each(['F32', 'BF16', 'F16'] as const)('%s: every source reads the file values', (dtype) => {
  let big: ReturnType<typeof bigFile>;
  beforeAll(() => {
    big = bigFile(dtype);
  });

  const sources: [string, () => Promise<ByteSource>][] = [
    ['memory', async () => bytesSource(new Uint8Array(readFileSync(big.path)), 'mem')],
    ['Blob', async () => blobSource(new Blob([readFileSync(big.path)]), 'blob')],
    ['HTTP Range', async () => httpSource(`${base}/${big.path.slice(tmp.length + 1)}`)],
  ];
  test.each(sources)('%s', async (_, make) => {
    const f = await SafetensorsFile.openSource(await make());
    try {
      for (const [name, shape] of big.shapes) {
        expect([name, same(await f.readFloat32Async(name), big.values.get(name)!)]).toEqual([name, true]);
        if (shape.length === 2) {
          const file = SafetensorsFile.open(big.path);
          const want = file.readFloat32Transposed(name);
          file.close();
          expect([name, same(await f.readFloat32TransposedAsync(name), want)]).toEqual([name, true]);
        }
      }
    } finally {
      f.close();
    }
  });
});

test('HTTP: only ranges are requested, none larger than a chunk; a server ignoring Range is refused', async () => {
  const big = bigFile('BF16');
  const url = `${base}/${big.path.slice(tmp.length + 1)}`;
  requests.length = 0;
  const f = await SafetensorsFile.openSource(await httpSource(url));
  await f.readFloat32Async('w');
  const sizes = requests.map((r) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    expect(m).not.toBeNull();
    return Number(m![2]) - Number(m![1]) + 1;
  });
  expect(Math.max(...sizes)).toBeLessThanOrEqual(CHUNK_VALUES * 2);
  expect(sizes.length).toBeGreaterThan(3); // length, header, then 2 chunks at least
  honourRange = false;
  try {
    await expect(httpSource(url)).rejects.toThrow(/got HTTP 200; the server must answer Range requests with 206/);
  } finally {
    honourRange = true;
  }
});

test('a sync read of an async-only source is a CheckpointError naming the source', async () => {
  const big = bigFile('F32');
  const f = await SafetensorsFile.openSource(blobSource(new Blob([readFileSync(big.path)]), 'x.safetensors'));
  expect(() => f.readFloat32('v')).toThrow(new CheckpointError('x.safetensors: this source reads asynchronously only; use the *Async readers'));
});

test.each([undefined, 40_000])('Checkpoint.openSources over HTTP reads what Checkpoint.open reads (maxShardBytes %p)', async (maxShardBytes) => {
  const dir = join(tmp, `ckpt-${maxShardBytes ?? 'single'}`);
  const t = writeTinyCheckpoint(dir, { dtype: 'BF16', ...(maxShardBytes ? { maxShardBytes } : {}) });
  const open = async (file: string): Promise<ByteSource | null> => {
    try {
      return await httpSource(`${base}/${dir.slice(tmp.length + 1)}/${file}`);
    } catch {
      return null; // 404: not in the folder
    }
  };
  const remote = await Checkpoint.openSources('remote', open);
  const local = Checkpoint.open(t.dir);
  try {
    expect(remote.sharded).toBe(maxShardBytes !== undefined);
    for (const { name, shape } of expectedTensors(t.config)) {
      expect([name, same(await remote.readAsync(name), local.read(name))]).toEqual([name, true]);
      if (shape.length === 2) expect([name, same(await remote.readTransposedAsync(name), local.readTransposed(name))]).toEqual([name, true]);
    }
  } finally {
    remote.close();
    local.close();
  }
});

/** An in-memory FileSystemDirectoryHandle (the two methods the sink folder uses). */
function fakeDirectory(): { handle: DirectoryHandleLike; files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  const handle: DirectoryHandleLike = {
    getFileHandle: async (name) => ({
      createWritable: async () => {
        let data = new Uint8Array(0);
        return {
          write: async ({ position, data: d }) => {
            await new Promise((r) => setTimeout(r, 0)); // storage is asynchronous
            if (position + d.length > data.length) {
              const grown = new Uint8Array(position + d.length);
              grown.set(data);
              data = grown;
            }
            data.set(d, position);
          },
          close: async () => void files.set(name, data),
        };
      },
    }),
    removeEntry: async (name) => void files.delete(name),
  };
  return { handle, files };
}

describe.each([
  ['dense BF16', { dtype: 'BF16' as const } as { dtype: 'BF16' | 'F32'; maxShardBytes?: number }],
  ['dense F32, sharded', { dtype: 'F32' as const, maxShardBytes: 40_000 }],
])('CheckpointWriter to sink folders gives the file bytes: %s', (_, options) => {
  test('memory and a directory handle', async () => {
    const dir = join(tmp, `w-${options.dtype}-${options.maxShardBytes ?? 0}`);
    const t = writeTinyCheckpoint(dir, options);
    const plan = expectedTensors(t.config);
    const mem = new MemoryFolder();
    const d = fakeDirectory();
    for (const folder of [mem, new DirectoryHandleFolder(d.handle)]) {
      const w = new CheckpointWriter('out', plan, { ...options, folder });
      for (const { name } of plan) w.write(name, t.tensors.get(name)!);
      w.finish();
      await w.finished();
    }
    const onDisk = readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')).sort();
    expect([...mem.files.keys()].sort()).toEqual(onDisk);
    expect([...d.files.keys()].sort()).toEqual(onDisk);
    for (const f of onDisk) {
      const want = readFileSync(join(dir, f));
      expect([f, Buffer.from(mem.files.get(f)!.bytes()).equals(want)]).toEqual([f, true]);
      expect([f, Buffer.from(d.files.get(f)!).equals(want)]).toEqual([f, true]);
    }
  });
});

test('compressed checkpoint to memory equals the file one', async () => {
  const dir = join(tmp, 'packed-src');
  const t = writeTinyCheckpoint(dir, { dtype: 'BF16' });
  const plan = expectedTensors(t.config);
  const compress = { format: 'sparse-24-bitmask' as const, structure: '2:4', names: new Set(plan.filter((p) => p.name.endsWith('proj.weight')).map((p) => p.name)) };
  const mem = new MemoryFolder();
  const outDir = join(tmp, 'packed-out');
  (await import('node:fs')).mkdirSync(outDir);
  for (const folder of [mem, undefined]) {
    const w = new CheckpointWriter(outDir, plan, { dtype: 'BF16', compress, ...(folder ? { folder } : {}) });
    for (const { name, shape } of plan) {
      const v = t.tensors.get(name)!.slice();
      if (compress.names.has(name)) for (let i = 0; i < v.length; i += 4) v[i] = v[i + 1] = 0;
      expect(shape.length).toBeGreaterThan(0);
      w.write(name, v);
    }
    w.finish();
  }
  expect([...mem.files.keys()]).toEqual(['model.safetensors']);
  expect(Buffer.from(mem.files.get('model.safetensors')!.bytes()).equals(readFileSync(join(outDir, 'model.safetensors')))).toBe(true);
  expect(readdirSync(outDir)).toEqual(['model.safetensors']); // temporary parts removed
});

test('MemorySink: positional writes across chunk boundaries, parts() for a Blob', () => {
  const s = new MemorySink();
  const a = new Uint8Array(100).fill(7);
  s.write(MemorySink.CHUNK - 50, a);
  s.write(3, Uint8Array.of(1, 2));
  const all = s.bytes();
  expect(all.length).toBe(MemorySink.CHUNK + 50);
  expect([...all.subarray(0, 6)]).toEqual([0, 0, 0, 1, 2, 0]);
  expect(all.subarray(MemorySink.CHUNK - 50).every((b) => b === 7)).toBe(true);
  expect(s.parts().map((p) => p.length)).toEqual([MemorySink.CHUNK, 50]);
});
