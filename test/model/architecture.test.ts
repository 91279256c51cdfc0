/**
 * The architecture spec (lib/model/architecture.ts): supported architectures and how their config.json is read,
 * the linears of a block (tensor names, shapes from the config, biases, input groups), the norms, the tensors of a
 * checkpoint, and the model's [out, in] view of its weights. Adding an architecture option or a linear layer is a
 * change in the spec and in this file.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ARCHITECTURES,
  blockNorms,
  type ArchitectureSpec,
  INPUT_GROUP,
  LINEARS,
  LINEAR_NAMES,
  architectureSpec,
  blockTensors,
  expectedTensors,
  hasBias,
  linearShape,
  linearTensorName,
  normTensorName,
  parameterCount,
} from '../../lib/model/architecture.js';
import { parseConfig, SUPPORTED_ARCHITECTURES } from '../../lib/model/config.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { disposeBlock, linearWeight, loadBlockWeights, setLinearWeight } from '../../lib/model/llama.js';
import { useTestBackend } from '../helpers/backend.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

/** A config.json with GQA, an explicit head_dim and every bias on (each width distinct). */
const RAW = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 80,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 24,
  attention_bias: true,
  mlp_bias: true,
};

let tmp: string;
beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-arch-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('architectures', () => {
  test('the supported architectures are the spec\'s, each with its model_type', () => {
    expect(SUPPORTED_ARCHITECTURES).toEqual([
      'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Gemma3ForCausalLM', 'Phi3ForCausalLM',
    ]);
    expect(Object.values(ARCHITECTURES).map((a) => a.modelType)).toEqual(['llama', 'mistral', 'qwen2', 'qwen3', 'gemma3_text', 'phi3']);
    expect(architectureSpec('GPT2LMHeadModel')).toBeNull();
    expect(architectureSpec('toString')).toBeNull(); // not an inherited property
  });

  test('config.json is read by the spec: model_type fallback, q/k/v biases, the sliding-window switch', () => {
    const base = { ...RAW, attention_bias: false, mlp_bias: false, hidden_activation: 'gelu_pytorch_tanh' };
    const { architectures: _, ...untyped } = base;
    const act = (spec: ArchitectureSpec): Record<string, unknown> => (spec.activationField === 'hidden_act' ? { hidden_act: 'silu' } : {});
    for (const [arch, spec] of Object.entries(ARCHITECTURES) as [string, ArchitectureSpec][]) {
      expect(parseConfig({ ...untyped, ...act(spec), model_type: spec.modelType }).architecture).toBe(arch);
      const c = parseConfig({ ...base, ...act(spec), architectures: [arch], sliding_window: 32, use_sliding_window: false });
      expect([arch, c.qkvBias, c.oBias, c.mlpBias]).toEqual([arch, spec.qkvBias === 'always', false, false]);
      expect([arch, c.slidingWindow]).toEqual([arch, spec.slidingWindowSwitch === 'use_sliding_window' ? null : 32]);
      const on = parseConfig({ ...base, ...act(spec), architectures: [arch], sliding_window: 32, use_sliding_window: true });
      expect([arch, on.slidingWindow]).toEqual([arch, 32]);
      const biased = parseConfig({ ...base, ...act(spec), architectures: [arch], attention_bias: true, mlp_bias: true });
      const never = spec.qkvBias === 'never';
      expect([arch, biased.qkvBias, biased.oBias, biased.mlpBias]).toEqual([arch, !never, !never, spec.mlpBias === 'mlp_bias']);
    }
  });

  test('which layers slide: every layer (sliding_window), from max_window_layers on (Qwen), layer_types or the pattern (Gemma 3)', () => {
    const kinds = (raw: Record<string, unknown>): string => parseConfig({ ...RAW, attention_bias: false, mlp_bias: false, num_hidden_layers: 4, ...raw }).layerTypes.map((t) => t[0]).join('');
    expect(kinds({ architectures: ['MistralForCausalLM'], sliding_window: 8 })).toBe('ssss');
    expect(kinds({ architectures: ['Qwen3ForCausalLM'], sliding_window: 8, use_sliding_window: true, max_window_layers: 2 })).toBe('ffss');
    expect(kinds({ architectures: ['Qwen3ForCausalLM'], sliding_window: 8, use_sliding_window: false })).toBe('ffff');
    expect(kinds({ architectures: ['Gemma3ForCausalLM'], sliding_window_pattern: 2 })).toBe('sfsf');
    const types = ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention'];
    expect(kinds({ architectures: ['Gemma3ForCausalLM'], layer_types: types })).toBe('fssf');
    expect(() => kinds({ architectures: ['Gemma3ForCausalLM'], layer_types: types.slice(1) })).toThrow("field 'layer_types' must list");
    expect(() => kinds({ architectures: ['Gemma3ForCausalLM'], final_logit_softcapping: 30 })).toThrow('final_logit_softcapping 30 is not supported');
    expect(() => kinds({ architectures: ['Gemma3ForCausalLM'], hidden_activation: 'relu' })).toThrow("hidden_activation 'relu' is not supported (only gelu_pytorch_tanh)");
  });
});

describe('block', () => {
  const c = parseConfig(RAW);

  test('the seven linears in execution order, each with module, [out, in] shape, bias and input group', () => {
    expect(LINEAR_NAMES).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(Object.keys(LINEARS).sort()).toEqual([...LINEAR_NAMES].sort());
    const table = LINEAR_NAMES.map((n) => [n, linearTensorName(3, n), linearShape(c, n), hasBias(c, n), INPUT_GROUP[n]]);
    expect(table).toEqual([
      ['q_proj', 'model.layers.3.self_attn.q_proj.weight', [96, 64], true, 'attn_in'],
      ['k_proj', 'model.layers.3.self_attn.k_proj.weight', [48, 64], true, 'attn_in'],
      ['v_proj', 'model.layers.3.self_attn.v_proj.weight', [48, 64], true, 'attn_in'],
      ['o_proj', 'model.layers.3.self_attn.o_proj.weight', [64, 96], true, 'o_in'],
      ['gate_proj', 'model.layers.3.mlp.gate_proj.weight', [80, 64], true, 'mlp_in'],
      ['up_proj', 'model.layers.3.mlp.up_proj.weight', [80, 64], true, 'mlp_in'],
      ['down_proj', 'model.layers.3.mlp.down_proj.weight', [64, 80], true, 'down_in'],
    ]);
    expect(linearTensorName(0, 'o_proj', 'bias')).toBe('model.layers.0.self_attn.o_proj.bias');
    // biases follow the config: Qwen2 has q/k/v biases only
    const qwen = parseConfig({ ...RAW, architectures: ['Qwen2ForCausalLM'], attention_bias: false, mlp_bias: false });
    expect(LINEAR_NAMES.filter((n) => hasBias(qwen, n))).toEqual(['q_proj', 'k_proj', 'v_proj']);
  });

  test('the two RMSNorms, each before the first linear reading it', () => {
    expect(blockNorms(c).map((n) => [n.key, normTensorName(c, 2, n.key), n.size, n.before])).toEqual([
      ['inputNorm', 'model.layers.2.input_layernorm.weight', 64, 'q_proj'],
      ['postNorm', 'model.layers.2.post_attention_layernorm.weight', 64, 'gate_proj'],
    ]);
    expect(() => normTensorName(c, 2, 'qNorm')).toThrow('LlamaForCausalLM blocks have no qNorm');
  });

  test('blockTensors: Hugging Face order, shapes, biases', () => {
    const names = blockTensors(c, 1).map((t) => `${t.name} [${t.shape.join(', ')}]`);
    expect(names).toEqual([
      'model.layers.1.input_layernorm.weight [64]',
      'model.layers.1.self_attn.q_proj.weight [96, 64]',
      'model.layers.1.self_attn.q_proj.bias [96]',
      'model.layers.1.self_attn.k_proj.weight [48, 64]',
      'model.layers.1.self_attn.k_proj.bias [48]',
      'model.layers.1.self_attn.v_proj.weight [48, 64]',
      'model.layers.1.self_attn.v_proj.bias [48]',
      'model.layers.1.self_attn.o_proj.weight [64, 96]',
      'model.layers.1.self_attn.o_proj.bias [64]',
      'model.layers.1.post_attention_layernorm.weight [64]',
      'model.layers.1.mlp.gate_proj.weight [80, 64]',
      'model.layers.1.mlp.gate_proj.bias [80]',
      'model.layers.1.mlp.up_proj.weight [80, 64]',
      'model.layers.1.mlp.up_proj.bias [80]',
      'model.layers.1.mlp.down_proj.weight [64, 80]',
      'model.layers.1.mlp.down_proj.bias [64]',
    ]);
  });

  test('expectedTensors and parameterCount: embeddings, blocks, final norm, lm_head unless tied', () => {
    const names = expectedTensors(c).map((t) => t.name);
    expect(names[0]).toBe('model.embed_tokens.weight');
    expect(names.slice(-2)).toEqual(['model.norm.weight', 'lm_head.weight']);
    expect(expectedTensors({ ...c, tieWordEmbeddings: true }).map((t) => t.name)).not.toContain('lm_head.weight');
    const h = 64;
    const block = 96 * h + 2 * 48 * h + h * 96 + (96 + 2 * 48) + h + 3 * h * 80 + (2 * 80 + h) + 2 * h;
    expect(parameterCount(c)).toBe(100 * h * 2 + 2 * block + h);
    expect(parameterCount({ ...c, tieWordEmbeddings: true })).toBe(100 * h + 2 * block + h);
  });
});

describe('the model shows weights as [out, in]', () => {
  test('linearWeight gives the stored [out, in] values; setLinearWeight replaces them; no tensor left behind', () => {
    const t = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 5, headDim: 24, numKvHeads: 2, intermediateSize: 80 });
    const ckpt = Checkpoint.open(t.dir);
    try {
      const block = loadBlockWeights(ckpt, 1);
      const before = tf.memory().numTensors;
      try {
        for (const n of LINEAR_NAMES) {
          const w = linearWeight(block, n);
          expect([n, w.shape]).toEqual([n, linearShape(t.config, n)]);
          expect(Array.from(w.dataSync())).toEqual(Array.from(t.tensors.get(linearTensorName(1, n))!));
          const doubled = tf.mul(w, 2) as tf.Tensor2D;
          setLinearWeight(block, n, doubled);
          const back = linearWeight(block, n);
          expect(Array.from(back.dataSync())).toEqual(Array.from(doubled.dataSync()));
          tf.dispose([w, doubled, back]);
        }
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        disposeBlock(block);
      }
    } finally {
      ckpt.close();
    }
  });
});
