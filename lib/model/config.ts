import { readFileSync } from 'node:fs';
import { CheckpointError, UnsupportedError } from '../errors.js';
import { ARCHITECTURES, architectureSpec, type ArchitectureSpec } from './architecture.js';

/** RoPE frequency scaling of Hugging Face configs (`rope_scaling`). */
export type RopeScaling =
  | { type: 'linear'; factor: number } // positions divided by factor
  | {
      type: 'llama3'; // LLaMA-3.1 wavelength-dependent scaling
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: 'longrope'; // Phi-3 LongRoPE: per-frequency factors, short up to the original context, long beyond it
      shortFactor: number[];
      longFactor: number[];
      originalMaxPositionEmbeddings: number; // the long factors apply when a sequence reaches past this
      attentionFactor: number; // cos and sin are multiplied by it
    };

/** Attention of one layer: over every earlier position, or over the last `slidingWindow` positions only. */
export type AttentionKind = 'full_attention' | 'sliding_attention';

/** One flat, typed LLaMA-family config. Architecture differences are data here, never a copied model file. */
export interface LlamaConfig {
  architecture: string; // a key of the architecture spec (lib/model/architecture.ts)
  modelType: string; // config.json model_type
  vocabSize: number; // rows of embed_tokens and lm_head
  hiddenSize: number; // width of the residual stream
  intermediateSize: number; // width of the gated MLP
  numLayers: number; // decoder blocks
  numHeads: number; // query heads
  numKvHeads: number; // key/value heads (grouped-query attention when < numHeads)
  headDim: number; // per-head width (explicit head_dim, else hidden / heads)
  maxPositions: number; // max_position_embeddings: the model's context
  rmsNormEps: number; // epsilon inside RMSNorm
  ropeTheta: number; // RoPE base
  ropeScaling: RopeScaling | null;
  attentionBias: boolean; // q/k/v/o have biases (LLaMA attention_bias)
  qkvBias: boolean; // q/k/v have biases (Qwen2, or attention_bias)
  oBias: boolean; // o_proj has a bias (attention_bias only)
  mlpBias: boolean; // gate/up/down have biases
  tieWordEmbeddings: boolean; // lm_head shares embed_tokens
  slidingWindow: number | null; // window of the sliding-attention layers (each position sees itself and window-1 before)
  layerTypes: AttentionKind[]; // attention of each layer
  activation: 'silu' | 'gelu_pytorch_tanh'; // of the gated MLP: down(act(gate(x)) * up(x))
  normForm: 'weight' | 'one_plus_weight'; // RMSNorm output times w, or times (1 + w) (Gemma)
  sandwichNorms: boolean; // norms on the attention and MLP outputs too (Gemma 3)
  qkNorm: boolean; // per-head RMSNorm of queries and keys before RoPE (q_norm, k_norm)
  embedScale: number | null; // embeddings multiplied by this (Gemma: sqrt(hidden_size) as float32)
  attnScale: number; // queries multiplied by this before q k^T (head_dim^-0.5, Gemma query_pre_attn_scalar^-0.5)
  ropeLocalTheta: number | null; // RoPE base of sliding layers, unscaled (Gemma 3); null: as the full layers
  rotaryDim: number; // leading dims of each head that RoPE rotates (partial_rotary_factor; else headDim)
  fusedLinears: boolean; // stored as qkv_proj / gate_up_proj (Phi-3)
  bosTokenId: number | null;
  eosTokenId: number | null;
  torchDtype: string | null; // dtype recorded in config.json
  raw: Record<string, unknown>; // config.json as read, written back unchanged with the pruned model
}

/** The supported architectures: the keys of the architecture spec (lib/model/architecture.ts). */
export const SUPPORTED_ARCHITECTURES = Object.keys(ARCHITECTURES) as readonly string[];

function field(file: string, raw: Record<string, unknown>, key: string, kind: 'int' | 'number' | 'bool'): unknown {
  const v = raw[key];
  const ok =
    kind === 'int'
      ? typeof v === 'number' && Number.isInteger(v) && v > 0
      : kind === 'number'
        ? typeof v === 'number' && Number.isFinite(v)
        : typeof v === 'boolean';
  if (!ok) {
    const want = kind === 'int' ? 'a positive integer' : kind === 'number' ? 'a finite number' : 'true or false';
    throw new CheckpointError(`${file}: field '${key}' must be ${want}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optional<T>(
  file: string,
  raw: Record<string, unknown>,
  key: string,
  kind: 'int' | 'number' | 'bool',
  fallback: T,
): T {
  return raw[key] === undefined || raw[key] === null ? fallback : (field(file, raw, key, kind) as T);
}

/** The context sizes longrope needs from the top level of config.json (transformers' _compute_longrope_parameters). */
interface RopeContext {
  maxPositions: number;
  originalMaxPositions: number | null; // top-level original_max_position_embeddings (Phi-3)
  rotaryDim: number;
}

function factorList(where: string, rs: Record<string, unknown>, key: string, n: number): number[] {
  const v = rs[key];
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
    throw new CheckpointError(`${where}: field '${key}' must be a list of ${n} positive numbers (rotary dims / 2)`);
  }
  return v as number[];
}

function parseLongrope(where: string, rs: Record<string, unknown>, ctx: RopeContext): RopeScaling {
  const fromScaling = rs['original_max_position_embeddings'];
  const original = ctx.originalMaxPositions ?? (typeof fromScaling === 'number' ? fromScaling : null);
  // transformers: factor = max_position_embeddings / original_max_position_embeddings when the latter is given
  const factor = original !== null ? ctx.maxPositions / original : (field(where, rs, 'factor', 'number') as number);
  const orig = original ?? ctx.maxPositions;
  const given = rs['attention_factor'];
  const attentionFactor =
    typeof given === 'number' ? given : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
  return {
    type: 'longrope',
    shortFactor: factorList(where, rs, 'short_factor', ctx.rotaryDim / 2),
    longFactor: factorList(where, rs, 'long_factor', ctx.rotaryDim / 2),
    originalMaxPositionEmbeddings: orig,
    attentionFactor,
  };
}

function parseRopeScaling(file: string, value: unknown, ctx: RopeContext): RopeScaling | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object') throw new CheckpointError(`${file}: field 'rope_scaling' must be an object or null`);
  const rs = value as Record<string, unknown>;
  const type = rs['rope_type'] ?? rs['type'];
  const where = `${file}: rope_scaling`;
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: field(where, rs, 'factor', 'number') as number };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: field(where, rs, 'factor', 'number') as number,
      lowFreqFactor: field(where, rs, 'low_freq_factor', 'number') as number,
      highFreqFactor: field(where, rs, 'high_freq_factor', 'number') as number,
      originalMaxPositionEmbeddings: field(where, rs, 'original_max_position_embeddings', 'int') as number,
    };
  }
  if (type === 'longrope' || type === 'su') return parseLongrope(where, rs, ctx);
  throw new UnsupportedError(
    `${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: linear, llama3, longrope, default)`,
  );
}

function resolveArchitecture(file: string, raw: Record<string, unknown>): { architecture: string; spec: ArchitectureSpec; modelType: string } {
  const archs = raw['architectures'];
  const modelType = typeof raw['model_type'] === 'string' ? raw['model_type'] : '';
  let architecture: string;
  if (Array.isArray(archs) && typeof archs[0] === 'string') architecture = archs[0];
  else {
    const byType = Object.entries(ARCHITECTURES).find(([, a]) => a.modelType === modelType);
    if (!byType) throw new CheckpointError(`${file}: field 'architectures' is missing and model_type '${modelType}' is unknown`);
    architecture = byType[0];
  }
  const spec = architectureSpec(architecture);
  if (!spec) {
    throw new UnsupportedError(
      `${file}: architecture '${architecture}' is not supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  return { architecture, spec, modelType };
}

function parseHeads(file: string, raw: Record<string, unknown>, spec: ArchitectureSpec, hiddenSize: number): { numHeads: number; numKvHeads: number; headDim: number } {
  const numHeads = field(file, raw, 'num_attention_heads', 'int') as number;
  const numKvHeads = optional(file, raw, 'num_key_value_heads', 'int', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new CheckpointError(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  let headDim: number;
  if (raw['head_dim'] !== undefined && raw['head_dim'] !== null) headDim = field(file, raw, 'head_dim', 'int') as number;
  else if (spec.defaults.headDim !== undefined) headDim = spec.defaults.headDim;
  else if (hiddenSize % numHeads === 0) headDim = hiddenSize / numHeads;
  else {
    throw new CheckpointError(
      `${file}: hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given`,
    );
  }
  if (headDim % 2 !== 0) throw new CheckpointError(`${file}: head_dim ${headDim} must be even for RoPE`);
  return { numHeads, numKvHeads, headDim };
}

/**
 * Which layers attend through a sliding window, as transformers decides it: every layer when `sliding_window` is
 * set (LLaMA, Mistral, Phi-3); with `use_sliding_window`, the layers from `max_window_layers` on (Qwen2, Qwen3);
 * Gemma 3: `layer_types`, else every layer but each `sliding_window_pattern`-th. An explicit `layer_types` wins.
 */
function parseAttentionPattern(file: string, raw: Record<string, unknown>, spec: ArchitectureSpec, numLayers: number): { slidingWindow: number | null; layerTypes: AttentionKind[] } {
  const sw = spec.slidingWindowSwitch;
  const windowField = sw === 'layer_types' ? optional(file, raw, 'sliding_window', 'int', spec.defaults.slidingWindow ?? 4096) : raw['sliding_window'];
  const on = sw === 'use_sliding_window' ? raw['use_sliding_window'] === true : windowField != null;
  const slidingWindow = on && typeof windowField === 'number' ? windowField : null;
  const full = (): AttentionKind[] => Array.from({ length: numLayers }, () => 'full_attention' as const);
  if (slidingWindow === null) return { slidingWindow, layerTypes: full() };
  const given = raw['layer_types'];
  if (given !== undefined && given !== null && sw !== 'sliding_window') {
    if (!Array.isArray(given) || given.length !== numLayers || !given.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      throw new CheckpointError(`${file}: field 'layer_types' must list 'full_attention' or 'sliding_attention' for each of the ${numLayers} layers`);
    }
    return { slidingWindow, layerTypes: given as AttentionKind[] };
  }
  let sliding: (i: number) => boolean = () => true;
  if (sw === 'use_sliding_window') {
    const from = optional(file, raw, 'max_window_layers', 'int', 28);
    sliding = (i) => i >= from;
  } else if (sw === 'layer_types') {
    const pattern = optional(file, raw, 'sliding_window_pattern', 'int', optional(file, raw, '_sliding_window_pattern', 'int', 6));
    sliding = (i) => (i + 1) % pattern !== 0;
  }
  return { slidingWindow, layerTypes: full().map((t, i) => (sliding(i) ? 'sliding_attention' : t)) };
}

/** Refuse the options of these families that the model does not compute. */
function refuseUnsupported(file: string, raw: Record<string, unknown>): void {
  for (const key of ['final_logit_softcapping', 'attn_logit_softcapping']) {
    if (raw[key] !== undefined && raw[key] !== null) throw new UnsupportedError(`${file}: ${key} ${JSON.stringify(raw[key])} is not supported (only null)`);
  }
  if (raw['use_bidirectional_attention'] === true) throw new UnsupportedError(`${file}: use_bidirectional_attention true is not supported (causal models only)`);
  if (raw['rope_parameters'] !== undefined && raw['rope_theta'] === undefined) {
    throw new UnsupportedError(`${file}: 'rope_parameters' without 'rope_theta' (the transformers 5 layout) is not supported; give rope_theta and rope_scaling`);
  }
}

/** What the block computes differently per family: activation, norm form and placement, scales, RoPE layout. */
function parseFamily(file: string, raw: Record<string, unknown>, spec: ArchitectureSpec, hiddenSize: number, headDim: number) {
  const act = raw[spec.activationField] ?? spec.defaults.activation ?? 'silu';
  const allowed = spec.activationField === 'hidden_activation' ? 'gelu_pytorch_tanh' : 'silu';
  if (act !== allowed) throw new UnsupportedError(`${file}: ${spec.activationField} '${String(act)}' is not supported (only ${allowed})`);
  const partial = spec.partialRotary ? optional(file, raw, 'partial_rotary_factor', 'number', 1) : 1;
  const rotaryDim = Math.trunc(headDim * partial);
  if (!(partial > 0 && partial <= 1) || rotaryDim % 2 !== 0 || rotaryDim === 0) {
    throw new CheckpointError(`${file}: partial_rotary_factor ${partial} gives ${rotaryDim} rotary dims of head_dim ${headDim}; expected an even number > 0`);
  }
  const scalar = spec.queryPreAttnScalar ? optional(file, raw, 'query_pre_attn_scalar', 'number', 256) : null;
  return {
    activation: allowed as LlamaConfig['activation'],
    normForm: spec.norm,
    sandwichNorms: spec.sandwichNorms,
    qkNorm: spec.qkNorm,
    embedScale: spec.embedScale ? Math.fround(Math.sqrt(hiddenSize)) : null,
    attnScale: scalar !== null ? scalar ** -0.5 : 1 / Math.sqrt(headDim),
    ropeLocalTheta: spec.ropeLocalBase ? optional(file, raw, 'rope_local_base_freq', 'number', 10000) : null,
    rotaryDim,
    fusedLinears: spec.fusedLinears,
  };
}

/** Turn a parsed config.json into a LlamaConfig, rejecting what the model cannot run. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): LlamaConfig {
  const { architecture, spec, modelType } = resolveArchitecture(file, raw);
  refuseUnsupported(file, raw);
  const hiddenSize = field(file, raw, 'hidden_size', 'int') as number;
  const numLayers = field(file, raw, 'num_hidden_layers', 'int') as number;
  const { numHeads, numKvHeads, headDim } = parseHeads(file, raw, spec, hiddenSize);
  const family = parseFamily(file, raw, spec, hiddenSize, headDim);
  const attentionBias = spec.qkvBias !== 'never' && optional(file, raw, 'attention_bias', 'bool', false);
  const maxPositions = optional(file, raw, 'max_position_embeddings', 'int', 2048);
  const original = raw['original_max_position_embeddings'];
  const tok = (key: string): number | null => {
    const v = raw[key];
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
    return null;
  };
  return {
    architecture,
    modelType,
    vocabSize: field(file, raw, 'vocab_size', 'int') as number,
    hiddenSize,
    intermediateSize: field(file, raw, 'intermediate_size', 'int') as number,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    rmsNormEps: optional(file, raw, 'rms_norm_eps', 'number', spec.defaults.rmsNormEps ?? 1e-6),
    ropeTheta: optional(file, raw, 'rope_theta', 'number', spec.defaults.ropeTheta ?? 10000),
    ropeScaling: parseRopeScaling(file, raw['rope_scaling'], {
      maxPositions,
      originalMaxPositions: spec.partialRotary ? (typeof original === 'number' ? original : 4096) : null,
      rotaryDim: family.rotaryDim,
    }),
    attentionBias,
    qkvBias: attentionBias || spec.qkvBias === 'always',
    oBias: attentionBias,
    mlpBias: spec.mlpBias === 'mlp_bias' && optional(file, raw, 'mlp_bias', 'bool', false),
    tieWordEmbeddings: optional(file, raw, 'tie_word_embeddings', 'bool', spec.defaults.tieWordEmbeddings ?? false),
    ...parseAttentionPattern(file, raw, spec, numLayers),
    ...family,
    bosTokenId: tok('bos_token_id'),
    eosTokenId: tok('eos_token_id'),
    torchDtype: typeof raw['torch_dtype'] === 'string' ? raw['torch_dtype'] : null,
    raw,
  };
}

/** Read and parse `config.json` of a checkpoint folder. */
export function readConfig(file: string): LlamaConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CheckpointError(`${file}: not a JSON object`);
  return parseConfig(raw as Record<string, unknown>, file);
}

/** Parameter count implied by a config: computed from the architecture spec's tensors. */
