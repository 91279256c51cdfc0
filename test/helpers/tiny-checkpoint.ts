/**
 * Tiny random LLaMA-family checkpoints for tests.
 *
 *   const t = writeTinyCheckpoint(dir, { dtype: 'BF16', numKvHeads: 2 });
 *   const loaded = await loadModel(t.dir);            // config.json + safetensors + tokenizer files
 *   t.tensors.get('model.layers.0.self_attn.q_proj.weight') // the float32 values actually stored ([out, in])
 *
 * Written with the library's CheckpointWriter (F32, F16 or BF16; sharded when `maxShardBytes` is given),
 * config.json with Hugging Face field names, and a BPE tokenizer (vocab 2048) written by test/helpers/tiny-tokenizer.ts.
 * Values are seeded and deterministic: N(0, 1/in) for linear weights and N(0, 1/hidden) for embeddings and lm_head
 * (so attention scores and logits are O(1): a test can see RoPE, masking and head mixing), 1 + N(0, 0.1^2) for
 * RMSNorm weights, N(0, 0.1^2) for biases.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointWriter } from '../../lib/model/checkpoint.js';
import { expectedTensors } from '../../lib/model/architecture.js';
import { parseConfig, type LlamaConfig } from '../../lib/model/config.js';
import type { DType } from '../../lib/model/safetensors.js';
import { readSafetensorsFolder } from './reference-llama.js';
import { TinyRandom } from './tiny-random.js';
import { writeTinyTokenizer } from './tiny-tokenizer.js';

export { TinyRandom };

// Math functions as module constants: global lookups are slow inside jest's vm context (~10x in hot loops).
const { sqrt } = Math;

/** What to write. Every field is optional; defaults give a 2-layer LLaMA, hidden 64, 4 heads, F32, untied. */
export interface TinyCheckpointOptions {
  seed?: number; // PRNG seed (default 1)
  architecture?: 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';
  dtype?: DType; // storage dtype of every tensor (default F32)
  hiddenSize?: number; // default 64
  intermediateSize?: number; // default 128
  numLayers?: number; // default 2
  numHeads?: number; // default 4
  numKvHeads?: number; // default numHeads; fewer = grouped-query attention
  headDim?: number; // written as head_dim (may differ from hidden/heads); default: not written
  /** 'none' (default): separate lm_head; 'lm_head': tied, stored only as lm_head.weight with a `__metadata__`
   * alias for model.embed_tokens.weight (as TinyStories-656K); 'embed': tied, stored only as embed_tokens. */
  tie?: 'none' | 'lm_head' | 'embed';
  attentionBias?: boolean; // LLaMA attention_bias: q/k/v/o biases (Qwen2 has q/k/v biases anyway)
  mlpBias?: boolean; // LLaMA mlp_bias: gate/up/down biases
  ropeTheta?: number; // default 10000
  ropeScaling?: Record<string, unknown> | null; // written verbatim as rope_scaling
  maxPositions?: number; // max_position_embeddings, default 128
  rmsNormEps?: number; // default 1e-6
  maxShardBytes?: number; // shard the safetensors (with model.safetensors.index.json) above this size
  /** Copy tokenizer.json, tokenizer_config.json and special_tokens_map.json from this folder instead of writing
   * test/helpers/tiny-tokenizer.ts's (acceptance tests: a real checkpoint's tokenizer with the same vocabulary). */
  tokenizerFrom?: string;
}

/** What was written. */
export interface TinyCheckpoint {
  dir: string;
  raw: Record<string, unknown>; // config.json as written
  config: LlamaConfig; // config.json parsed by the library (written checkpoints must parse)
  /** Float32 values as stored (after dtype rounding), decoded back from the files, Hugging Face layout. Holds
   * every tensor the config implies: model.embed_tokens.weight always (for tie 'lm_head' it is the stored
   * lm_head.weight), lm_head.weight only when untied. */
  tensors: Map<string, Float32Array>;
  files: string[]; // the safetensors file names written
}

const VOCAB = 2048; // the vocabulary of the tokenizer written by test/helpers/tiny-tokenizer.ts (and TinyStories-656K's)
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const MODEL_TYPE: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

/** Build config.json (Hugging Face field names) for the options. */
export function tinyConfigJson(options: TinyCheckpointOptions = {}): Record<string, unknown> {
  const arch = options.architecture ?? 'LlamaForCausalLM';
  if (arch !== 'LlamaForCausalLM' && (options.attentionBias !== undefined || options.mlpBias !== undefined)) {
    throw new Error(`writeTinyCheckpoint: ${arch} has no attention_bias / mlp_bias fields (its biases are fixed)`);
  }
  const dtype = options.dtype ?? 'F32';
  const heads = options.numHeads ?? 4;
  const raw: Record<string, unknown> = {
    architectures: [arch],
    model_type: MODEL_TYPE[arch],
    vocab_size: VOCAB,
    hidden_size: options.hiddenSize ?? 64,
    intermediate_size: options.intermediateSize ?? 128,
    num_hidden_layers: options.numLayers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: options.numKvHeads ?? heads,
    hidden_act: 'silu',
    max_position_embeddings: options.maxPositions ?? 128,
    rms_norm_eps: options.rmsNormEps ?? 1e-6,
    rope_theta: options.ropeTheta ?? 10000,
    rope_scaling: options.ropeScaling ?? null,
    tie_word_embeddings: (options.tie ?? 'none') !== 'none',
    bos_token_id: 1,
    eos_token_id: 2,
    initializer_range: 0.02,
    torch_dtype: TORCH_DTYPE[dtype],
    use_cache: true,
  };
  if (arch === 'LlamaForCausalLM') {
    raw['attention_bias'] = options.attentionBias ?? false;
    raw['mlp_bias'] = options.mlpBias ?? false;
  }
  if (arch === 'MistralForCausalLM') raw['sliding_window'] = 4096;
  if (arch === 'Qwen2ForCausalLM') {
    raw['use_sliding_window'] = false;
    raw['sliding_window'] = 4096;
  }
  if (options.headDim !== undefined) raw['head_dim'] = options.headDim;
  return raw;
}

/**
 * Merge `patch` into `dir`/config.json (a key set to undefined is removed): how tests write unusual or malformed
 * configs (`{ hidden_size: 'abc' }`, `{ architectures: ['GPT2LMHeadModel'] }`) next to valid weights.
 */
export function patchConfigJson(dir: string, patch: Record<string, unknown>): Record<string, unknown> {
  const file = join(dir, 'config.json');
  const raw = { ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>), ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete raw[k];
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return raw;
}

/** Rewrite a safetensors file's header with extra `__metadata__` entries (data bytes unchanged). */
function addMetadata(path: string, extra: Record<string, string>): void {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  header['__metadata__'] = { ...((header['__metadata__'] as Record<string, string> | undefined) ?? {}), ...extra };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  writeFileSync(path, Buffer.concat([len, head, buf.subarray(8 + n)]));
}

/**
 * Write a random checkpoint into `dir` (created if needed; use a fresh folder: files already there, such as an
 * index from an earlier sharded write, are not removed) and return what was stored.
 * The same options and seed always give the same bytes.
 */
export function writeTinyCheckpoint(dir: string, options: TinyCheckpointOptions = {}): TinyCheckpoint {
  mkdirSync(dir, { recursive: true });
  const raw = tinyConfigJson(options);
  const config = parseConfig(raw, join(dir, 'config.json'));
  const tie = options.tie ?? 'none';
  // what is stored: the tensors the config implies, with a tied embedding under the name `tie` asks for
  const plan = expectedTensors(config).map((t) =>
    tie === 'lm_head' && t.name === 'model.embed_tokens.weight' ? { ...t, name: 'lm_head.weight' } : t,
  );
  const rng = new TinyRandom(options.seed ?? 1);
  const writer = new CheckpointWriter(dir, plan, {
    dtype: options.dtype ?? 'F32',
    ...(options.maxShardBytes !== undefined ? { maxShardBytes: options.maxShardBytes } : {}),
  });
  try {
    for (const { name, shape } of plan) {
      const n = shape.reduce((a, b) => a * b, 1);
      let values: Float32Array;
      if (name.endsWith('norm.weight')) values = rng.normals(n, 0.1, 1);
      else if (name.endsWith('.bias')) values = rng.normals(n, 0.1);
      else values = rng.normals(n, 1 / sqrt(shape[1]!)); // [out, in] (embeddings: [vocab, hidden])
      writer.write(name, values);
    }
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  const sharded = options.maxShardBytes !== undefined && writerShardCount(dir) > 1;
  const files = sharded ? shardFiles(dir) : ['model.safetensors'];
  if (tie === 'lm_head') {
    const holder = sharded ? shardOf(dir, 'lm_head.weight') : 'model.safetensors';
    addMetadata(join(dir, holder), { 'model.embed_tokens.weight': 'lm_head.weight' });
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  if (options.tokenizerFrom === undefined) writeTinyTokenizer(dir, { vocabSize: VOCAB });
  else for (const f of TOKENIZER_FILES) copyFileSync(join(options.tokenizerFrom, f), join(dir, f));

  const stored = readSafetensorsFolder(dir);
  const tensors = new Map<string, Float32Array>();
  for (const { name } of expectedTensors(config)) {
    const from = tie === 'lm_head' && name === 'model.embed_tokens.weight' ? 'lm_head.weight' : name;
    const v = stored.get(from);
    if (!v) throw new Error(`writeTinyCheckpoint: tensor '${from}' not found after writing ${dir}`);
    tensors.set(name, v);
  }
  return { dir, raw, config, tensors, files };
}

/** weight_map of the folder's index, or null when the checkpoint is a single file. */
function readIndex(dir: string): Record<string, string> | null {
  const file = join(dir, 'model.safetensors.index.json');
  if (!existsSync(file)) return null;
  return (JSON.parse(readFileSync(file, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
}

function writerShardCount(dir: string): number {
  const map = readIndex(dir);
  return map ? new Set(Object.values(map)).size : 1;
}

function shardFiles(dir: string): string[] {
  return [...new Set(Object.values(readIndex(dir) ?? {}))].sort();
}

function shardOf(dir: string, tensor: string): string {
  const f = readIndex(dir)?.[tensor];
  if (!f) throw new Error(`writeTinyCheckpoint: index of ${dir} does not list '${tensor}'`);
  return f;
}

/** `n` token ids drawn uniformly from the tiny checkpoints' vocabulary (seeded). */
export function randomIds(n: number, seed: number): number[] {
  const rng = new TinyRandom(seed);
  return Array.from({ length: n }, () => Math.floor(rng.uniform() * VOCAB));
}
