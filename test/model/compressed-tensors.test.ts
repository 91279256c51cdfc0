/**
 * compressed-tensors checkpoints (lib/model/compressed-tensors.ts): what prune writes with format 'compressed' is
 * decoded here by an independent decoder (plain loops over the file bytes) back to exactly the dense pruned weights;
 * a compressed folder re-saved dense is byte-identical to the dense save of the same prune; the config block; and
 * the reader's validation of corrupted files.
 */
import { closeSync, cpSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../lib/errors.js';
import { LoraAdapters } from '../../lib/finetune/lora.js';
import { writeMergedCheckpoint } from '../../lib/finetune/peft.js';
import { loadModel } from '../../lib/model/load.js';
import { Checkpoint, CheckpointWriter, compressOptions } from '../../lib/model/checkpoint.js';
import { expectedTensors, linearTensorName } from '../../lib/model/architecture.js';
import { COMPRESSED_TENSORS_VERSION } from '../../lib/model/compressed-tensors.js';
import { saveCheckpoint } from '../../lib/model/save.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { parseStructure, prune, type PruneReport } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { TinyRandom, writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let counter = 0;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-ct-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------
// An independent reader: safetensors header, then plain loops over bytes (no library code).

interface RawEntry {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

function readRaw(file: string): Map<string, RawEntry> {
  const buf = readFileSync(file);
  let n = 0;
  for (let i = 7; i >= 0; i--) n = n * 256 + buf[i]!;
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, RawEntry>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])) });
  }
  return out;
}

function readRawFolder(dir: string): Map<string, RawEntry> {
  const out = new Map<string, RawEntry>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors')).sort()) for (const [k, v] of readRaw(join(dir, f))) out.set(k, v);
  return out;
}

/** Little-endian signed 64-bit integers (small non-negative values here) from bytes, one loop per value. */
function int64s(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 8) {
    let v = 0;
    for (let j = 7; j >= 0; j--) v = v * 256 + bytes[i + j]!;
    out.push(v);
  }
  return out;
}

/**
 * Decode one compressed weight to its dense bytes (2 bytes per value): for each row, for each column, bit
 * (col % 8) of byte (col / 8) of the row's bitmask says whether the next stored value goes there.
 */
function independentDecode(parts: Map<string, RawEntry>, prefix: string, format: string): { shape: number[]; bytes: Uint8Array } {
  const shape = int64s(parts.get(`${prefix}.shape`)!.bytes);
  const [rows, cols] = shape as [number, number];
  const bitmask = parts.get(`${prefix}.bitmask`)!.bytes;
  const values = parts.get(`${prefix}.compressed`)!.bytes;
  const rowOffsets = format === 'sparse-bitmask' ? int64s(parts.get(`${prefix}.row_offsets`)!.bytes) : null;
  const perRow = Math.ceil(cols / 8);
  const out = new Uint8Array(rows * cols * 2);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    if (rowOffsets) expect(rowOffsets[r]).toBe(k);
    for (let c = 0; c < cols; c++) {
      const byte = bitmask[r * perRow + Math.floor(c / 8)]!;
      if ((byte >> (c % 8)) & 1) {
        out[(r * cols + c) * 2] = values[k * 2]!;
        out[(r * cols + c) * 2 + 1] = values[k * 2 + 1]!;
        k++;
      }
    }
  }
  expect(k * 2).toBe(values.length);
  return { shape, bytes: out };
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

// ---------------------------------------------------------------------------------------------------------------

/** A BF16 model whose widths (36, 28) are multiples of 4 but not of 8: bitmask rows end in padding bits. */
function tinyModel(): TinyCheckpoint {
  return writeTinyCheckpoint(join(tmp, `in-${counter++}`), {
    seed: 5,
    dtype: 'BF16',
    hiddenSize: 36,
    numHeads: 2,
    numKvHeads: 1,
    intermediateSize: 28,
  });
}

async function prunePair(model: TinyCheckpoint, structure: string): Promise<{ dense: PruneReport; compressed: PruneReport }> {
  const common = { model: model.dir, method: 'magnitude' as const, sparsity: 0.5, structure: parseStructure(structure) };
  const dense = await prune({ ...common, out: join(tmp, `dense-${counter++}`) });
  const compressed = await prune({ ...common, out: join(tmp, `compressed-${counter++}`), format: 'compressed' });
  return { dense, compressed };
}

describe.each([
  ['unstructured', 'sparse-bitmask'],
  ['2:4', 'sparse-24-bitmask'],
])('prune %s with format compressed', (structure, format) => {
  let model: TinyCheckpoint;
  let pair: { dense: PruneReport; compressed: PruneReport };
  beforeAll(async () => {
    model = tinyModel();
    pair = await prunePair(model, structure);
  });

  test(`an independent decoder gets exactly the dense pruned weights (${format})`, async () => {
    const dense = readRawFolder(pair.dense.out);
    const packed = readRawFolder(pair.compressed.out);
    const c = model.config;
    let compressedWeights = 0;
    for (const { name, shape } of expectedTensors(c)) {
      const d = dense.get(name)!;
      if (!name.startsWith('model.layers.') || !LINEAR_NAMES.some((n) => name.endsWith(`.${n}.weight`))) {
        expect({ name, same: sameBytes(packed.get(name)?.bytes, d.bytes) }).toEqual({ name, same: true }); // stays dense
        continue;
      }
      const prefix = name.slice(0, -'.weight'.length);
      expect(packed.has(name)).toBe(false);
      expect(packed.get(`${prefix}.shape`)!.dtype).toBe('I64');
      expect(packed.get(`${prefix}.shape`)!.shape).toEqual(format === 'sparse-24-bitmask' ? [2, 1] : [2]);
      expect(packed.get(`${prefix}.bitmask`)!.dtype).toBe('U8');
      expect(packed.get(`${prefix}.bitmask`)!.shape).toEqual([shape[0], Math.ceil(shape[1]! / 8)]);
      expect(packed.get(`${prefix}.compressed`)!.dtype).toBe('BF16');
      if (format === 'sparse-24-bitmask') {
        expect(packed.get(`${prefix}.compressed`)!.shape).toEqual([shape[0], shape[1]! / 2]);
        expect(packed.has(`${prefix}.row_offsets`)).toBe(false);
      } else {
        expect(packed.get(`${prefix}.row_offsets`)!.dtype).toBe('I64');
        expect(packed.get(`${prefix}.row_offsets`)!.shape).toEqual([shape[0]]);
      }
      const decoded = independentDecode(packed, prefix, format);
      expect(decoded.shape).toEqual(shape);
      expect({ name, same: sameBytes(decoded.bytes, d.bytes) }).toEqual({ name, same: true });
      compressedWeights++;
    }
    expect(compressedWeights).toBe(c.numLayers * LINEAR_NAMES.length);
  });

  test('config.json carries the compressed-tensors block; the report states the bytes', async () => {
    const config = JSON.parse(readFileSync(join(pair.compressed.out, 'config.json'), 'utf8')) as Record<string, unknown>;
    const qc = config['quantization_config'] as Record<string, unknown>;
    expect(Object.keys(qc)).toEqual(['quant_method', 'sparsity_config', 'transform_config', 'version']);
    const sc = qc['sparsity_config'] as Record<string, unknown>;
    expect(qc).toEqual({
      quant_method: 'compressed-tensors',
      sparsity_config: {
        format,
        global_sparsity: sc['global_sparsity'],
        ignore: ['lm_head'],
        registry_requires_subclass: false,
        sparsity_structure: structure,
        targets: ['Linear'],
      },
      transform_config: {},
      version: COMPRESSED_TENSORS_VERSION,
    });
    // global_sparsity: zeros over every parameter, counted independently in the dense folder
    let zeros = 0;
    let params = 0;
    for (const e of readRawFolder(pair.dense.out).values()) {
      for (let i = 0; i < e.bytes.length; i += 2) {
        params++;
        if (e.bytes[i] === 0 && (e.bytes[i + 1]! & 0x7f) === 0) zeros++;
      }
    }
    expect(sc['global_sparsity']).toBe(zeros / params);
    const { storage } = pair.compressed;
    expect(storage.format).toBe('compressed');
    expect(storage.sparseFormat).toBe(format);
    expect(storage.denseDataBytes).toBe(pair.dense.storage.dataBytes);
    expect(storage.linearRatio).toBeLessThan(0.75); // narrow rows: int64 offsets and padding weigh more than at scale
    expect(pair.dense.storage.linearRatio).toBe(1);
    expect(storage.safetensorsBytes).toBeLessThan(pair.dense.storage.safetensorsBytes);
    expect(pair.compressed.sparsity).toEqual(pair.dense.sparsity);
  });

  test('a compressed folder re-saved dense is byte-identical to the dense save of the same prune', async () => {
    const ckpt = Checkpoint.open(pair.compressed.out);
    const out = join(tmp, `resaved-${counter++}`);
    try {
      expect(ckpt.sparsity?.format).toBe(format);
      expect(ckpt.mainDtype()).toBe('BF16');
      expect(ckpt.dtypeOf(linearTensorName(0, 'q_proj'))).toBe('BF16');
      const storage = saveCheckpoint(ckpt, { out });
      expect(storage.format).toBe('dense');
    } finally {
      ckpt.close();
    }
    const files = readdirSync(pair.dense.out).filter((f) => f !== 'report.json').sort();
    expect(readdirSync(out).sort()).toEqual(files);
    for (const f of files) expect({ f, same: readFileSync(join(out, f)).equals(readFileSync(join(pair.dense.out, f))) }).toEqual({ f, same: true });
    // and back: the dense pruned folder compressed gives the same files as prune wrote
    const again = join(tmp, `recompressed-${counter++}`);
    const dense = Checkpoint.open(pair.dense.out);
    try {
      saveCheckpoint(dense, { out: again, format: 'compressed' });
    } finally {
      dense.close();
    }
    for (const f of readdirSync(pair.compressed.out).filter((x) => x !== 'report.json')) {
      expect({ f, same: readFileSync(join(again, f)).equals(readFileSync(join(pair.compressed.out, f))) }).toEqual({ f, same: true });
    }
  });
});

test('sharded compressed checkpoints: index lists every part; read back equals the dense shards', async () => {
  const model = tinyModel();
  const common = { model: model.dir, method: 'magnitude' as const, sparsity: 0.6, maxShardBytes: 4000 };
  const dense = await prune({ ...common, out: join(tmp, `sd-${counter++}`) });
  const packed = await prune({ ...common, out: join(tmp, `sc-${counter++}`), format: 'compressed' });
  const index = JSON.parse(readFileSync(join(packed.out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  expect(Object.keys(index.weight_map)).toContain(`${linearTensorName(1, 'down_proj').slice(0, -7)}.row_offsets`);
  const a = Checkpoint.open(dense.out);
  const b = Checkpoint.open(packed.out);
  try {
    expect(b.sharded).toBe(true);
    for (const { name } of expectedTensors(model.config)) expect({ name, same: Buffer.from(a.read(name).buffer).equals(Buffer.from(b.read(name).buffer)) }).toEqual({ name, same: true });
  } finally {
    a.close();
    b.close();
  }
});

test('sparse-24-bitmask refuses a weight that is not 2:4, naming it', async () => {
  const model = tinyModel();
  const ckpt = Checkpoint.open(model.dir);
  try {
    expect(() => saveCheckpoint(ckpt, { out: join(tmp, `x-${counter++}`), format: 'compressed', structure: '2:4' })).toThrow(
      /model\.layers\.0\.self_attn\.q_proj\.weight: row 0, columns 0\.\.3 hold \d non-zeros; sparse-24-bitmask needs at most 2 of every 4/,
    );
  } finally {
    ckpt.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// validation

describe('reading validates compressed weights', () => {
  let src: string;
  let entries: Map<string, RawEntry>;
  let dataStart: number;
  let header: Record<string, { data_offsets: [number, number] }>;
  const q = 'model.layers.0.self_attn.q_proj';

  beforeAll(async () => {
    const model = tinyModel();
    src = (await prune({ model: model.dir, out: join(tmp, `v-${counter++}`), method: 'magnitude', sparsity: 0.5, format: 'compressed' })).out;
    entries = readRaw(join(src, 'model.safetensors'));
    const buf = readFileSync(join(src, 'model.safetensors'));
    const n = Number(buf.readBigUInt64LE(0));
    dataStart = 8 + n;
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as typeof header;
  });

  /** A copy of the compressed folder with `bytes` written over tensor `name` (same length), or config.json edited. */
  function corrupted(name: string | null, patch: (b: Uint8Array) => void, config?: (c: Record<string, unknown>) => void): string {
    const dir = join(tmp, `bad-${counter++}`);
    rmSync(dir, { recursive: true, force: true });
    cpSync(src, dir, { recursive: true });
    if (name) {
      const b = new Uint8Array(entries.get(name)!.bytes);
      patch(b);
      const fd = openSync(join(dir, 'model.safetensors'), 'r+');
      writeSync(fd, b, 0, b.length, dataStart + header[name]!.data_offsets[0]);
      closeSync(fd);
    }
    if (config) {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      config(c);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    }
    return dir;
  }

  function readQ(dir: string): () => void {
    return () => {
      const c = Checkpoint.open(dir);
      try {
        c.read(`${q}.weight`);
      } finally {
        c.close();
      }
    };
  }

  test('a bit set without its value: values count != popcount', async () => {
    const dir = corrupted(`${q}.bitmask`, (b) => {
      const last = b.length - 1;
      b[last] = b[last]! | (b[last]! & 1 ? 2 : 1); // one more bit in the last row (columns 0..1 of its last byte)
    });
    expect(readQ(dir)).toThrow(/weight 'model\.layers\.0\.self_attn\.q_proj\.weight' \(sparse-bitmask\): 'bitmask' has more bits set than the \d+ values in 'compressed'/);
  });

  test('a padding bit past the last column', async () => {
    const dir = corrupted(`${q}.bitmask`, (b) => {
      b[4] = b[4]! | 0x80; // row 0, byte 4 holds columns 32..35: bit 7 is column 39
    });
    expect(readQ(dir)).toThrow(/'bitmask' row 0 has bits set past column 35/);
  });

  test('row offsets inconsistent with the bitmask', async () => {
    const dir = corrupted(`${q}.row_offsets`, (b) => {
      b[8] = b[8]! + 1; // row 1's offset
    });
    expect(readQ(dir)).toThrow(/'row_offsets'\[1\] is \d+, but the bitmask rows before it hold \d+ values/);
  });

  test('stored shape differing from config.json', async () => {
    const dir = corrupted(`${q}.shape`, (b) => {
      b[0] = 35;
    });
    expect(readQ(dir)).toThrow(/'shape' holds \[35, 36\], config\.json implies \[36, 36\]/);
  });

  test('a missing part, a quantized format, an unknown sparsity format', async () => {
    expect(() => Checkpoint.open(corrupted(null, () => {}, (c) => {
      (c['quantization_config'] as Record<string, unknown>)['format'] = 'pack-quantized';
    }))).toThrow(/quantization_config has the quantized compressed-tensors format 'pack-quantized', which is not supported/);
    expect(() => Checkpoint.open(corrupted(null, () => {}, (c) => {
      ((c['quantization_config'] as Record<string, unknown>)['sparsity_config'] as Record<string, unknown>)['format'] = 'marlin-24';
    }))).toThrow(/sparsity_config\.format "marlin-24" is not supported; readable: dense, sparse-bitmask, sparse-24-bitmask/);
    expect(() => Checkpoint.open(corrupted(null, () => {}, (c) => {
      ((c['quantization_config'] as Record<string, unknown>)['sparsity_config'] as Record<string, unknown>)['format'] = 'sparse-24-bitmask';
    }))).toThrow(/weight 'model\.layers\.0\.self_attn\.q_proj\.weight' \(sparse-24-bitmask\): 'shape' has shape \[2\]; a sparse-24-bitmask weight of shape \[36, 36\] \(from config\.json\) needs \[2, 1\]/);
  });

  test('the dense format of compressed-tensors reads as a plain checkpoint', async () => {
    const model = tinyModel();
    const raw = JSON.parse(readFileSync(join(model.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    raw['quantization_config'] = { quant_method: 'compressed-tensors', version: '0.9.0', sparsity_config: { format: 'dense', sparsity_structure: 'unstructured' } };
    writeFileSync(join(model.dir, 'config.json'), JSON.stringify(raw));
    const c = Checkpoint.open(model.dir);
    try {
      expect(c.sparsity?.format).toBe('dense');
      expect(Buffer.from(c.read(`${q}.weight`).buffer).equals(Buffer.from(model.tensors.get(`${q}.weight`)!.buffer))).toBe(true);
    } finally {
      c.close();
    }
  });
});

test('the writer plans compression only for the decoder linears', async () => {
  const model = tinyModel();
  const opts = compressOptions(model.config, 'compressed', 'unstructured')!;
  expect([...opts.names].sort()).toEqual(
    Array.from({ length: model.config.numLayers }, (_, i) => LINEAR_NAMES.map((n) => linearTensorName(i, n))).flat().sort(),
  );
  expect(compressOptions(model.config, 'dense', 'unstructured')).toBeUndefined();
  const w = new CheckpointWriter(join(tmp), [{ name: 'a', shape: [2, 2] }], { dtype: 'F32', compress: { ...opts, names: new Set(['a']) } });
  w.write('a', new Float32Array([0, 1, 2, 0]));
  expect(() => w.write('a', new Float32Array([0, 1, 2, 0]))).toThrow(/tensor 'a\.shape' written twice/);
  w.abort();
  expect(readdirSync(tmp).filter((f) => f.includes('.part'))).toEqual([]);
});

test('finetune merges: masked + compressed keeps the base structure (2:4: sparse-24-bitmask) and equals the dense merge', async () => {
  const model = tinyModel();
  const base = (await prune({ model: model.dir, out: join(tmp, `m-${counter++}`), method: 'magnitude', sparsity: 0.5, structure: parseStructure('2:4'), format: 'compressed' })).out;
  const m = await loadModel(base);
  const ad = LoraAdapters.create(m.model.config, { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'down_proj'] }, 1);
  try {
    const rng = new TinyRandom(9);
    for (const p of ad.pairs) {
      const v = tf.tensor2d(rng.normals(p.bT.size, 0.05), p.bT.shape as [number, number]);
      p.bT.assign(v);
      v.dispose();
    }
    const tensorsBefore = tf.memory().numTensors;
    const dense = await writeMergedCheckpoint({ checkpoint: m.checkpoint, adapters: ad, mode: 'masked', out: join(tmp, `md-${counter++}`) });
    const packed = await writeMergedCheckpoint({ checkpoint: m.checkpoint, adapters: ad, mode: 'masked', out: join(tmp, `mc-${counter++}`), format: 'compressed' });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(packed.sameZeroCounts).toBe(true);
    expect(packed.storage.sparseFormat).toBe('sparse-24-bitmask');
    expect(dense.storage.format).toBe('dense');
    const config = JSON.parse(readFileSync(join(packed.dir, 'config.json'), 'utf8')) as { quantization_config: { sparsity_config: Record<string, unknown> } };
    expect(config.quantization_config.sparsity_config['sparsity_structure']).toBe('2:4');
    expect('quantization_config' in JSON.parse(readFileSync(join(dense.dir, 'config.json'), 'utf8'))).toBe(false);
    const a = Checkpoint.open(dense.dir);
    const b = Checkpoint.open(packed.dir);
    try {
      for (const { name } of expectedTensors(model.config)) {
        expect({ name, same: Buffer.from(a.read(name).buffer).equals(Buffer.from(b.read(name).buffer)) }).toEqual({ name, same: true });
      }
    } finally {
      a.close();
      b.close();
    }
    await expect(async () => writeMergedCheckpoint({ checkpoint: m.checkpoint, adapters: ad, mode: 'dense', out: join(tmp, `mx-${counter++}`), format: 'compressed' })).rejects.toThrow(
      ConfigError,
    );
  } finally {
    ad.dispose();
    m.dispose();
  }
});
