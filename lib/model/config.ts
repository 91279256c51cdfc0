import { readFileSync } from '../platform/fs.js';
import { CheckpointError, UnsupportedError } from '../errors.js';
import { ARCHITECTURES, architectureSpec } from './architecture.js';

/** RoPE frequency scaling of Hugging Face configs (`rope_scaling`). */
export type RopeScaling =
  | { type: 'linear'; factor: number } // positions divided by factor
  | {
      type: 'llama3'; // LLaMA-3.1 wavelength-dependent scaling
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

/** One flat, typed LLaMA-family config. Architecture differences are data here, never a copied model file. */
export interface LlamaConfig {
  architecture: string; // LlamaForCausalLM | MistralForCausalLM | Qwen2ForCausalLM
  modelType: string; // config.json model_type
  vocabSize: number; // rows of embed_tokens and lm_head
  hiddenSize: number; // width of the residual stream
  intermediateSize: number; // width of the SiLU-gated MLP
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
  slidingWindow: number | null; // Mistral/Qwen2 sliding window; longer sequences are refused
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

function parseRopeScaling(file: string, value: unknown): RopeScaling | null {
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
  throw new UnsupportedError(
    `${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: linear, llama3, default)`,
  );
}

/** Turn a parsed config.json into a LlamaConfig, rejecting what the model cannot run. */
export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): LlamaConfig {
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
  const act = raw['hidden_act'] ?? 'silu';
  if (act !== 'silu') throw new UnsupportedError(`${file}: hidden_act '${String(act)}' is not supported (only silu)`);
  const hiddenSize = field(file, raw, 'hidden_size', 'int') as number;
  const numHeads = field(file, raw, 'num_attention_heads', 'int') as number;
  const numKvHeads = optional(file, raw, 'num_key_value_heads', 'int', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new CheckpointError(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  let headDim: number;
  if (raw['head_dim'] !== undefined && raw['head_dim'] !== null) headDim = field(file, raw, 'head_dim', 'int') as number;
  else if (hiddenSize % numHeads === 0) headDim = hiddenSize / numHeads;
  else {
    throw new CheckpointError(
      `${file}: hidden_size (${hiddenSize}) is not a multiple of num_attention_heads (${numHeads}) and head_dim is not given`,
    );
  }
  if (headDim % 2 !== 0) throw new CheckpointError(`${file}: head_dim ${headDim} must be even for RoPE`);
  const attentionBias = optional(file, raw, 'attention_bias', 'bool', false);
  const slidingWindowOn =
    spec.slidingWindowSwitch === 'use_sliding_window' ? raw['use_sliding_window'] === true : raw['sliding_window'] != null;
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
    numLayers: field(file, raw, 'num_hidden_layers', 'int') as number,
    numHeads,
    numKvHeads,
    headDim,
    maxPositions: optional(file, raw, 'max_position_embeddings', 'int', 2048),
    rmsNormEps: optional(file, raw, 'rms_norm_eps', 'number', 1e-6),
    ropeTheta: optional(file, raw, 'rope_theta', 'number', 10000),
    ropeScaling: parseRopeScaling(file, raw['rope_scaling']),
    attentionBias,
    qkvBias: attentionBias || spec.qkvBias === 'always',
    oBias: attentionBias,
    mlpBias: optional(file, raw, 'mlp_bias', 'bool', false),
    tieWordEmbeddings: optional(file, raw, 'tie_word_embeddings', 'bool', false),
    slidingWindow: slidingWindowOn && typeof raw['sliding_window'] === 'number' ? raw['sliding_window'] : null,
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
    throw new CheckpointError(`${file}: cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  return parseConfigText(text, file);
}

/** config.json's text, parsed and validated (`file` names it in messages). */
export function parseConfigText(text: string, file = 'config.json'): LlamaConfig {
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
export { parameterCount } from './architecture.js';
