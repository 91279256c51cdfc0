/**
 * THE architecture spec of the LLaMA family, read by everything else (config parsing, the checkpoint reader and
 * writer, the model, the pruning pipeline, experiments, fine-tuning): which architectures are supported and how
 * their config.json differs, the linear layers of a decoder block (Hugging Face tensor name, shape from the config,
 * bias, which linears read the same input), the block's norms, and the tensors outside the blocks.
 *
 * Adding an architecture option or a linear layer is a change here (and in test/model/architecture.test.ts); the
 * forward in llama.ts is the only other place that knows what a block computes.
 */
import type { LlamaConfig } from './config.js';

// ---------------------------------------------------------------------------------------------------------------
// Architectures

/** How one supported architecture's config.json is read (everything else is shared by the family). */
export interface ArchitectureSpec {
  modelType: string; // config.json model_type, used when `architectures` is missing
  qkvBias: 'always' | 'attention_bias'; // q/k/v have biases always (Qwen2) or when attention_bias is true
  slidingWindowSwitch: 'sliding_window' | 'use_sliding_window'; // sliding window on: field non-null / true
}

/** The supported architectures (config.json `architectures[0]`). */
export const ARCHITECTURES = {
  LlamaForCausalLM: { modelType: 'llama', qkvBias: 'attention_bias', slidingWindowSwitch: 'sliding_window' },
  MistralForCausalLM: { modelType: 'mistral', qkvBias: 'attention_bias', slidingWindowSwitch: 'sliding_window' },
  Qwen2ForCausalLM: { modelType: 'qwen2', qkvBias: 'always', slidingWindowSwitch: 'use_sliding_window' },
} as const satisfies Record<string, ArchitectureSpec>;

export type ArchitectureName = keyof typeof ARCHITECTURES;

/** The spec of an architecture name, or null when it is not supported. */
export function architectureSpec(name: string): ArchitectureSpec | null {
  return Object.hasOwn(ARCHITECTURES, name) ? ARCHITECTURES[name as ArchitectureName] : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder block: linear layers and norms

/** The seven linear layers of a LLaMA decoder block, in execution order. */
export const LINEAR_NAMES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/** The tensors a block feeds its linears: linears of one group read the same tensor (one set of statistics). */
export type InputGroup = 'attn_in' | 'o_in' | 'mlp_in' | 'down_in';

/** One linear layer of a block: y = x W^T + b with W [out, in] as Hugging Face stores it. */
export interface LinearSpec {
  module: 'self_attn' | 'mlp'; // Hugging Face submodule: model.layers.{i}.{module}.{name}.weight
  shape: (c: LlamaConfig) => [number, number]; // [out, in]
  bias: (c: LlamaConfig) => boolean; // whether the checkpoint has model.layers.{i}.{module}.{name}.bias
  inputGroup: InputGroup;
}

const qHeads = (c: LlamaConfig): number => c.numHeads * c.headDim;
const kvHeads = (c: LlamaConfig): number => c.numKvHeads * c.headDim;

/** Every linear of a block (the Record makes a name without a spec a type error). */
export const LINEARS: Record<LinearName, LinearSpec> = {
  q_proj: { module: 'self_attn', shape: (c) => [qHeads(c), c.hiddenSize], bias: (c) => c.qkvBias, inputGroup: 'attn_in' },
  k_proj: { module: 'self_attn', shape: (c) => [kvHeads(c), c.hiddenSize], bias: (c) => c.qkvBias, inputGroup: 'attn_in' },
  v_proj: { module: 'self_attn', shape: (c) => [kvHeads(c), c.hiddenSize], bias: (c) => c.qkvBias, inputGroup: 'attn_in' },
  o_proj: { module: 'self_attn', shape: (c) => [c.hiddenSize, qHeads(c)], bias: (c) => c.oBias, inputGroup: 'o_in' },
  gate_proj: { module: 'mlp', shape: (c) => [c.intermediateSize, c.hiddenSize], bias: (c) => c.mlpBias, inputGroup: 'mlp_in' },
  up_proj: { module: 'mlp', shape: (c) => [c.intermediateSize, c.hiddenSize], bias: (c) => c.mlpBias, inputGroup: 'mlp_in' },
  down_proj: { module: 'mlp', shape: (c) => [c.hiddenSize, c.intermediateSize], bias: (c) => c.mlpBias, inputGroup: 'down_in' },
};

/** Linears that read the same tensor share one statistics accumulator (identical to separate hooks). */
export const INPUT_GROUP: Record<LinearName, InputGroup> = Object.fromEntries(
  LINEAR_NAMES.map((n) => [n, LINEARS[n].inputGroup]),
) as Record<LinearName, InputGroup>;

/** The RMSNorms of a block: the BlockWeights field, the Hugging Face module, the first linear reading its output. */
export const BLOCK_NORMS = [
  { key: 'inputNorm', module: 'input_layernorm', before: 'q_proj' },
  { key: 'postNorm', module: 'post_attention_layernorm', before: 'gate_proj' },
] as const satisfies readonly { key: string; module: string; before: LinearName }[];
export type NormKey = (typeof BLOCK_NORMS)[number]['key'];

/** Hugging Face tensor name of a block's linear layer weight (or bias). */
export function linearTensorName(layer: number, name: LinearName, kind: 'weight' | 'bias' = 'weight'): string {
  return `model.layers.${layer}.${LINEARS[name].module}.${name}.${kind}`;
}

/** Shape [out, in] of a block's linear layer. */
export function linearShape(c: LlamaConfig, name: LinearName): [number, number] {
  return LINEARS[name].shape(c);
}

/** Whether a block's linear layer has a bias. */
export function hasBias(c: LlamaConfig, name: LinearName): boolean {
  return LINEARS[name].bias(c);
}

/** Hugging Face tensor name of a block's norm weight. */
export function normTensorName(layer: number, norm: NormKey): string {
  const spec = BLOCK_NORMS.find((n) => n.key === norm)!;
  return `model.layers.${layer}.${spec.module}.weight`;
}

// ---------------------------------------------------------------------------------------------------------------
// Tensors of a checkpoint

export const EMBED_TOKENS = 'model.embed_tokens.weight'; // [vocab, hidden]
export const FINAL_NORM = 'model.norm.weight'; // [hidden]
export const LM_HEAD = 'lm_head.weight'; // [vocab, hidden]; absent when tied to the embeddings

/** A tensor the config implies, with its shape. */
export interface TensorSpec {
  name: string;
  shape: number[];
}

/** The tensors of one decoder block, with shapes, in Hugging Face order (each norm before its first reader). */
export function blockTensors(c: LlamaConfig, layer: number): TensorSpec[] {
  const out: TensorSpec[] = [];
  for (const n of LINEAR_NAMES) {
    for (const norm of BLOCK_NORMS) if (norm.before === n) out.push({ name: normTensorName(layer, norm.key), shape: [c.hiddenSize] });
    const shape = linearShape(c, n);
    out.push({ name: linearTensorName(layer, n), shape });
    if (hasBias(c, n)) out.push({ name: linearTensorName(layer, n, 'bias'), shape: [shape[0]] });
  }
  return out;
}

/** Every tensor the config implies, with shapes (lm_head omitted when tied). */
export function expectedTensors(c: LlamaConfig): TensorSpec[] {
  const out: TensorSpec[] = [{ name: EMBED_TOKENS, shape: [c.vocabSize, c.hiddenSize] }];
  for (let i = 0; i < c.numLayers; i++) out.push(...blockTensors(c, i));
  out.push({ name: FINAL_NORM, shape: [c.hiddenSize] });
  if (!c.tieWordEmbeddings) out.push({ name: LM_HEAD, shape: [c.vocabSize, c.hiddenSize] });
  return out;
}

/** Parameter count implied by a config (embeddings, blocks, norms, lm_head unless tied). */
export function parameterCount(c: LlamaConfig): number {
  return expectedTensors(c).reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
}
