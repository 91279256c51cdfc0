/**
 * THE architecture spec of the LLaMA family and its relatives (Mistral, Qwen2, Qwen3, Gemma 3, Phi-3), read by
 * everything else (config parsing, the checkpoint reader and writer, the model, the pruning pipeline, experiments,
 * fine-tuning): which architectures are supported and what each reads from config.json and computes differently
 * (norm form and placement, q/k norms, activation, embedding scale, attention pattern, RoPE layout, fused storage),
 * the linear layers of a decoder block (Hugging Face tensor name, shape from the config, bias, which linears read the
 * same input), the block's norms, the tensors outside the blocks, and how fused tensors map to the seven linears.
 *
 * Adding an architecture option or a linear layer is a change here (and in test/model/architecture.test.ts); the
 * forward in llama.ts is the only other place that knows what a block computes.
 */
import type { LlamaConfig } from './config.js';

// ---------------------------------------------------------------------------------------------------------------
// Architectures

/** How one supported architecture's config.json is read and what its decoder block computes differently. */
export interface ArchitectureSpec {
  modelType: string; // config.json model_type, used when `architectures` is missing
  qkvBias: 'always' | 'attention_bias' | 'never'; // q/k/v biases: always (Qwen2), when attention_bias is true, never (Phi-3)
  mlpBias: 'mlp_bias' | 'never'; // gate/up/down biases when mlp_bias is true (LLaMA family), or never
  /** Which layers use sliding-window attention: every layer when `sliding_window` is set; layers from
   * `max_window_layers` on when `use_sliding_window` is true (Qwen); `layer_types` / `sliding_window_pattern`. */
  slidingWindowSwitch: 'sliding_window' | 'use_sliding_window' | 'layer_types';
  norm: 'weight' | 'one_plus_weight'; // RMSNorm output times w (LLaMA) or times (1 + w) (Gemma)
  sandwichNorms: boolean; // Gemma 3: norms on the attention and MLP outputs too (four per block)
  qkNorm: boolean; // RMSNorm of each query and key head before RoPE (q_norm, k_norm)
  activationField: 'hidden_act' | 'hidden_activation'; // config field naming the MLP activation
  embedScale: boolean; // embeddings multiplied by sqrt(hidden_size)
  queryPreAttnScalar: boolean; // attention scores scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5
  ropeLocalBase: boolean; // sliding layers rotate with rope_local_base_freq (unscaled), full layers with rope_theta
  partialRotary: boolean; // partial_rotary_factor: RoPE on the first part of each head only
  fusedLinears: boolean; // stored as qkv_proj and gate_up_proj (split into the seven linears on read, fused on write)
  /** transformers' defaults for fields a config.json may omit (where they differ from LLaMA's). */
  defaults: { headDim?: number; tieWordEmbeddings?: boolean; ropeTheta?: number; rmsNormEps?: number; slidingWindow?: number; activation?: string };
}

const LLAMA_LIKE = {
  qkvBias: 'attention_bias', mlpBias: 'mlp_bias', slidingWindowSwitch: 'sliding_window', norm: 'weight', sandwichNorms: false,
  qkNorm: false, activationField: 'hidden_act', embedScale: false, queryPreAttnScalar: false, ropeLocalBase: false,
  partialRotary: false, fusedLinears: false, defaults: {},
} as const satisfies Omit<ArchitectureSpec, 'modelType'>;

/** The supported architectures (config.json `architectures[0]`). */
export const ARCHITECTURES = {
  LlamaForCausalLM: { ...LLAMA_LIKE, modelType: 'llama' },
  MistralForCausalLM: { ...LLAMA_LIKE, modelType: 'mistral' },
  Qwen2ForCausalLM: { ...LLAMA_LIKE, modelType: 'qwen2', qkvBias: 'always', slidingWindowSwitch: 'use_sliding_window' },
  Qwen3ForCausalLM: {
    ...LLAMA_LIKE, modelType: 'qwen3', mlpBias: 'never', slidingWindowSwitch: 'use_sliding_window', qkNorm: true,
    defaults: { headDim: 128 },
  },
  Gemma3ForCausalLM: {
    ...LLAMA_LIKE, modelType: 'gemma3_text', mlpBias: 'never', slidingWindowSwitch: 'layer_types', norm: 'one_plus_weight',
    sandwichNorms: true, qkNorm: true, activationField: 'hidden_activation', embedScale: true, queryPreAttnScalar: true,
    ropeLocalBase: true,
    defaults: { headDim: 256, tieWordEmbeddings: true, ropeTheta: 1_000_000, slidingWindow: 4096, activation: 'gelu_pytorch_tanh' },
  },
  Phi3ForCausalLM: {
    ...LLAMA_LIKE, modelType: 'phi3', qkvBias: 'never', mlpBias: 'never', partialRotary: true, fusedLinears: true,
    defaults: { rmsNormEps: 1e-5 },
  },
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

/** The RMSNorms a block can have (BlockWeights `norms` keys); which ones a block has depends on the config. */
export const NORM_KEYS = ['inputNorm', 'qNorm', 'kNorm', 'attnOutNorm', 'postNorm', 'mlpOutNorm'] as const;
export type NormKey = (typeof NORM_KEYS)[number];

/** One RMSNorm of a block: its key, its Hugging Face module, its width, the first linear after it (null: last). */
export interface NormSpec {
  key: NormKey;
  module: string; // model.layers.{i}.{module}.weight
  size: number;
  before: LinearName | null;
}

/**
 * The RMSNorms of a block, in Hugging Face order: `inputNorm` before attention, `qNorm`/`kNorm` on each query/key
 * head (Qwen3, Gemma 3), `attnOutNorm` on the attention output (Gemma 3's post_attention_layernorm), `postNorm`
 * before the MLP (LLaMA's post_attention_layernorm, Gemma 3's pre_feedforward_layernorm), `mlpOutNorm` on the MLP
 * output (Gemma 3).
 */
export function blockNorms(c: LlamaConfig): NormSpec[] {
  const h = c.hiddenSize;
  const out: NormSpec[] = [{ key: 'inputNorm', module: 'input_layernorm', size: h, before: 'q_proj' }];
  if (c.qkNorm) {
    out.push({ key: 'qNorm', module: 'self_attn.q_norm', size: c.headDim, before: 'o_proj' });
    out.push({ key: 'kNorm', module: 'self_attn.k_norm', size: c.headDim, before: 'o_proj' });
  }
  if (c.sandwichNorms) {
    out.push({ key: 'attnOutNorm', module: 'post_attention_layernorm', size: h, before: 'gate_proj' });
    out.push({ key: 'postNorm', module: 'pre_feedforward_layernorm', size: h, before: 'gate_proj' });
    out.push({ key: 'mlpOutNorm', module: 'post_feedforward_layernorm', size: h, before: null });
  } else {
    out.push({ key: 'postNorm', module: 'post_attention_layernorm', size: h, before: 'gate_proj' });
  }
  return out;
}

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

/** Hugging Face tensor name of a block's norm weight (an error for a norm the config's blocks do not have). */
export function normTensorName(c: LlamaConfig, layer: number, norm: NormKey): string {
  const spec = blockNorms(c).find((n) => n.key === norm);
  if (!spec) throw new Error(`${c.architecture} blocks have no ${norm}`);
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
  const norms = blockNorms(c);
  const pushNorms = (before: LinearName | null): void => {
    for (const norm of norms) if (norm.before === before) out.push({ name: `model.layers.${layer}.${norm.module}.weight`, shape: [norm.size] });
  };
  for (const n of LINEAR_NAMES) {
    pushNorms(n);
    const shape = linearShape(c, n);
    out.push({ name: linearTensorName(layer, n), shape });
    if (hasBias(c, n)) out.push({ name: linearTensorName(layer, n, 'bias'), shape: [shape[0]] });
  }
  pushNorms(null);
  return out;
}

/**
 * Every tensor the config implies, with shapes (lm_head omitted when tied): the seven linears of each block
 * separately, whatever the stored layout (see `storedTensors`). Everything outside the checkpoint reader and writer
 * names tensors this way.
 */
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

// ---------------------------------------------------------------------------------------------------------------
// Fused linears (Phi-3): stored as one tensor, seen as the seven linears

/** A stored tensor that holds several linears' weights stacked along the output dimension (rows), in order. */
export interface FusedTensor {
  name: string; // e.g. model.layers.0.self_attn.qkv_proj.weight
  shape: [number, number]; // [sum of the parts' rows, in]
  parts: { name: string; rows: number }[]; // the linears' weight names, in stacking order
}

/** Phi-3's fused modules: which linears each holds, in the order transformers splits them. */
export const FUSED_MODULES = [
  { module: 'self_attn', name: 'qkv_proj', parts: ['q_proj', 'k_proj', 'v_proj'] },
  { module: 'mlp', name: 'gate_up_proj', parts: ['gate_proj', 'up_proj'] },
] as const satisfies readonly { module: LinearSpec['module']; name: string; parts: readonly LinearName[] }[];

/** The fused tensors of a block (none unless the architecture stores its linears fused). */
export function blockFusedTensors(c: LlamaConfig, layer: number): FusedTensor[] {
  if (!c.fusedLinears) return [];
  return FUSED_MODULES.map((f) => {
    const parts = f.parts.map((n) => ({ name: linearTensorName(layer, n), rows: linearShape(c, n)[0] }));
    return {
      name: `model.layers.${layer}.${f.module}.${f.name}.weight`,
      shape: [parts.reduce((a, p) => a + p.rows, 0), linearShape(c, f.parts[0])[1]] as [number, number],
      parts,
    };
  });
}

/** Every fused tensor of the checkpoint. */
export function fusedTensors(c: LlamaConfig): FusedTensor[] {
  const out: FusedTensor[] = [];
  for (let i = 0; i < c.numLayers; i++) out.push(...blockFusedTensors(c, i));
  return out;
}

/** Where a linear's weight lives inside a fused tensor: its stored name and row range, or null when stored as is. */
export function fusedLocation(c: LlamaConfig, name: string): { name: string; row: number; rows: number; cols: number } | null {
  if (!c.fusedLinears) return null;
  const m = /^model\.layers\.(\d+)\./.exec(name);
  if (!m) return null;
  for (const f of blockFusedTensors(c, Number(m[1]))) {
    let row = 0;
    for (const p of f.parts) {
      if (p.name === name) return { name: f.name, row, rows: p.rows, cols: f.shape[1] };
      row += p.rows;
    }
  }
  return null;
}

/** The tensors as stored in the checkpoint: `expectedTensors` with each fused group as its one stored tensor. */
export function storedTensors(c: LlamaConfig): TensorSpec[] {
  return fuseTensorList(expectedTensors(c), fusedTensors(c));
}

/** A tensor list with every fused group's parts replaced by the fused tensor (at the place of its first part). */
export function fuseTensorList(list: TensorSpec[], fused: readonly FusedTensor[]): TensorSpec[] {
  if (fused.length === 0) return list;
  const owner = new Map<string, FusedTensor>();
  for (const f of fused) for (const p of f.parts) owner.set(p.name, f);
  const out: TensorSpec[] = [];
  const placed = new Set<string>();
  for (const t of list) {
    const f = owner.get(t.name);
    if (!f) out.push(t);
    else if (!placed.has(f.name)) {
      placed.add(f.name);
      out.push({ name: f.name, shape: [...f.shape] });
    }
  }
  return out;
}
