import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from './errors.js';
import type { LlamaModel } from './model/llama.js';
import type { LoadedModel } from './model/load.js';
import { blockNorms, parameterCount } from './model/architecture.js';
import type { LlamaConfig } from './model/config.js';

/**
 * Greedy decoding: append the argmax token `maxNewTokens` times (stops early at EOS when `stopAtEos`).
 * Recomputes the whole prefix each step (no KV cache): fine for checking a checkpoint, slow for long outputs.
 * Each token is read back with `await data()` (on every backend: WebGPU has no synchronous read).
 */
export async function generateIds(model: LlamaModel, prompt: number[], maxNewTokens: number, eosId: number | null = null): Promise<number[]> {
  if (prompt.length === 0) throw new ConfigError('generate: the prompt has no tokens (give text, or a model whose tokenizer adds BOS)');
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new ConfigError(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`, { option: 'maxNewTokens' });
  }
  const ids = [...prompt];
  const limit = Math.min(prompt.length + maxNewTokens, model.config.maxPositions);
  while (ids.length < limit) {
    const arg = tf.tidy(() => {
      const h = model.hidden([ids]);
      const last = tf.slice(h, [0, ids.length - 1, 0], [1, 1, -1]);
      return tf.argMax(tf.reshape(model.head(last), [-1]));
    });
    let next: number;
    try {
      next = (await arg.data())[0]!;
    } finally {
      arg.dispose();
    }
    ids.push(next);
    if (eosId !== null && next === eosId) break;
  }
  return ids;
}

/** Result of `generate`. */
export interface GenerateResult {
  ids: number[]; // prompt ids followed by the new ids
  text: string; // decoded ids (special tokens kept)
  newText: string; // decoded new ids only
}

/** Encode `prompt` (with BOS), decode greedily, decode the result. An empty prompt starts from BOS alone. */
export async function generate(m: LoadedModel, prompt: string, maxNewTokens: number, options: { stopAtEos?: boolean } = {}): Promise<GenerateResult> {
  const promptIds = m.tokenizer.encode(prompt, { addSpecialTokens: true });
  const ids = await generateIds(m.model, promptIds, maxNewTokens, options.stopAtEos ? m.tokenizer.eosId : null);
  const fresh = ids.slice(promptIds.length);
  return { ids, text: m.tokenizer.decode(ids), newText: m.tokenizer.decode(fresh, { skipSpecialTokens: true }) };
}

/** What `llm-prune inspect` prints. */
export interface ModelInfo {
  dir: string;
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  ropeTheta: number;
  ropeScaling: string | null;
  tiedEmbeddings: boolean;
  biases: { qkv: boolean; o: boolean; mlp: boolean };
  /** What the architecture spec switches on: attention layout, norms, activation, stored layout. */
  family: {
    attention: string; // 'full', or how many layers use which sliding window
    rotaryDims: number; // of headDim (partial rotary when fewer)
    localRopeTheta: number | null; // RoPE base of the sliding layers when it differs
    activation: string;
    norms: string; // the RMSNorm form and the norms of each block
    embedScale: number | null;
    fusedLinears: boolean; // stored as qkv_proj / gate_up_proj
  };
  dtype: string; // storage dtype of most tensors
  format: string; // 'dense', or 'compressed-tensors <sparsity format> (<structure>)'
  parameters: number;
  files: string[];
  sharded: boolean;
  tokenizer: { model: string; vocabSize: number; bos: string | null; eos: string | null; unk: string | null; pad: string | null; bosId: number | null; eosId: number | null; addBos: boolean };
}

function ropeScalingText(c: LlamaConfig): string | null {
  const rs = c.ropeScaling;
  if (!rs) return null;
  if (rs.type === 'longrope') return `longrope (original context ${rs.originalMaxPositionEmbeddings}, attention factor ${rs.attentionFactor})`;
  return `${rs.type} x${rs.factor}`;
}

function familyInfo(c: LlamaConfig): ModelInfo['family'] {
  const sliding = c.layerTypes.filter((t) => t === 'sliding_attention').length;
  const norms = blockNorms(c).map((n) => n.module).join(', ');
  return {
    attention: sliding === 0 ? 'full' : `${sliding} of ${c.numLayers} layers with a sliding window of ${c.slidingWindow}`,
    rotaryDims: c.rotaryDim,
    localRopeTheta: c.ropeLocalTheta,
    activation: c.activation,
    norms: `${c.normForm === 'one_plus_weight' ? 'x * (1 + w)' : 'x * w'}: ${norms}`,
    embedScale: c.embedScale,
    fusedLinears: c.fusedLinears,
  };
}

export function inspectModel(m: LoadedModel): ModelInfo {
  const c = m.model.config;
  const t = m.tokenizer;
  return {
    dir: m.dir,
    architecture: c.architecture,
    modelType: c.modelType,
    layers: c.numLayers,
    hiddenSize: c.hiddenSize,
    intermediateSize: c.intermediateSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocabSize: c.vocabSize,
    maxPositions: c.maxPositions,
    ropeTheta: c.ropeTheta,
    ropeScaling: ropeScalingText(c),
    tiedEmbeddings: c.tieWordEmbeddings,
    biases: { qkv: c.qkvBias, o: c.oBias, mlp: c.mlpBias },
    family: familyInfo(c),
    dtype: m.checkpoint.mainDtype(),
    format: m.checkpoint.sparsity ? `compressed-tensors ${m.checkpoint.sparsity.format} (${m.checkpoint.sparsity.structure})` : 'dense',
    parameters: parameterCount(c),
    files: m.checkpoint.files.map((f) => f.path),
    sharded: m.checkpoint.sharded,
    tokenizer: {
      model: t.info.model,
      vocabSize: t.info.vocabSize,
      bos: t.info.bos,
      eos: t.info.eos,
      unk: t.info.unk,
      pad: t.info.pad,
      bosId: t.bosId,
      eosId: t.eosId,
      addBos: t.info.addBosToken,
    },
  };
}
