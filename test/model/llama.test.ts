import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, UnsupportedError } from '../../lib/errors.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { LlamaModel, blockWeightsToArrays, disposeBlock, loadBlockWeights } from '../../lib/model/llama.js';
import { loadModel, type LoadedModel } from '../../lib/model/load.js';
import { generate, inspectModel } from '../../lib/generate.js';
import { LINEAR_NAMES, type LinearName } from '../../lib/model/architecture.js';
import { useTestBackend } from '../helpers/backend.js';
import { ReferenceLlama, readSafetensorsFolder, type RefLinear } from '../helpers/reference-llama.js';
import { libLogits, logitError, maxAbs, maxAbsDiff, readJson, TOL } from '../helpers/logit-check.js';
import { patchConfigJson, writeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.js';

// two sequences of 12 tokens (BOS first), ids spread over the 2048-token vocabulary
const IDS = [
  [1, 5, 77, 300, 12, 2047, 9, 9, 400, 1000, 3, 18],
  [1, 2000, 45, 6, 7, 8, 100, 200, 300, 400, 500, 1536],
];

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-model-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Variant {
  name: string;
  options: TinyCheckpointOptions;
  /** config.json changes that switch the variant's feature off in the reference: its logits must then differ by far
   * more than the tolerance, so the comparison can see the feature. */
  ablate?: Record<string, unknown>;
}

const LLAMA3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 256 };
const VARIANTS: Variant[] = [
  { name: 'F32, untied', options: { seed: 11 } },
  { name: 'F16', options: { seed: 12, dtype: 'F16' } },
  { name: 'BF16', options: { seed: 13, dtype: 'BF16' } },
  { name: 'sharded BF16 (index + 4 shards)', options: { seed: 14, dtype: 'BF16', maxShardBytes: 100_000 } },
  { name: 'tied, stored as lm_head.weight with a __metadata__ alias', options: { seed: 15, tie: 'lm_head' } },
  { name: 'tied, stored as embed_tokens only', options: { seed: 16, tie: 'embed' } },
  { name: 'GQA 8 heads / 2 kv heads', options: { seed: 17, numHeads: 8, numKvHeads: 2 } },
  { name: 'explicit head_dim 24 (hidden 64, 4 heads) with GQA', options: { seed: 18, headDim: 24, numKvHeads: 2 } },
  {
    name: 'attention_bias and mlp_bias',
    options: { seed: 19, attentionBias: true, mlpBias: true },
    ablate: { attention_bias: false, mlp_bias: false },
  },
  // head_dim 16, theta 1e4: wavelengths 6.3 .. 19869 cover the unscaled (< 64), smoothed and scaled (> 256) bands
  { name: 'rope_scaling llama3', options: { seed: 20, ropeScaling: LLAMA3 }, ablate: { rope_scaling: null } },
  { name: 'rope_scaling linear', options: { seed: 21, ropeScaling: { type: 'linear', factor: 4 } }, ablate: { rope_scaling: null } },
  {
    name: 'Qwen2ForCausalLM (q/k/v biases, tied)',
    options: { seed: 22, architecture: 'Qwen2ForCausalLM', numKvHeads: 2, tie: 'embed' },
    ablate: { architectures: ['LlamaForCausalLM'] },
  },
  { name: 'MistralForCausalLM (GQA, sliding_window 4096)', options: { seed: 23, architecture: 'MistralForCausalLM', numKvHeads: 2 } },
];

describe('LlamaModel against the float64 Hugging Face reference', () => {
  test.each(VARIANTS.map((v) => [v.name, v] as const))('%s: logits and each block', async (name, v) => {
    const t = writeTinyCheckpoint(join(tmp, name.replace(/[^A-Za-z0-9]+/g, '_')), v.options);
    if (v.options.maxShardBytes !== undefined) expect(t.files.length).toBeGreaterThan(1);
    const loaded = await loadModel(t.dir);
    try {
      const ref = new ReferenceLlama(t.raw, t.tensors);
      const lib = libLogits(loaded, IDS);
      const { err, scale } = logitError(lib, ref, IDS);
      expect(scale).toBeGreaterThan(1); // O(1) logits: a meaningful comparison
      expect(err).toBeLessThan(TOL * scale);
      if (v.ablate) {
        const off = logitError(lib, new ReferenceLlama({ ...t.raw, ...v.ablate }, t.tensors), IDS);
        expect(off.err).toBeGreaterThan(100 * TOL * off.scale);
      }

      // each block on the same float32 input
      const [b, s, h] = [IDS.length, IDS[0]!.length, t.config.hiddenSize];
      let refX = IDS.map((row) => ref.embed(row));
      for (let layer = 0; layer < t.config.numLayers; layer++) {
        const x = tf.tensor3d(Float32Array.from(refX.flatMap((r) => [...r])), [b, s, h]);
        const y = loaded.model.block(layer, x);
        const got = y.dataSync() as Float32Array;
        x.dispose();
        y.dispose();
        const inputs = refX.map((r) => Float64Array.from(Float32Array.from(r))); // the exact float32 values given to tfjs
        const want = inputs.map((r) => ref.block(layer, r, s));
        const flat = Float64Array.from(want.flatMap((r) => [...r]));
        expect(maxAbsDiff(got, flat)).toBeLessThan(TOL * maxAbs(flat));
        refX = want;
      }
    } finally {
      loaded.dispose();
    }
  });
});

describe('tap, memory, architectures', () => {
  let t: ReturnType<typeof writeTinyCheckpoint>;
  let loaded: LoadedModel;
  beforeAll(async () => {
    // explicit head_dim (o_proj input 4*24 = 96 != hidden 64), GQA, biases: every input width is distinct
    t = writeTinyCheckpoint(join(tmp, 'tap'), { seed: 31, headDim: 24, numKvHeads: 2, attentionBias: true, mlpBias: true, intermediateSize: 80 });
    loaded = await loadModel(t.dir);
  });
  afterAll(() => loaded.dispose());

  test('the tap sees the 7 linear inputs of each block, [b, s, in], with the reference values', async () => {
    const ref = new ReferenceLlama(t.raw, t.tensors);
    const [b, s, h] = [IDS.length, IDS[0]!.length, t.config.hiddenSize];
    const widths: Record<LinearName, number> = { q_proj: 64, k_proj: 64, v_proj: 64, o_proj: 96, gate_proj: 64, up_proj: 64, down_proj: 80 };
    let x = loaded.model.embed(IDS);
    let refX = IDS.map((row) => ref.embed(row));
    for (let layer = 0; layer < t.config.numLayers; layer++) {
      const seen: { name: LinearName; shape: number[]; values: Float32Array }[] = [];
      const y = loaded.model.block(layer, x, (name, input) => {
        seen.push({ name, shape: input.shape, values: input.dataSync() as Float32Array });
      });
      x.dispose();
      x = y;
      expect(seen.map((c) => c.name)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
      for (const c of seen) expect(c.shape).toEqual([b, s, widths[c.name]]);
      const refSeen = new Map<RefLinear, Float64Array[]>();
      refX = refX.map((r) =>
        ref.block(layer, r, s, (name, input) => refSeen.set(name, [...(refSeen.get(name) ?? []), Float64Array.from(input)])),
      );
      for (const c of seen) {
        const want = Float64Array.from(refSeen.get(c.name)!.flatMap((r) => [...r]));
        expect(maxAbsDiff(c.values, want)).toBeLessThan(TOL * maxAbs(want));
      }
    }
    x.dispose();
    expect(h).toBe(64);
  });

  test('a forward and a tapped block leave tf.memory().numTensors unchanged', async () => {
    loaded.model.logits(IDS).dispose(); // warm-up: builds the cached RoPE table
    const before = tf.memory().numTensors;
    loaded.model.logits(IDS).dispose();
    const x = loaded.model.embed(IDS);
    const y = loaded.model.block(0, x, () => undefined);
    x.dispose();
    y.dispose();
    const e = loaded.model.embed(IDS);
    loaded.model.head(e).dispose();
    e.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a tap or a linear override that throws mid-block leaves tf.memory().numTensors unchanged', async () => {
    const m = loaded.model;
    m.logits(IDS).dispose(); // warm-up: builds the cached RoPE table and causal mask
    const x = m.embed(IDS);
    const before = tf.memory().numTensors;
    for (const at of LINEAR_NAMES) {
      // the tap runs after the intermediates before `at` exist (o_proj: after attention; down_proj: after the MLP)
      const tap = (name: LinearName): void => {
        if (name === at) throw new Error(`tap failed at ${at}`);
      };
      expect(() => m.block(0, x, tap)).toThrow(`tap failed at ${at}`);
      expect([at, tf.memory().numTensors]).toEqual([at, before]);
      const linear = (_layer: number, name: LinearName): tf.Tensor3D => {
        if (name === at) throw new Error(`linear failed at ${at}`);
        return tf.zeros([IDS.length, IDS[0]!.length, name === 'down_proj' || name === 'o_proj' ? 64 : name === 'gate_proj' || name === 'up_proj' ? 80 : name === 'q_proj' ? 96 : 48]);
      };
      expect(() => m.block(0, x, undefined, undefined, { linear })).toThrow(`linear failed at ${at}`);
      expect([at, tf.memory().numTensors]).toEqual([at, before]);
    }
    x.dispose();
  });

  test('a block or a model whose reads fail halfway frees what it had read', async () => {
    const ckpt = Checkpoint.open(t.dir);
    try {
      const read = ckpt.read.bind(ckpt);
      const readTransposed = ckpt.readTransposed.bind(ckpt); // linear weights are read transposed
      const failAt = (tensor: string): void => {
        ckpt.read = (name: string, out?: Float32Array): Float32Array => {
          if (name === tensor) throw new CheckpointError(`cannot read ${name}`);
          return read(name, out);
        };
        ckpt.readTransposed = (name: string, out?: Float32Array): Float32Array => {
          if (name === tensor) throw new CheckpointError(`cannot read ${name}`);
          return readTransposed(name, out);
        };
      };
      const before = tf.memory().numTensors;
      for (const n of ['q_proj', 'o_proj', 'up_proj', 'down_proj'] as const) {
        for (const kind of ['weight', 'bias'] as const) {
          const tensor = `model.layers.1.${n === 'up_proj' || n === 'down_proj' ? 'mlp' : 'self_attn'}.${n}.${kind}`;
          failAt(tensor);
          expect(() => loadBlockWeights(ckpt, 1)).toThrow(`cannot read ${tensor}`);
          expect([tensor, tf.memory().numTensors]).toEqual([tensor, before]);
        }
      }
      for (const tensor of ['model.layers.1.input_layernorm.weight', 'model.layers.1.post_attention_layernorm.weight']) {
        failAt(tensor);
        expect(() => loadBlockWeights(ckpt, 1)).toThrow(`cannot read ${tensor}`);
        expect(() => LlamaModel.fromCheckpoint(ckpt)).toThrow(`cannot read ${tensor}`); // block 0 was loaded before
        expect([tensor, tf.memory().numTensors]).toEqual([tensor, before]);
      }
      for (const tensor of ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight']) {
        failAt(tensor);
        expect(() => LlamaModel.fromCheckpoint(ckpt)).toThrow(`cannot read ${tensor}`);
        expect([tensor, tf.memory().numTensors]).toEqual([tensor, before]);
      }
    } finally {
      ckpt.close();
    }
  });

  test('a safetensors file truncated after it was opened: loading fails naming the file, no tensor left behind', async () => {
    const dir = join(tmp, 'truncated-later');
    writeTinyCheckpoint(dir, { seed: 33 });
    const ckpt = Checkpoint.open(dir);
    try {
      const file = join(dir, 'model.safetensors');
      truncateSync(file, Math.floor(statSync(file).size * 0.6)); // some tensors still readable, the rest not
      const before = tf.memory().numTensors;
      expect(() => LlamaModel.fromCheckpoint(ckpt)).toThrow(/model\.safetensors: tensor '.*' ends past the end of the file/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      ckpt.close();
    }
  });

  test('blocks streamed with loadBlockWeights give the resident model\'s logits; blockWeightsToArrays gives back the stored values', async () => {
    const streamed = await loadModel(t.dir, { blocks: false });
    try {
      expect(streamed.model.blocks.every((blk) => blk === null)).toBe(true);
      const x0 = streamed.model.embed(IDS);
      expect(() => streamed.model.block(0, x0)).toThrow(/^block 0 is not loaded$/);
      const warm = loadBlockWeights(streamed.checkpoint, 0); // warm-up: builds the cached RoPE table
      streamed.model.block(0, x0, undefined, warm).dispose();
      disposeBlock(warm);
      const before = tf.memory().numTensors;
      let x = x0;
      for (let layer = 0; layer < t.config.numLayers; layer++) {
        const w = loadBlockWeights(streamed.checkpoint, layer);
        const arrays = await blockWeightsToArrays(t.config, layer, w);
        for (const [name, values] of arrays) expect([name, maxAbsDiff(values, t.tensors.get(name)!)]).toEqual([name, 0]);
        const y = streamed.model.block(layer, x, undefined, w);
        disposeBlock(w);
        if (x !== x0) x.dispose();
        x = y;
      }
      const logits = streamed.model.head(x);
      x.dispose();
      expect(tf.memory().numTensors).toBe(before + 1);
      const want = loaded.model.logits(IDS);
      expect(maxAbsDiff(logits.dataSync(), want.dataSync())).toBe(0);
      logits.dispose();
      want.dispose();
      x0.dispose();
    } finally {
      streamed.dispose();
    }
  });

  test('bad token ids, ragged batches and over-long sequences are refused', async () => {
    const m = loaded.model;
    expect(() => m.embed([[1, 2048]])).toThrow(CheckpointError);
    expect(() => m.embed([[1, 2048]])).toThrow(/^embed: token id 2048 at \[0, 1\] is outside the vocabulary \(0\.\.2047\)$/);
    expect(() => m.embed([[1, -1]])).toThrow(/token id -1 at \[0, 1\] is outside the vocabulary/);
    expect(() => m.embed([[1, 2, 3], [1, 2]])).toThrow(/^embed: sequence 1 has 2 tokens, sequence 0 has 3$/);
    expect(() => m.embed([])).toThrow(/^embed: empty batch or empty sequence$/);
    expect(() => m.logits([Array.from({ length: 129 }, () => 5)])).toThrow(/^sequence of 129 tokens, model context is 128$/);
  });

  test('an unknown architecture is refused with UnsupportedError naming it', async () => {
    const dir = join(tmp, 'gpt2');
    writeTinyCheckpoint(dir, { seed: 32 });
    patchConfigJson(dir, { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' });
    const p = loadModel(dir);
    await expect(p).rejects.toThrow(UnsupportedError);
    await expect(loadModel(dir)).rejects.toThrow(
      /config\.json: architecture 'GPT2LMHeadModel' is not supported; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/,
    );
  });
});

describe('tiny checkpoints shaped like the shared real ones', () => {
  test('BF16, untied, grouped-query (as c4-llama-7m) matches the reference and generates 10 tokens', async () => {
    const dir = writeTinyCheckpoint(join(tmp, 'bf16-untied'), { seed: 21, dtype: 'BF16', numHeads: 4, numKvHeads: 2 }).dir;
    const loaded = await loadModel(dir);
    try {
      const info = inspectModel(loaded);
      expect(info.dtype).toBe('BF16');
      expect(info.tiedEmbeddings).toBe(false);
      const ids = loaded.tokenizer.encode('The city council met on', { addSpecialTokens: true });
      const ref = new ReferenceLlama(readJson(join(dir, 'config.json')), readSafetensorsFolder(dir));
      const { err, scale } = logitError(libLogits(loaded, [ids]), ref, [ids]);
      expect(err).toBeLessThan(TOL * scale);
      const out = await generate(loaded, 'The city council met on', 10);
      expect(out.ids.slice(0, ids.length)).toEqual(ids);
      expect(out.ids).toHaveLength(ids.length + 10);
      for (const id of out.ids) expect(id >= 0 && id < 2048).toBe(true);
      expect(typeof out.newText).toBe('string');
    } finally {
      loaded.dispose();
    }
  });

  test('tied, lm_head stored with an alias (as TinyStories-656K): finite logits equal to the reference', async () => {
    const dir = writeTinyCheckpoint(join(tmp, 'tied-alias'), { seed: 22, tie: 'lm_head', numHeads: 4, numKvHeads: 2 }).dir;
    const loaded = await loadModel(dir);
    try {
      const ids = loaded.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
      const lib = libLogits(loaded, [ids]);
      expect(lib[0]!.every((v) => Number.isFinite(v))).toBe(true);
      const ref = new ReferenceLlama(readJson(join(dir, 'config.json')), readSafetensorsFolder(dir));
      const { err, scale } = logitError(lib, ref, [ids]);
      expect(err).toBeLessThan(TOL * scale);
    } finally {
      loaded.dispose();
    }
  });
});
