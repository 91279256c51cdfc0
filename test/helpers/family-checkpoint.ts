/**
 * Tiny seeded Qwen3 / Gemma 3 / Phi-3 checkpoints, built in code: config.json with the fields of transformers'
 * configuration_qwen3.py / configuration_gemma3.py (Gemma3TextConfig) / configuration_phi3.py, tensors under the exact
 * names of modeling_qwen3.py / modeling_gemma3.py / modeling_phi3.py (Phi-3's qkv_proj and gate_up_proj stacked
 * here, by this file, in transformers' split order), and a character-level tokenizer.json.
 *
 *   const t = writeFamilyCheckpoint(dir, 'Phi3ForCausalLM', { partialRotaryFactor: 0.5 });
 *   t.tensors.get('model.layers.0.self_attn.qkv_proj.weight') // the float32 values as stored
 *
 * Values: N(0, 1/in) for linear weights and embeddings, norm weights 1 + N(0, 0.1^2) (Gemma 3 stores w of
 * `x * (1 + w)`: N(0, 0.1^2)), biases N(0, 0.1^2).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter } from '../../lib/model/checkpoint.js';
import type { DType } from '../../lib/model/safetensors.js';
import { readSafetensorsFolder } from './reference-llama.js';
import { TinyRandom } from './tiny-checkpoint.js';

export const FAMILIES = ['Qwen3ForCausalLM', 'Gemma3ForCausalLM', 'Phi3ForCausalLM'] as const;
export type FamilyName = (typeof FAMILIES)[number];

export interface FamilyOptions {
  seed?: number;
  dtype?: DType;
  numLayers?: number; // default 2 (Gemma 3: 3, so that the pattern of 3 gives sliding, sliding, full)
  hiddenSize?: number; // default 48
  intermediateSize?: number; // default 64
  numHeads?: number; // default 4
  numKvHeads?: number; // default 2
  headDim?: number; // default 16 (head_dim independent of hidden / heads for Qwen3 and Gemma 3)
  slidingWindow?: number | null; // Gemma 3 default 8; Qwen3/Phi-3 default none
  tie?: boolean; // default: Gemma 3 true, else false
  attentionBias?: boolean; // Qwen3 / Gemma 3 attention_bias
  partialRotaryFactor?: number; // Phi-3
  longrope?: boolean; // Phi-3 rope_scaling longrope with original_max_position_embeddings 16, max 64
  maxPositions?: number; // default 128
  extra?: Record<string, unknown>; // merged into config.json last
}

export interface FamilyCheckpoint {
  dir: string;
  raw: Record<string, unknown>;
  tensors: Map<string, Float32Array>; // as stored, by stored name
}

/** The characters of the tokenizer after <unk>, <s>, </s>: printable ASCII. */
const CHARS = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
export const FAMILY_VOCAB = 128; // model vocab (the tokenizer uses the first 98 ids)

/** config.json of a tiny checkpoint of `family`, with that family's field names. */
export function familyConfigJson(family: FamilyName, o: FamilyOptions = {}): Record<string, unknown> {
  const layers = o.numLayers ?? (family === 'Gemma3ForCausalLM' ? 3 : 2);
  const raw: Record<string, unknown> = {
    architectures: [family],
    vocab_size: FAMILY_VOCAB,
    hidden_size: o.hiddenSize ?? 48,
    intermediate_size: o.intermediateSize ?? 64,
    num_hidden_layers: layers,
    num_attention_heads: o.numHeads ?? 4,
    num_key_value_heads: o.numKvHeads ?? 2,
    max_position_embeddings: o.maxPositions ?? 128,
    rms_norm_eps: 1e-6,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[o.dtype ?? 'F32'],
    tie_word_embeddings: o.tie ?? family === 'Gemma3ForCausalLM',
  };
  if (family === 'Qwen3ForCausalLM') {
    Object.assign(raw, {
      model_type: 'qwen3', head_dim: o.headDim ?? 16, hidden_act: 'silu', rope_theta: 1_000_000, attention_bias: o.attentionBias ?? false,
      use_sliding_window: o.slidingWindow != null, sliding_window: o.slidingWindow ?? null, max_window_layers: 1, rope_scaling: null,
    });
  } else if (family === 'Gemma3ForCausalLM') {
    Object.assign(raw, {
      model_type: 'gemma3_text', head_dim: o.headDim ?? 16, hidden_activation: 'gelu_pytorch_tanh', query_pre_attn_scalar: 24,
      rope_theta: 1_000_000, rope_local_base_freq: 10000, rope_scaling: null, sliding_window: o.slidingWindow ?? 8,
      sliding_window_pattern: 3, attention_bias: o.attentionBias ?? false, final_logit_softcapping: null, attn_logit_softcapping: null,
    });
  } else {
    Object.assign(raw, {
      model_type: 'phi3', hidden_act: 'silu', rope_theta: 10000, partial_rotary_factor: o.partialRotaryFactor ?? 1,
      sliding_window: o.slidingWindow ?? null, original_max_position_embeddings: o.longrope ? 16 : (o.maxPositions ?? 128),
      rope_scaling: null, resid_pdrop: 0, embd_pdrop: 0, attention_dropout: 0,
    });
    if (o.longrope) {
      raw['max_position_embeddings'] = 64;
      const n = Math.floor((48 / (o.numHeads ?? 4)) * (o.partialRotaryFactor ?? 1)) / 2;
      raw['rope_scaling'] = {
        type: 'longrope',
        short_factor: Array.from({ length: n }, (_, i) => 1 + 0.05 * i),
        long_factor: Array.from({ length: n }, (_, i) => 1 + 0.5 * i),
      };
    }
  }
  return { ...raw, ...(o.extra ?? {}) };
}

/** The stored tensors of one block with shapes, from the family's modeling file. */
function blockTensors(family: FamilyName, raw: Record<string, unknown>, i: number): { name: string; shape: number[] }[] {
  const h = raw['hidden_size'] as number;
  const m = raw['intermediate_size'] as number;
  const heads = raw['num_attention_heads'] as number;
  const kv = raw['num_key_value_heads'] as number;
  const d = (raw['head_dim'] as number | undefined) ?? h / heads;
  const p = `model.layers.${i}`;
  const out: { name: string; shape: number[] }[] = [{ name: `${p}.input_layernorm.weight`, shape: [h] }];
  if (family === 'Phi3ForCausalLM') {
    out.push({ name: `${p}.self_attn.qkv_proj.weight`, shape: [(heads + 2 * kv) * d, h] }, { name: `${p}.self_attn.o_proj.weight`, shape: [h, heads * d] });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h] });
    out.push({ name: `${p}.mlp.gate_up_proj.weight`, shape: [2 * m, h] }, { name: `${p}.mlp.down_proj.weight`, shape: [h, m] });
    return out;
  }
  const bias = raw['attention_bias'] === true;
  for (const [n, rows, cols] of [['q_proj', heads * d, h], ['k_proj', kv * d, h], ['v_proj', kv * d, h], ['o_proj', h, heads * d]] as const) {
    out.push({ name: `${p}.self_attn.${n}.weight`, shape: [rows, cols] });
    if (bias) out.push({ name: `${p}.self_attn.${n}.bias`, shape: [rows] });
  }
  out.push({ name: `${p}.self_attn.q_norm.weight`, shape: [d] }, { name: `${p}.self_attn.k_norm.weight`, shape: [d] });
  out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [h] });
  if (family === 'Gemma3ForCausalLM') {
    out.push({ name: `${p}.pre_feedforward_layernorm.weight`, shape: [h] }, { name: `${p}.post_feedforward_layernorm.weight`, shape: [h] });
  }
  out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [m, h] }, { name: `${p}.mlp.up_proj.weight`, shape: [m, h] }, { name: `${p}.mlp.down_proj.weight`, shape: [h, m] });
  return out;
}

/** A character-level tokenizer (BPE without merges): <unk>, <s>, </s>, then printable ASCII; <s> prepended. */
function writeTokenizer(dir: string): void {
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab = Object.fromEntries([...specials, ...CHARS].map((t, i) => [t, i]));
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Fuse' },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true }));
}

/** Write a tiny checkpoint of `family` into `dir` and return what was stored. Same options, same bytes. */
export function writeFamilyCheckpoint(dir: string, family: FamilyName, o: FamilyOptions = {}): FamilyCheckpoint {
  mkdirSync(dir, { recursive: true });
  const raw = familyConfigJson(family, o);
  const h = raw['hidden_size'] as number;
  const plan = [{ name: 'model.embed_tokens.weight', shape: [FAMILY_VOCAB, h] }];
  for (let i = 0; i < (raw['num_hidden_layers'] as number); i++) plan.push(...blockTensors(family, raw, i));
  plan.push({ name: 'model.norm.weight', shape: [h] });
  if (raw['tie_word_embeddings'] !== true) plan.push({ name: 'lm_head.weight', shape: [FAMILY_VOCAB, h] });
  const rng = new TinyRandom(o.seed ?? 1);
  const writer = new CheckpointWriter(dir, plan, { dtype: o.dtype ?? 'F32' });
  try {
    for (const { name, shape } of plan) {
      const n = shape.reduce((a, b) => a * b, 1);
      if (name.endsWith('norm.weight')) writer.write(name, rng.normals(n, 0.1, family === 'Gemma3ForCausalLM' ? 0 : 1));
      else if (name.endsWith('.bias')) writer.write(name, rng.normals(n, 0.1));
      else writer.write(name, rng.normals(n, 1 / Math.sqrt(shape[1]!)));
    }
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  writeTokenizer(dir);
  return { dir, raw, tensors: readSafetensorsFolder(dir) };
}

/** `n` token ids drawn uniformly from the tokenizer's characters (seeded). */
export function familyIds(n: number, seed: number): number[] {
  const rng = new TinyRandom(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * CHARS.length));
}
