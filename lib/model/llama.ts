/**
 * The LLaMA-family decoder in tfjs-core ops, Hugging Face conventions: RMSNorm in float32, rotate-half RoPE, causal
 * grouped-query attention, gated MLP, weights stored by Hugging Face as [out, in]. What differs between the
 * families (Qwen3, Gemma 3, Phi-3: norm form and placement, q/k norms, activation, embedding scale, sliding-window
 * layers with their own RoPE base, partial rotary, longrope) is read from the config as named switches in the one
 * forward below (see lib/model/architecture.ts).
 *
 * For speed on the wasm backend (whose matMul is ~10x slower with a transposed right operand) linear weights are
 * kept in memory transposed, as wT: [in, out]; pruning code transposes back to [out, in].
 *
 * Memory ownership: tensors returned by `embed`, `block`, `head`, `logits` belong to the caller. The model owns its
 * weights until `dispose()`. A tap receives tensors the block owns: it may read them, and must copy (tf.keep / clone)
 * what it wants to hold beyond the call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, UnsupportedError } from '../errors.js';
import type { AttentionKind, LlamaConfig } from './config.js';
import type { Checkpoint } from './checkpoint.js';
import {
  EMBED_TOKENS,
  FINAL_NORM,
  LINEAR_NAMES,
  LM_HEAD,
  blockNorms,
  blockTensors,
  hasBias,
  linearShape,
  linearTensorName,
  normTensorName,
  type LinearName,
  type NormKey,
} from './architecture.js';
import { kernels as activeKernels, type Kernels } from './backend.js';
import { transposeFloat32 } from './dtype-convert.js';
import { FEWER_TOKENS, bindingLimitBytes, checkBinding, gatherRows, matMulColumns, uploadRowChunks } from './binding.js';

/**
 * One linear layer: y = x wT + bias, wT [in, out]. On webgpu a wT over the binding limit is held as column chunks
 * `parts` ([in, out_i], in order, each within the limit: lib/model/binding.ts) and there is no `wT`; elsewhere it
 * is always the one tensor `wT`. `linearParts` gives the chunks either way.
 */
export type Linear =
  | { wT: tf.Tensor2D; parts?: undefined; bias: tf.Tensor1D | null } // bias [out]
  | { wT?: undefined; parts: tf.Tensor2D[]; bias: tf.Tensor1D | null };

/** The column chunks of a linear's wT ([in, out_i], in order): one tensor unless it is over the binding limit. */
export function linearParts(l: Linear): tf.Tensor2D[] {
  return l.parts === undefined ? [l.wT] : l.parts;
}

/** A linear's wT [in, out] as one tensor, or an UnsupportedError naming `what` when it is held in chunks. */
export function wholeWT(l: Linear, what: string): tf.Tensor2D {
  if (l.parts === undefined) return l.wT;
  throw new UnsupportedError(`${what} is held in ${l.parts.length} chunks (the WebGPU binding limit): use linearWeightRows()`);
}

/** [in, out] of a linear, whole or chunked. */
export function linearDims(l: Linear): [number, number] {
  const parts = linearParts(l);
  return [parts[0]!.shape[0], parts.reduce((a, p) => a + p.shape[1], 0)];
}

/** The weights of one decoder block: its RMSNorms (those `blockNorms(config)` lists) and its seven linears. */
export interface BlockWeights {
  norms: Partial<Record<NormKey, tf.Tensor1D>>; // inputNorm, postNorm always; qNorm/kNorm [headDim], attnOutNorm, mlpOutNorm per family
  linears: Record<LinearName, Linear>;
}

/** Called with the input of each linear layer of a block: x [batch, seq, in]. q/k/v share one input, gate/up too. */
export type Tap = (name: LinearName, input: tf.Tensor3D) => void;

/** Keys and values of one layer for one cached sequence, per kv head: kT [headDim, len], v [len, headDim]. */
export interface LayerKv {
  kT: tf.Tensor2D[];
  v: tf.Tensor2D[];
}

/**
 * The keys/values of a prefix (one sequence) kept after `prefill`, so several continuations can be run after it
 * without recomputing it (zero-shot scoring of choices that share a context). Owned by the caller: `dispose()`.
 */
export class PrefixCache {
  constructor(
    readonly length: number, // tokens in the prefix
    readonly layers: LayerKv[],
  ) {}

  dispose(): void {
    for (const l of this.layers) tf.dispose([...l.kT, ...l.v]);
  }
}

/** Per-call attention state: a cached prefix to attend to, and/or a sink that keeps this call's keys/values. */
interface KvState {
  past: LayerKv | null; // keys/values before this call's tokens (shared by every sequence of the batch)
  offset: number; // position of this call's first token
  record?: (kv: LayerKv) => void; // receives this call's keys/values (batch of 1), kept
}

/** Options for a forward call. */
export interface ForwardOptions {
  /** Per-linear override, e.g. LoRA adapters: returns the layer output [b, s, out] for input x [b, s, in]. */
  linear?: (layer: number, name: LinearName, x: tf.Tensor3D, base: Linear) => tf.Tensor3D;
}

function disposeBlock(b: BlockWeights): void {
  for (const t of Object.values(b.norms)) t.dispose();
  for (const n of LINEAR_NAMES) {
    tf.dispose(linearParts(b.linears[n]));
    b.linears[n].bias?.dispose();
  }
}

/**
 * Read block `layer` from a checkpoint into tensors (float32, linear weights transposed to [in, out] as they are
 * decoded). When a read fails halfway, the tensors already made are freed before the error propagates. The wasm
 * backend copies an array into its heap when a tensor is made from it, so there one array serves all seven weights
 * (no fresh weight-sized allocation per weight); other backends may keep the array as the tensor's storage.
 * On webgpu a weight over the binding limit is uploaded as column chunks of wT (`Linear.parts`).
 */
export function loadBlockWeights(ckpt: Checkpoint, layer: number): BlockWeights {
  const c = ckpt.config;
  const made: tf.Tensor[] = [];
  const vec = (name: string): tf.Tensor1D => tf.tensor1d(ckpt.read(name));
  const sizes = LINEAR_NAMES.map((n) => linearShape(c, n)[0] * linearShape(c, n)[1]);
  const scratch = tf.getBackend() === 'wasm' ? new Float32Array(Math.max(...sizes)) : null;
  try {
    const linears = {} as Record<LinearName, Linear>;
    const limit = bindingLimitBytes();
    for (const n of LINEAR_NAMES) {
      const [out, inp] = linearShape(c, n);
      const name = linearTensorName(layer, n);
      const bias = hasBias(c, n) ? vec(linearTensorName(layer, n, 'bias')) : null;
      if (bias) made.push(bias);
      if (4 * out * inp > limit) {
        const parts = uploadRowChunks(ckpt.read(name), out, inp, true); // column chunks of wT, each within the limit
        made.push(...parts);
        linears[n] = { parts, bias };
        continue;
      }
      const wT = tf.tensor2d(ckpt.readTransposed(name, scratch?.subarray(0, out * inp)), [inp, out]);
      made.push(wT);
      linears[n] = { wT, bias };
    }
    const norms: BlockWeights['norms'] = {};
    for (const n of blockNorms(c)) made.push((norms[n.key] = vec(normTensorName(c, layer, n.key))));
    return { norms, linears };
  } catch (e) {
    tf.dispose(made);
    throw e;
  }
}

/**
 * Tensor name -> float32 values of a block, in the Hugging Face [out, in] layout (for saving). Reads are awaited
 * (no synchronous read: WebGPU has none).
 */
export async function blockWeightsToArrays(c: LlamaConfig, layer: number, b: BlockWeights): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  const read = async (t: tf.Tensor): Promise<Float32Array> => (await t.data()) as Float32Array;
  for (const n of blockNorms(c)) out.set(normTensorName(c, layer, n.key), await read(requireNorm(b, n.key)));
  // The wasm backend's tensor data can be read in place (a view of its heap, valid until its next allocation): no
  // copy of each weight before the transpose.
  const wasm = tf.getBackend() === 'wasm' ? (tf.backend() as { typedArrayFromHeap?: (t: tf.TensorInfo) => unknown }) : null;
  const inPlace = (t: tf.Tensor): Float32Array | null => (t.dtype === 'float32' && wasm?.typedArrayFromHeap ? (wasm.typedArrayFromHeap(t) as Float32Array) : null);
  for (const n of LINEAR_NAMES) {
    // [in, out] as kept -> [out, in] in JS while copying (a backend transpose pass costs several times more)
    const [rows, cols] = linearShape(c, n);
    const l = b.linears[n];
    if (l.parts !== undefined) out.set(linearTensorName(layer, n), await readColumnChunks(l.parts, rows, cols));
    else out.set(linearTensorName(layer, n), transposeFloat32(inPlace(l.wT) ?? (await read(l.wT)), cols, rows));
    const bias = b.linears[n].bias;
    if (bias) out.set(linearTensorName(layer, n, 'bias'), await read(bias));
  }
  const expected = blockTensors(c, layer).map((t) => t.name);
  for (const name of expected) if (!out.has(name)) throw new CheckpointError(`block ${layer}: tensor '${name}' not produced`);
  return out;
}

/** The [out, in] values (row-major) of a wT held as column chunks `parts` ([in, out_i]): each chunk read and transposed. */
async function readColumnChunks(parts: readonly tf.Tensor2D[], rows: number, cols: number): Promise<Float32Array> {
  const w = new Float32Array(rows * cols);
  let r = 0;
  for (const p of parts) {
    const n = p.shape[1];
    transposeFloat32((await p.data()) as Float32Array, cols, n, w.subarray(r * cols, (r + n) * cols));
    r += n;
  }
  return w;
}

/**
 * The weight of a block's linear in the Hugging Face layout [out, in], whatever layout the model keeps internally
 * (a new tensor, owned by the caller). Code outside the model reads weights only through this, or through
 * `linearWeightRows` for a weight held in chunks (an UnsupportedError here).
 */
export function linearWeight(b: BlockWeights, name: LinearName): tf.Tensor2D {
  return tf.transpose(wholeWT(b.linears[name], name)) as tf.Tensor2D;
}

/**
 * The weight of a block's linear as row chunks [out_i, in] (in order; one chunk unless it is held in chunks on
 * webgpu), new tensors owned by the caller.
 */
export function linearWeightRows(b: BlockWeights, name: LinearName): tf.Tensor2D[] {
  return tf.tidy(() => linearParts(b.linears[name]).map((p) => tf.transpose(p) as tf.Tensor2D));
}

/** Replace a block's linear weight by `w` [out, in] (not consumed; the old weight is freed). */
export function setLinearWeight(b: BlockWeights, name: LinearName, w: tf.Tensor2D): void {
  setLinearWeightRows(b, name, [w]);
}

/**
 * Replace a block's linear weight by row chunks `ws` ([out_i, in], in order; not consumed): one chunk gives one
 * tensor, several the column chunks of wT (as the model holds a weight over the binding limit). The old one is freed.
 */
export function setLinearWeightRows(b: BlockWeights, name: LinearName, ws: readonly tf.Tensor2D[]): void {
  const l = b.linears[name] as unknown as { wT?: tf.Tensor2D; parts?: tf.Tensor2D[] }; // changed in place: the same Linear object
  const parts = tf.tidy(() => ws.map((w) => tf.transpose(w) as tf.Tensor2D));
  tf.dispose(linearParts(b.linears[name]));
  if (parts.length === 1) {
    l.wT = parts[0]!;
    delete l.parts;
  } else {
    l.parts = parts;
    delete l.wT;
  }
}

/** A norm of a block, or an error naming it when the block was built without it. */
function requireNorm(b: BlockWeights, key: NormKey): tf.Tensor1D {
  const t = b.norms[key];
  if (!t) throw new CheckpointError(`block weights have no ${key}`);
  return t;
}

/**
 * Which RoPE table a layer uses: `global` (rope_theta with rope_scaling), `long` (longrope's long factors, once a
 * sequence reaches past the original context), `local` (Gemma 3's sliding layers: rope_local_base_freq, unscaled).
 */
export type RopeTable = 'global' | 'long' | 'local';

/**
 * RoPE inverse frequencies [rotaryDim/2], in float32 as transformers computes them (with rope_scaling applied to
 * the global table; longrope's short factors for `global`, long factors for `long`).
 */
export function ropeInvFreq(c: LlamaConfig, table: RopeTable = 'global'): Float32Array {
  const d = c.rotaryDim;
  const inv = new Float32Array(d / 2);
  const theta = table === 'local' ? (c.ropeLocalTheta ?? c.ropeTheta) : c.ropeTheta;
  const rs = table === 'local' ? null : c.ropeScaling;
  if (rs?.type === 'longrope') {
    const ext = table === 'long' ? rs.longFactor : rs.shortFactor;
    for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.fround(Math.fround(ext[i]!) * Math.fround(theta ** Math.fround((2 * i) / d)));
    return inv;
  }
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / d));
  if (rs?.type === 'linear') for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / rs.factor;
  if (rs?.type === 'llama3') {
    const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
    const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / rs.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        inv[i] = (1 - smooth) * (f / rs.factor) + smooth * f;
      }
    }
  }
  return inv;
}

/** The one tensor of `parts`, or an UnsupportedError naming `what` when it is held in chunks (binding.ts). */
function single(parts: tf.Tensor2D[], what: string): tf.Tensor2D {
  if (parts.length !== 1) throw new UnsupportedError(`${what} is held in ${parts.length} chunks (the WebGPU binding limit): use embed() / head()`);
  return parts[0]!;
}

/**
 * lm_head^T [hidden, vocab]: transposed on the backend when it fits the binding limit (as always on wasm), else
 * uploaded in column chunks transposed on the host (binding.ts).
 */
function loadHead(ckpt: Checkpoint): tf.Tensor2D[] {
  const c = ckpt.config;
  const values = ckpt.read(c.tieWordEmbeddings ? EMBED_TOKENS : LM_HEAD);
  if (4 * c.vocabSize * c.hiddenSize <= bindingLimitBytes()) {
    return [tf.tidy(() => tf.transpose(tf.tensor2d(values, [c.vocabSize, c.hiddenSize])) as tf.Tensor2D)];
  }
  return uploadRowChunks(values, c.vocabSize, c.hiddenSize, true);
}

/** A LLaMA-family causal LM. Blocks can be resident (evaluation) or supplied by the caller (layer-wise pruning). */
export class LlamaModel {
  readonly config: LlamaConfig;
  /** [vocab, hidden] in row chunks: one chunk, except on a WebGPU adapter that cannot bind the whole (binding.ts). */
  readonly embedParts: tf.Tensor2D[];
  readonly finalNorm: tf.Tensor1D; // [hidden]
  /** lm_head^T [hidden, vocab] in column chunks (one, but for the binding limit); null: loaded without the head. */
  readonly headParts: tf.Tensor2D[] | null;
  readonly blocks: (BlockWeights | null)[]; // null = not loaded
  private readonly ropes = new Map<RopeTable, { cos: tf.Tensor2D; sin: tf.Tensor2D }>(); // [positions, headDim], grown on demand
  private readonly masks = new Map<number | null, tf.Tensor2D>(); // attention masks of the last shape, by window (null: full)
  private maskShape = ''; // `${s},${past}` of those masks
  private rotation: tf.Tensor2D | null = null; // rotate_half as a matrix [headDim, headDim]

  /** The backend's kernel choices (attention): given by the caller, else those of the backend active at each call. */
  readonly kernels: Kernels | null;

  constructor(
    config: LlamaConfig,
    embedTable: tf.Tensor2D | tf.Tensor2D[],
    finalNorm: tf.Tensor1D,
    lmHeadT: tf.Tensor2D | tf.Tensor2D[] | null,
    blocks: (BlockWeights | null)[],
    kernels: Kernels | null = null,
  ) {
    this.config = config;
    this.embedParts = Array.isArray(embedTable) ? embedTable : [embedTable];
    this.finalNorm = finalNorm;
    this.headParts = lmHeadT === null ? null : Array.isArray(lmHeadT) ? lmHeadT : [lmHeadT];
    this.blocks = blocks;
    this.kernels = kernels;
  }

  /** The embedding table [vocab, hidden] as one tensor (an UnsupportedError when it is held in chunks). */
  get embedTable(): tf.Tensor2D {
    return single(this.embedParts, 'the embedding table');
  }

  /** lm_head^T [hidden, vocab] as one tensor, or null (an UnsupportedError when it is held in chunks). */
  get lmHeadT(): tf.Tensor2D | null {
    return this.headParts === null ? null : single(this.headParts, 'lm_head');
  }

  /**
   * Load from an open checkpoint. `blocks: false` leaves every block unloaded (the pruning pipeline streams them);
   * `head: false` skips lm_head (the pipeline never computes logits); `kernels`: see the constructor.
   */
  static fromCheckpoint(ckpt: Checkpoint, options: { blocks?: boolean; head?: boolean; kernels?: Kernels } = {}): LlamaModel {
    const c = ckpt.config;
    const made: tf.Tensor[] = []; // freed when a read fails halfway
    const blocks: (BlockWeights | null)[] = [];
    try {
      const embedTable = uploadRowChunks(ckpt.read(EMBED_TOKENS), c.vocabSize, c.hiddenSize);
      made.push(...embedTable);
      const lmHeadT = options.head === false ? null : loadHead(ckpt);
      if (lmHeadT) made.push(...lmHeadT);
      const finalNorm = tf.tensor1d(ckpt.read(FINAL_NORM));
      made.push(finalNorm);
      for (let i = 0; i < c.numLayers; i++) blocks.push(options.blocks === false ? null : loadBlockWeights(ckpt, i));
      return new LlamaModel(c, embedTable, finalNorm, lmHeadT, blocks, options.kernels ?? null);
    } catch (e) {
      tf.dispose(made);
      for (const b of blocks) if (b) disposeBlock(b);
      throw e;
    }
  }

  /** Token embeddings: ids [batch][seq] -> [batch, seq, hidden]. */
  embed(ids: number[][]): tf.Tensor3D {
    const b = ids.length;
    const s = ids[0]?.length ?? 0;
    if (b === 0 || s === 0) throw new CheckpointError('embed: empty batch or empty sequence');
    const flat = new Int32Array(b * s);
    ids.forEach((row, i) => {
      if (row.length !== s) throw new CheckpointError(`embed: sequence ${i} has ${row.length} tokens, sequence 0 has ${s}`);
      row.forEach((t, j) => {
        if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize) {
          throw new CheckpointError(`embed: token id ${t} at [${i}, ${j}] is outside the vocabulary (0..${this.config.vocabSize - 1})`);
        }
        flat[i * s + j] = t;
      });
    });
    if (s > this.config.maxPositions) {
      throw new CheckpointError(`sequence of ${s} tokens, model context is ${this.config.maxPositions}`);
    }
    const scale = this.config.embedScale; // Gemma: embeddings times sqrt(hidden_size)
    return tf.tidy(() => {
      const e = tf.reshape(gatherRows(this.embedParts, flat), [b, s, this.config.hiddenSize]) as tf.Tensor3D;
      return scale === null ? e : (tf.mul(e, scale) as tf.Tensor3D);
    });
  }

  /** The RoPE table of a layer whose call ends at position `end` (exclusive). */
  private ropeTable(kind: AttentionKind, end: number): RopeTable {
    const c = this.config;
    if (kind === 'sliding_attention' && c.ropeLocalTheta !== null) return 'local';
    return c.ropeScaling?.type === 'longrope' && end > c.ropeScaling.originalMaxPositionEmbeddings ? 'long' : 'global';
  }

  /**
   * cos, sin [s, headDim] for positions offset..offset+s-1. Each table is built once (grown in powers of two) and
   * sliced. Dims past rotaryDim (partial rotary) get cos 1, sin 0: they pass through unchanged. longrope's
   * attention factor multiplies the rotated dims' cos and sin, as transformers does.
   */
  private ropeFor(table: RopeTable, s: number, offset = 0): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const d = this.config.headDim;
    let rope = this.ropes.get(table);
    if (!rope || rope.cos.shape[0] < offset + s) {
      const n = Math.min(this.config.maxPositions, 2 ** Math.ceil(Math.log2(Math.max(offset + s, 64))));
      const inv = ropeInvFreq(this.config, table);
      const r = this.config.rotaryDim;
      const rs = this.config.ropeScaling;
      const scale = table !== 'local' && rs?.type === 'longrope' ? rs.attentionFactor : 1;
      const cos = new Float32Array(n * d).fill(1);
      const sin = new Float32Array(n * d);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < r / 2; i++) {
          const a = Math.fround(p * inv[i]!); // float32 product, as transformers' float32 matmul
          const [cv, sv] = scale === 1 ? [Math.cos(a), Math.sin(a)] : [Math.fround(Math.cos(a)) * scale, Math.fround(Math.sin(a)) * scale];
          cos[p * d + i] = cos[p * d + i + r / 2] = cv;
          sin[p * d + i] = sin[p * d + i + r / 2] = sv;
        }
      }
      tf.dispose([rope?.cos, rope?.sin].filter((t): t is tf.Tensor2D => t !== undefined));
      rope = { cos: tf.keep(tf.tensor2d(cos, [n, d])), sin: tf.keep(tf.tensor2d(sin, [n, d])) };
      this.ropes.set(table, rope);
    }
    return { cos: tf.slice(rope.cos, [offset, 0], [s, d]), sin: tf.slice(rope.sin, [offset, 0], [s, d]) };
  }

  /**
   * Additive attention mask [s, past + s]: token i (position past + i) sees the cached positions and new tokens
   * 0..i, and with a sliding `window` only the last `window` positions up to itself (transformers'
   * sliding_window_overlay: kv > q - window); 0 where visible, float32 min elsewhere (as transformers). Built in JS
   * (wasm's broadcast `greater` is slow) and cached for the last shape used; do not dispose the result.
   */
  private causalMask(s: number, past = 0, window: number | null = null): tf.Tensor2D {
    const n = past + s;
    const w = window !== null && window < n ? window : null; // a window covering every position changes nothing
    if (this.maskShape !== `${s},${past}`) this.disposeMasks(); // only the last shape's masks are kept
    this.maskShape = `${s},${past}`;
    let mask = this.masks.get(w);
    if (!mask) {
      const v = new Float32Array(s * n);
      for (let i = 0; i < s; i++) {
        v.fill(-3.4028234663852886e38, i * n + past + i + 1, (i + 1) * n);
        if (w !== null) v.fill(-3.4028234663852886e38, i * n, i * n + Math.max(0, past + i - w + 1));
      }
      mask = tf.keep(tf.tensor2d(v, [s, n]));
      this.masks.set(w, mask);
    }
    return mask;
  }

  private disposeMasks(): void {
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }

  /** RMSNorm over the last axis in float32: x / sqrt(mean(x^2) + eps) times w, or times (1 + w) (Gemma). */
  private rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D): T {
    return tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true);
      const normed = tf.mul(x, tf.rsqrt(tf.add(variance, this.config.rmsNormEps)));
      return tf.mul(normed, this.config.normForm === 'one_plus_weight' ? tf.add(w, 1) : w) as T;
    });
  }

  /** The gated MLP's activation of the gate: SiLU, or GELU with the tanh approximation (Gemma). */
  private activation(g: tf.Tensor3D): tf.Tensor3D {
    if (this.config.activation === 'silu') return tf.mul(g, tf.sigmoid(g)) as tf.Tensor3D;
    return tf.tidy(() => {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(g, tf.mul(0.044715, tf.mul(g, tf.mul(g, g)))));
      return tf.mul(tf.mul(0.5, g), tf.add(1, tf.tanh(inner))) as tf.Tensor3D;
    });
  }

  private linear(layer: number, name: LinearName, x: tf.Tensor3D, l: Linear, opts: ForwardOptions): tf.Tensor3D {
    const [b, s] = x.shape;
    checkBinding([b * s, linearDims(l)[1]], () => `the output of ${linearTensorName(layer, name).replace(/\.weight$/, '')} for ${b * s} tokens`, FEWER_TOKENS);
    if (opts.linear) return opts.linear(layer, name, x, l);
    return applyLinear(x, l);
  }

  /**
   * rotate_half as a [headDim, headDim] matrix R: x R = concat(-x2, x1) over the first rotaryDim dims (x1, x2 its
   * halves), zeros past them. Each output is one input times +-1 plus exact zeros, so the product is exact
   * (bit-identical to slicing, negating and concatenating), and it is one small matMul instead of four copies
   * (slice, slice, neg, concat: about 4% of the wasm forward). Built once; kept.
   */
  private rotateHalf(): tf.Tensor2D {
    if (!this.rotation) {
      const d = this.config.headDim;
      const h = this.config.rotaryDim / 2;
      const r = new Float32Array(d * d);
      for (let j = 0; j < h; j++) {
        r[(j + h) * d + j] = -1; // out[j] = -x[j + h]
        r[j * d + j + h] = 1; // out[j + h] = x[j]
      }
      this.rotation = tf.keep(tf.tensor2d(r, [d, d]));
    }
    return this.rotation;
  }

  /** q, k: [b, heads, s, d] rotated by position (positions offset .. offset + s - 1) with a layer's table. */
  private applyRope(x: tf.Tensor4D, table: RopeTable, s: number, offset = 0): tf.Tensor4D {
    const [b, n, , d] = x.shape;
    return tf.tidy(() => {
      const { cos, sin } = this.ropeFor(table, s, offset);
      const rotated = tf.reshape(tf.matMul(tf.reshape(x, [b * n * s, d]), this.rotateHalf()), [b, n, s, d]); // rotate_half
      return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
    });
  }

  /**
   * Decoder block `layer` on hidden states x [batch, seq, hidden] -> [batch, seq, hidden].
   * `weights` defaults to the resident block; `tap` sees the input of each of the seven linears.
   */
  block(
    layer: number,
    x: tf.Tensor3D,
    tap?: Tap,
    weights?: BlockWeights,
    opts: ForwardOptions = {},
    kv: KvState = { past: null, offset: 0 },
  ): tf.Tensor3D {
    const temps: tf.Tensor[] = []; // intermediates: freed here, also when a tap or a linear override throws mid-block
    try {
      return this.blockSteps(layer, x, tap, weights, opts, kv, (t) => (temps.push(t), t));
    } finally {
      tf.dispose(temps);
    }
  }

  /** The body of `block`: `own` hands an intermediate to `block`, which frees it. */
  private blockSteps(
    layer: number,
    x: tf.Tensor3D,
    tap: Tap | undefined,
    weights: BlockWeights | undefined,
    opts: ForwardOptions,
    kv: KvState,
    own: <T extends tf.Tensor>(t: T) => T,
  ): tf.Tensor3D {
    const w = weights ?? this.blocks[layer];
    if (!w) throw new CheckpointError(`block ${layer} is not loaded`);
    const c = this.config;
    const [b, s] = x.shape;
    const { numHeads: h, numKvHeads: kvh, headDim: d } = c;
    const kind = c.layerTypes[layer] ?? 'full_attention';
    const norm = <T extends tf.Tensor>(t: T, key: NormKey): T => this.rmsNorm(t, requireNorm(w, key));

    // 1. attention input: RMSNorm
    const h1 = own(norm(x, 'inputNorm')); // [b, s, hidden]
    if (tap) {
      tap('q_proj', h1);
      tap('k_proj', h1);
      tap('v_proj', h1);
    }
    // 2. q, k, v projections, per-head q/k RMSNorm (Qwen3, Gemma 3), RoPE with the layer's table, causal softmax
    //    attention over every earlier position or the layer's sliding window (kv heads repeated for GQA)
    const attn = own(tf.tidy(() => {
      const heads = (t: tf.Tensor3D, n: number, headNorm: NormKey | null): tf.Tensor4D => {
        const split = tf.reshape(t, [b, s, n, d]);
        return tf.transpose(headNorm ? norm(split, headNorm) : split, [0, 2, 1, 3]) as tf.Tensor4D; // [b, n, s, d]
      };
      const table = this.ropeTable(kind, kv.offset + s);
      const q = this.applyRope(heads(this.linear(layer, 'q_proj', h1, w.linears.q_proj, opts), h, c.qkNorm ? 'qNorm' : null), table, s, kv.offset);
      const k = this.applyRope(heads(this.linear(layer, 'k_proj', h1, w.linears.k_proj, opts), kvh, c.qkNorm ? 'kNorm' : null), table, s, kv.offset);
      const v = heads(this.linear(layer, 'v_proj', h1, w.linears.v_proj, opts), kvh, null);
      const window = kind === 'sliding_attention' ? c.slidingWindow : null;
      const mask = this.causalMask(s, kv.past ? kv.offset : 0, window); // [s, past + s]
      const attend = (this.kernels ?? activeKernels()).attention === 'batched' ? attendBatched : attendPerHead;
      const ctx = attend(tf.mul(q, c.attnScale) as tf.Tensor4D, k, v, mask, kv); // [b*h, s, d], from q * scale
      return tf.reshape(tf.transpose(tf.reshape(ctx, [b, h, s, d]), [0, 2, 1, 3]), [b, s, h * d]) as tf.Tensor3D;
    }));
    if (tap) tap('o_proj', attn);
    // 3. output projection (RMSNorm of it in Gemma 3) and residual
    const x2 = own(tf.tidy(() => {
      const o = this.linear(layer, 'o_proj', attn, w.linears.o_proj, opts);
      return tf.add(x, c.sandwichNorms ? norm(o, 'attnOutNorm') : o) as tf.Tensor3D;
    }));
    // 4. MLP input: RMSNorm
    const h2 = own(norm(x2, 'postNorm'));
    if (tap) {
      tap('gate_proj', h2);
      tap('up_proj', h2);
    }
    // 5. gated MLP: act(gate) * up, SiLU or GELU-tanh
    const act = own(tf.tidy(() => {
      const g = this.linear(layer, 'gate_proj', h2, w.linears.gate_proj, opts);
      const u = this.linear(layer, 'up_proj', h2, w.linears.up_proj, opts);
      return tf.mul(this.activation(g), u) as tf.Tensor3D;
    }));
    if (tap) tap('down_proj', act);
    // 6. down projection (RMSNorm of it in Gemma 3) and residual
    return tf.tidy(() => {
      const down = this.linear(layer, 'down_proj', act, w.linears.down_proj, opts);
      return tf.add(x2, c.sandwichNorms ? norm(down, 'mlpOutNorm') : down) as tf.Tensor3D;
    });
  }

  /** Final RMSNorm + lm_head: [batch, seq, hidden] -> logits [batch, seq, vocab]. */
  head(x: tf.Tensor3D): tf.Tensor3D {
    const [b, s] = x.shape;
    return tf.tidy(() => tf.reshape(this.headFlat(x), [b, s, this.config.vocabSize]) as tf.Tensor3D);
  }

  /**
   * Final RMSNorm + lm_head with the positions flattened: [batch, seq, hidden] -> logits [batch * seq, vocab].
   * `matMul(x, lmHeadT)` multiplies by the head (training passes a frozen matMul with a fast backward).
   */
  headFlat(x: tf.Tensor3D, matMul: (a: tf.Tensor2D, lmHeadT: tf.Tensor2D) => tf.Tensor2D = (a, w) => tf.matMul(a, w)): tf.Tensor2D {
    const parts = this.headParts;
    if (!parts) throw new CheckpointError('head: this model was loaded without lm_head');
    return tf.tidy(() => {
      const [b, s, hd] = x.shape;
      const n = this.rmsNorm(x, this.finalNorm);
      return matMulColumns(tf.reshape(n, [b * s, hd]) as tf.Tensor2D, parts, matMul);
    });
  }

  /** Hidden states after the last block: ids [batch][seq] -> [batch, seq, hidden]. */
  hidden(ids: number[][], opts: ForwardOptions = {}): tf.Tensor3D {
    let x = this.embed(ids);
    try {
      for (let i = 0; i < this.config.numLayers; i++) {
        const y = this.block(i, x, undefined, undefined, opts);
        x.dispose();
        x = y;
      }
      return x;
    } catch (e) {
      x.dispose(); // a block that throws (an activation over the binding limit) leaves nothing behind
      throw e;
    }
  }

  /** Full forward: ids [batch][seq] -> logits [batch, seq, vocab]. */
  logits(ids: number[][], opts: ForwardOptions = {}): tf.Tensor3D {
    const x = this.hidden(ids, opts);
    const out = this.head(x);
    x.dispose();
    return out;
  }

  /**
   * Run one sequence and keep its keys/values: returns logits [1, s, vocab] and the cache (both owned by the caller).
   */
  prefill(ids: number[], opts: ForwardOptions = {}): { logits: tf.Tensor3D; cache: PrefixCache } {
    const layers: LayerKv[] = [];
    let x = this.embed([ids]);
    try {
      for (let i = 0; i < this.config.numLayers; i++) {
        const y = this.block(i, x, undefined, undefined, opts, { past: null, offset: 0, record: (kv) => layers.push(kv) });
        x.dispose();
        x = y;
      }
      const logits = this.head(x);
      return { logits, cache: new PrefixCache(ids.length, layers) };
    } catch (e) {
      new PrefixCache(ids.length, layers).dispose();
      throw e;
    } finally {
      x.dispose();
    }
  }

  /**
   * Continue every sequence of `ids` [batch][s] after the same cached prefix: logits [batch, s, vocab] for positions
   * cache.length .. cache.length + s - 1. Equal (up to float rounding) to running prefix + ids in one forward.
   */
  continueFrom(cache: PrefixCache, ids: number[][], opts: ForwardOptions = {}): tf.Tensor3D {
    const s = ids[0]?.length ?? 0;
    if (cache.length + s > this.config.maxPositions) {
      throw new CheckpointError(`sequence of ${cache.length + s} tokens, model context is ${this.config.maxPositions}`);
    }
    let x = this.embed(ids);
    for (let i = 0; i < this.config.numLayers; i++) {
      const y = this.block(i, x, undefined, undefined, opts, { past: cache.layers[i]!, offset: cache.length });
      x.dispose();
      x = y;
    }
    const out = this.head(x);
    x.dispose();
    return out;
  }

  /** Replace block `layer` (disposing the old one unless it is the same object). */
  setBlock(layer: number, weights: BlockWeights | null): void {
    const old = this.blocks[layer];
    if (old && old !== weights) disposeBlock(old);
    this.blocks[layer] = weights;
  }

  dispose(): void {
    tf.dispose(this.embedParts);
    this.finalNorm.dispose();
    tf.dispose(this.headParts ?? []);
    for (let i = 0; i < this.blocks.length; i++) this.setBlock(i, null);
    for (const r of this.ropes.values()) tf.dispose([r.cos, r.sin]);
    this.ropes.clear();
    this.disposeMasks();
    this.rotation?.dispose();
    this.rotation = null;
  }
}

/**
 * Causal softmax attention of q [b, h, s, d] (already scaled by 1/sqrt(d)) over k, v [b, kvh, s, d] and the cached
 * prefix `kv.past`, as one 2D matMul pair per (sequence, head): on wasm ~10x faster than a batched matMul.
 * GQA (repeat_kv): query head j of a sequence uses kv head floor(j / (h / kvh)). Returns [b*h, s, d].
 */
function attendPerHead(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D, kv: KvState): tf.Tensor3D {
  const [b, h, s, d] = q.shape;
  const kvh = k.shape[1];
  const qs = tf.unstack(tf.reshape(q, [b * h, s, d])) as tf.Tensor2D[];
  const kTs = tf.unstack(tf.reshape(tf.transpose(k, [0, 1, 3, 2]), [b * kvh, d, s])) as tf.Tensor2D[]; // explicit transpose: fast matMul
  const vs = tf.unstack(tf.reshape(v, [b * kvh, s, d])) as tf.Tensor2D[];
  if (kv.record) kv.record({ kT: kTs.slice(0, kvh).map((t) => tf.keep(t)), v: vs.slice(0, kvh).map((t) => tf.keep(t)) });
  const past = kv.past;
  const rep = h / kvh;
  const outs = qs.map((qi, idx) => {
    const head = Math.floor((idx % h) / rep);
    const flat = Math.floor(idx / h) * kvh + head;
    const kT = past ? tf.concat([past.kT[head]!, kTs[flat]!], 1) : kTs[flat]!; // [d, past + s]
    const vv = past ? tf.concat([past.v[head]!, vs[flat]!], 0) : vs[flat]!; // [past + s, d]
    const scores = tf.add(tf.matMul(qi, kT), mask); // [s, past + s]
    return tf.matMul(tf.softmax(scores), vv); // [s, d]
  });
  return tf.stack(outs) as tf.Tensor3D;
}

/**
 * The same attention as `attendPerHead` in two batched matMuls over every (sequence, head): a handful of dispatches
 * per block instead of thousands, what a GPU wants. Kv heads are repeated for GQA before the matMuls.
 */
function attendBatched(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor2D, kv: KvState): tf.Tensor3D {
  const [b, h, s, d] = q.shape;
  const kvh = k.shape[1];
  let kT = tf.transpose(k, [0, 1, 3, 2]) as tf.Tensor4D; // [b, kvh, d, s]
  let vv = v; // [b, kvh, s, d]
  if (kv.record) {
    kv.record({
      kT: tf.unstack(tf.reshape(tf.slice(kT, [0, 0, 0, 0], [1, kvh, d, s]), [kvh, d, s])).map((t) => tf.keep(t as tf.Tensor2D)),
      v: tf.unstack(tf.reshape(tf.slice(vv, [0, 0, 0, 0], [1, kvh, s, d]), [kvh, s, d])).map((t) => tf.keep(t as tf.Tensor2D)),
    });
  }
  if (kv.past) {
    const perBatch = (t: tf.Tensor3D): tf.Tensor4D => tf.tile(tf.expandDims(t, 0), [b, 1, 1, 1]) as tf.Tensor4D; // shared prefix
    kT = tf.concat([perBatch(tf.stack(kv.past.kT) as tf.Tensor3D), kT], 3) as tf.Tensor4D; // [b, kvh, d, past + s]
    vv = tf.concat([perBatch(tf.stack(kv.past.v) as tf.Tensor3D), vv], 2) as tf.Tensor4D; // [b, kvh, past + s, d]
  }
  const n = kT.shape[3];
  const rep = h / kvh;
  const kvOf = tf.tensor1d(Array.from({ length: h }, (_, j) => Math.floor(j / rep)), 'int32'); // kv head of query head j
  const repeat = (t: tf.Tensor4D): tf.Tensor4D => (rep === 1 ? t : (tf.gather(t, kvOf, 1) as tf.Tensor4D)); // [b, h, ., .]
  const qs = tf.reshape(q, [b * h, s, d]) as tf.Tensor3D;
  const ks = tf.reshape(repeat(kT), [b * h, d, n]) as tf.Tensor3D;
  const vs = tf.reshape(repeat(vv), [b * h, n, d]) as tf.Tensor3D;
  // The scores [b*h, s, n] are the largest tensor of a forward (537 MB at 7B, seqlen 2048): over the WebGPU binding
  // limit they are computed for groups of (sequence, head) pairs, each independent of the others (binding.ts).
  const group = Math.max(1, Math.min(b * h, Math.floor(bindingLimitBytes() / (4 * s * n))));
  const outs: tf.Tensor3D[] = [];
  for (let g = 0; g < b * h; g += group) {
    const m = Math.min(group, b * h - g);
    const part = (t: tf.Tensor3D): tf.Tensor3D => (m === b * h ? t : (tf.slice(t, [g, 0, 0], [m, -1, -1]) as tf.Tensor3D));
    const scores = tf.add(tf.matMul(part(qs), part(ks)), mask); // [m, s, n]
    outs.push(tf.matMul(tf.softmax(scores), part(vs)) as tf.Tensor3D); // [m, s, d]
  }
  return outs.length === 1 ? outs[0]! : (tf.concat(outs, 0) as tf.Tensor3D); // [b*h, s, d]
}

/** y = x wT + bias for x [b, s, in] -> [b, s, out] (wT in column chunks: one matMul per chunk, concatenated). */
export function applyLinear(x: tf.Tensor3D, l: Linear): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, s, inp] = x.shape;
    const out = linearDims(l)[1];
    let y = matMulColumns(tf.reshape(x, [b * s, inp]), linearParts(l), undefined, 'a linear output');
    if (l.bias) y = tf.add(y, l.bias);
    return tf.reshape(y, [b, s, out]) as tf.Tensor3D;
  });
}

export { disposeBlock };
