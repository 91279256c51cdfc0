/**
 * Qwen3, Gemma 3 and Phi-3 / Phi-4-mini: logits of tiny seeded checkpoints (Hugging Face tensor names and config
 * fields, built in code) against the independent float64 reference of test/helpers/reference-families.ts; sliding
 * windows exact past the window (also through a cached prefix); Phi-3's fused tensors seen as the seven linears and
 * written fused again (dense and compressed-tensors).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { kernelsFor } from '../../lib/model/backend.js';
import { saveCheckpoint } from '../../lib/model/save.js';
import { linearTensorName, LINEAR_NAMES, storedTensors } from '../../lib/model/architecture.js';
import { useTestBackend } from '../helpers/backend.js';
import { ReferenceFamily } from '../helpers/reference-families.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { familyIds, writeFamilyCheckpoint, type FamilyName, type FamilyOptions } from '../helpers/family-checkpoint.js';

const TOL = 1e-5; // max abs error relative to the largest reference logit

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-families-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function relError(got: ArrayLike<number>, want: ArrayLike<number>): { err: number; scale: number } {
  expect(got.length).toBe(want.length);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { err: err / scale, scale };
}

/** Tensor names in a safetensors file's header. */
function headerNames(file: string): string[] {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as object).filter((k) => k !== '__metadata__');
}

function libLogits(m: LoadedModel, ids: number[][]): Float32Array[] {
  const t = m.model.logits(ids);
  const v = t.dataSync() as Float32Array;
  t.dispose();
  const per = v.length / ids.length;
  return ids.map((_, b) => v.slice(b * per, (b + 1) * per));
}

interface Variant {
  name: string;
  family: FamilyName;
  options: FamilyOptions;
  seqlen: number;
  /** config.json changes that switch the variant's feature off in the reference: the logits must then differ. */
  ablate?: Record<string, unknown>;
}

const VARIANTS: Variant[] = [
  { name: 'Qwen3 (q/k norms, head_dim 16 with hidden 48)', family: 'Qwen3ForCausalLM', options: { seed: 1 }, seqlen: 12 },
  { name: 'Qwen3 attention_bias, tied, BF16', family: 'Qwen3ForCausalLM', options: { seed: 2, attentionBias: true, tie: true, dtype: 'BF16' }, seqlen: 12 },
  {
    name: 'Qwen3 use_sliding_window (layer 1 of 2), window 5, 14 tokens', family: 'Qwen3ForCausalLM', options: { seed: 3, slidingWindow: 5 }, seqlen: 14,
    ablate: { use_sliding_window: false },
  },
  {
    name: 'Gemma 3 (window 8, pattern 3: sliding, sliding, full), 20 tokens', family: 'Gemma3ForCausalLM', options: { seed: 4 }, seqlen: 20,
    ablate: { sliding_window: 1000 },
  },
  {
    name: 'Gemma 3 layer_types, local RoPE base 100, attention_bias, untied', family: 'Gemma3ForCausalLM',
    options: { seed: 5, attentionBias: true, tie: false, extra: { layer_types: ['full_attention', 'sliding_attention', 'full_attention'], rope_local_base_freq: 100 } },
    seqlen: 16, ablate: { rope_local_base_freq: 10000 },
  },
  { name: 'Phi-3 (fused qkv_proj, gate_up_proj)', family: 'Phi3ForCausalLM', options: { seed: 6 }, seqlen: 12 },
  {
    name: 'Phi-4-mini style: partial_rotary_factor 0.5, tied, GQA', family: 'Phi3ForCausalLM', options: { seed: 7, partialRotaryFactor: 0.5, tie: true }, seqlen: 12,
    ablate: { partial_rotary_factor: 1 },
  },
  {
    name: 'Phi-3 longrope, 12 tokens (short factors)', family: 'Phi3ForCausalLM', options: { seed: 8, longrope: true, partialRotaryFactor: 0.5 }, seqlen: 12,
    ablate: { rope_scaling: null },
  },
  {
    name: 'Phi-3 longrope, 20 tokens (long factors past original 16), sliding_window 6', family: 'Phi3ForCausalLM',
    options: { seed: 9, longrope: true, slidingWindow: 6 }, seqlen: 20, ablate: { sliding_window: null },
  },
];

describe('Qwen3 / Gemma 3 / Phi-3 against the float64 Hugging Face reference', () => {
  test.each(VARIANTS.map((v) => [v.name, v] as const))('%s', async (name, v) => {
    const t = writeFamilyCheckpoint(join(tmp, name.replace(/[^A-Za-z0-9]+/g, '_')), v.family, v.options);
    const ids = [familyIds(v.seqlen, 100 + (v.options.seed ?? 0)), familyIds(v.seqlen, 200 + (v.options.seed ?? 0))];
    const loaded = await loadModel(t.dir);
    try {
      const ref = new ReferenceFamily(t.raw, t.tensors);
      const lib = libLogits(loaded, ids);
      ids.forEach((row, b) => {
        const { err, scale } = relError(lib[b]!, ref.logits(row));
        expect(scale).toBeGreaterThan(0.5); // O(1) logits: a meaningful comparison
        expect({ row: b, err: err < TOL }).toEqual({ row: b, err: true });
      });
      if (v.ablate) {
        const off = new ReferenceFamily({ ...t.raw, ...v.ablate }, t.tensors);
        expect(relError(lib[0]!, off.logits(ids[0]!)).err).toBeGreaterThan(100 * TOL);
      }
    } finally {
      loaded.dispose();
    }
  });
});

describe('sliding windows and kernels', () => {
  test('a cached prefix then continuations give the one-pass logits past the window (Gemma 3, window 8, 20 tokens)', async () => {
    const t = writeFamilyCheckpoint(join(tmp, 'gemma-cache'), 'Gemma3ForCausalLM', { seed: 11 });
    const loaded = await loadModel(t.dir);
    try {
      const ids = familyIds(20, 5);
      const whole = libLogits(loaded, [ids])[0]!;
      const { logits, cache } = loaded.model.prefill(ids.slice(0, 12));
      const cont = loaded.model.continueFrom(cache, [ids.slice(12)]);
      const got = Float32Array.from([...(logits.dataSync() as Float32Array), ...(cont.dataSync() as Float32Array)]);
      tf.dispose([logits, cont]);
      cache.dispose();
      expect(relError(got, whole).err).toBeLessThan(TOL);
      loaded.model.logits([ids]).dispose(); // the masks of this shape are cached again
      const before = tf.memory().numTensors;
      loaded.model.logits([ids]).dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      loaded.dispose();
    }
  });

  test('Gemma 3: a tap that throws at any linear leaves tf.memory().numTensors unchanged', async () => {
    const t = writeFamilyCheckpoint(join(tmp, 'gemma-throw'), 'Gemma3ForCausalLM', { seed: 16 });
    const loaded = await loadModel(t.dir);
    try {
      const ids = [familyIds(12, 1)];
      loaded.model.logits(ids).dispose(); // warm-up: RoPE tables and masks
      const x = loaded.model.embed(ids);
      const before = tf.memory().numTensors;
      for (const at of LINEAR_NAMES) {
        expect(() => loaded.model.block(0, x, (name) => {
          if (name === at) throw new Error(`tap failed at ${at}`);
        })).toThrow(`tap failed at ${at}`);
        expect([at, tf.memory().numTensors]).toEqual([at, before]);
      }
      x.dispose();
    } finally {
      loaded.dispose();
    }
  });

  test('the GPU kernels (batched attention) give the reference logits too (Gemma 3 past the window, Phi-3 longrope)', async () => {
    for (const [family, options] of [['Gemma3ForCausalLM', { seed: 14 }], ['Phi3ForCausalLM', { seed: 15, longrope: true, partialRotaryFactor: 0.5 }]] as const) {
      const t = writeFamilyCheckpoint(join(tmp, `batched-${family}`), family, options);
      const loaded = await loadModel(t.dir, { kernels: { ...kernelsFor('webgpu'), hostReads: 'sync' } });
      try {
        expect(loaded.model.kernels?.attention).toBe('batched');
        const ids = [familyIds(20, 7), familyIds(20, 8)];
        const lib = libLogits(loaded, ids);
        const ref = new ReferenceFamily(t.raw, t.tensors);
        ids.forEach((row, b) => expect([family, b, relError(lib[b]!, ref.logits(row)).err < TOL]).toEqual([family, b, true]));
      } finally {
        loaded.dispose();
      }
    }
  });
});

describe('Phi-3 fused tensors', () => {
  test('read as the seven linears: each is its rows of qkv_proj / gate_up_proj (F32 and BF16)', () => {
    for (const dtype of ['F32', 'BF16'] as const) {
      const t = writeFamilyCheckpoint(join(tmp, `phi-split-${dtype}`), 'Phi3ForCausalLM', { seed: 12, dtype });
      const ckpt = Checkpoint.open(t.dir);
      try {
        const qkv = t.tensors.get('model.layers.1.self_attn.qkv_proj.weight')!;
        const gu = t.tensors.get('model.layers.1.mlp.gate_up_proj.weight')!;
        const h = 48;
        const rows: Record<string, [Float32Array, number, number]> = {
          q_proj: [qkv, 0, 48], k_proj: [qkv, 48, 24], v_proj: [qkv, 72, 24], gate_proj: [gu, 0, 64], up_proj: [gu, 64, 64],
        };
        for (const [n, [src, start, count]] of Object.entries(rows)) {
          const name = linearTensorName(1, n as (typeof LINEAR_NAMES)[number]);
          expect([n, Array.from(ckpt.read(name))]).toEqual([n, Array.from(src.subarray(start * h, (start + count) * h))]);
          const wT = ckpt.readTransposed(name);
          expect([n, wT[1 * count + 2]]).toEqual([n, src[(start + 2) * h + 1]]); // [in, out]: element (in 1, out 2)
        }
      } finally {
        ckpt.close();
      }
    }
  });

  test('saved dense and compressed: qkv_proj / gate_up_proj again, the same values, reloadable', async () => {
    const t = writeFamilyCheckpoint(join(tmp, 'phi-save'), 'Phi3ForCausalLM', { seed: 13 });
    const ckpt = Checkpoint.open(t.dir);
    try {
      const dense = join(tmp, 'phi-save-dense');
      saveCheckpoint(ckpt, { out: dense, dtype: 'F32' });
      const back = readSafetensorsFolder(dense);
      expect([...back.keys()].sort()).toEqual([...t.tensors.keys()].sort());
      for (const [name, v] of t.tensors) expect([name, Buffer.from(back.get(name)!.buffer).equals(Buffer.from(v.buffer))]).toEqual([name, true]);
      const packed = join(tmp, 'phi-save-compressed');
      saveCheckpoint(ckpt, { out: packed, format: 'compressed', structure: 'unstructured', dtype: 'F32' });
      const names = headerNames(join(packed, 'model.safetensors'));
      expect(names).toContain('model.layers.0.self_attn.qkv_proj.bitmask');
      expect(names).toContain('model.layers.0.mlp.gate_up_proj.row_offsets');
      expect(names.filter((n) => /q_proj|k_proj|v_proj|gate_proj\.|up_proj\./.test(n) && !/qkv_proj|gate_up_proj/.test(n))).toEqual([]);
      const reread = Checkpoint.open(packed);
      try {
        expect(storedTensors(reread.config).map((x) => x.name)).toContain('model.layers.1.mlp.gate_up_proj.weight');
        for (const n of LINEAR_NAMES) expect([n, Array.from(reread.read(linearTensorName(1, n)))]).toEqual([n, Array.from(ckpt.read(linearTensorName(1, n)))]);
      } finally {
        reread.close();
      }
    } finally {
      ckpt.close();
    }
  });
});
