/**
 * LoRA adapters (Hu et al. 2021) on the linear layers of a LlamaModel, as Hugging Face PEFT defines them:
 *
 *   y = x W^T + b + scale * B (A dropout(x)),   A: [r, in], B: [out, r], scale = alpha / r
 *
 * A starts as PEFT's `kaiming_uniform_(a=sqrt(5))`, i.e. uniform in [-1/sqrt(in), 1/sqrt(in)], and B as zeros, so
 * a fresh adapter leaves the model's output unchanged. Only A and B are tf.Variables; the base weights stay frozen.
 *
 * In memory both are kept transposed (aT = A^T: [in, r], bT = B^T: [r, out]) so that every forward matMul has a
 * non-transposed right operand (about 10x faster on wasm); the PEFT files hold A and B (peft.ts).
 *
 * Memory ownership: a LoraAdapters owns its variables until `dispose()`. The ForwardOptions it returns create no
 * state of their own; tensors they return belong to the caller (the model's forward, inside its tidy).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, optionKey, type OptionName } from '../errors.js';
import { FINETUNE_DEFAULTS } from './defaults.js';
import type { LlamaConfig } from '../model/config.js';
import { applyLinear, linearDims, linearParts, type ForwardOptions, type Linear } from '../model/llama.js';
import { matMulColumns } from '../model/binding.js';
import { LINEAR_NAMES, linearShape, type LinearName } from '../model/architecture.js';

/** What to adapt and how. */
export interface LoraConfig {
  rank: number; // r: inner width of the adapter
  alpha: number; // lora_alpha: the update is scaled by alpha / r
  dropout: number; // lora_dropout: probability of zeroing an input feature of the adapter path (training only)
  targets: LinearName[]; // linear layers adapted in every decoder block
}

/** PEFT's defaults as the Wanda reference's LoRA script (lora_ft/finetune_lm.py) sets them (FINETUNE_DEFAULTS'). */
export const DEFAULT_LORA: LoraConfig = {
  rank: FINETUNE_DEFAULTS.rank,
  alpha: FINETUNE_DEFAULTS.alpha,
  dropout: FINETUNE_DEFAULTS.dropout,
  targets: [...FINETUNE_DEFAULTS.targets],
};

/**
 * Check a LoraConfig; throws ConfigError naming the option as `name` does (default the library's names). Returns the
 * targets in block execution order.
 */
export function validateLoraConfig(cfg: LoraConfig, name: OptionName = optionKey): LoraConfig {
  if (!Number.isInteger(cfg.rank) || cfg.rank < 1) throw new ConfigError(`${name('rank')} must be a positive integer, got ${cfg.rank}`);
  if (!Number.isFinite(cfg.alpha) || cfg.alpha <= 0) throw new ConfigError(`${name('alpha')} must be a positive number, got ${cfg.alpha}`);
  if (!Number.isFinite(cfg.dropout) || cfg.dropout < 0 || cfg.dropout >= 1) {
    throw new ConfigError(`${name('dropout')} must be in [0, 1), got ${cfg.dropout}`);
  }
  if (cfg.targets.length === 0) throw new ConfigError(`${name('targets')}: at least one of ${LINEAR_NAMES.join(', ')} is needed`);
  for (const t of cfg.targets) {
    if (!(LINEAR_NAMES as readonly string[]).includes(t)) {
      throw new ConfigError(`${name('targets')}: '${t}' is not a linear layer of a LLaMA block (${LINEAR_NAMES.join(', ')})`);
    }
  }
  const targets = LINEAR_NAMES.filter((n) => cfg.targets.includes(n));
  if (targets.length !== cfg.targets.length) throw new ConfigError(`${name('targets')}: '${cfg.targets.join(',')}' names a layer twice`);
  return { ...cfg, targets };
}

/**
 * A small seeded generator (mulberry32) whose whole state is one uint32, so a training checkpoint can store it and
 * a resumed run draws exactly the same dropout masks.
 */
export class SeededRandom {
  state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A generator for an independent stream `stream` of seed `seed` (a hash of both). */
  static derive(seed: number, stream: number): SeededRandom {
    let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
    return new SeededRandom((h ^ (h >>> 16)) >>> 0);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** One adapted linear layer. */
export interface LoraPair {
  layer: number;
  name: LinearName;
  inFeatures: number;
  outFeatures: number;
  aT: tf.Variable<tf.Rank.R2>; // [in, r] = A^T
  bT: tf.Variable<tf.Rank.R2>; // [r, out] = B^T
}

/** A and B of one adapted layer in the PEFT layout, row-major: a [r * in] = A [r, in], b [out * r] = B [out, r]. */
export interface LoraArrays {
  a: Float32Array;
  b: Float32Array;
}

const key = (layer: number, name: LinearName): string => `${layer}.${name}`;

/** Transpose a row-major [rows, cols] array. */
function transposeArray(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = v[i * cols + j]!;
  return out;
}

/** A trainable variable holding `values` (the temporary initial tensor is disposed; the variable keeps the data). */
function variable2d(values: Float32Array, shape: [number, number]): tf.Variable<tf.Rank.R2> {
  const t = tf.tensor2d(values, shape);
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/** The adapters of a model: one (A, B) pair per adapted linear of every block. */
export class LoraAdapters {
  readonly config: LoraConfig;
  readonly scale: number; // alpha / r
  readonly pairs: LoraPair[]; // in (layer, execution) order
  private readonly byKey = new Map<string, LoraPair>();

  private constructor(config: LoraConfig, pairs: LoraPair[]) {
    this.config = config;
    this.scale = config.alpha / config.rank;
    this.pairs = pairs;
    for (const p of pairs) this.byKey.set(key(p.layer, p.name), p);
  }

  /**
   * Fresh adapters for every block of a model: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform_(a=sqrt(5))),
   * B = 0. Values depend only on `seed`, drawn layer by layer in execution order, A row by row.
   */
  static create(model: LlamaConfig, config: LoraConfig, seed: number): LoraAdapters {
    const cfg = validateLoraConfig(config);
    const rng = SeededRandom.derive(seed, 1);
    const arrays = new Map<string, LoraArrays>();
    for (let layer = 0; layer < model.numLayers; layer++) {
      for (const name of cfg.targets) {
        const [out, inp] = linearShape(model, name);
        const bound = 1 / Math.sqrt(inp);
        const a = new Float32Array(cfg.rank * inp);
        for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
        arrays.set(key(layer, name), { a, b: new Float32Array(out * cfg.rank) });
      }
    }
    return LoraAdapters.fromArrays(model, cfg, arrays);
  }

  /**
   * Adapters from values in the PEFT layout, keyed `${layer}.${name}`; every (layer, target) of the model must be
   * present with the right sizes.
   */
  static fromArrays(model: LlamaConfig, config: LoraConfig, arrays: Map<string, LoraArrays>): LoraAdapters {
    const cfg = validateLoraConfig(config);
    const r = cfg.rank;
    const pairs: LoraPair[] = [];
    try {
      for (let layer = 0; layer < model.numLayers; layer++) {
        for (const name of cfg.targets) {
          const [out, inp] = linearShape(model, name);
          const v = arrays.get(key(layer, name));
          if (!v) throw new ConfigError(`LoRA adapters: no values for block ${layer} ${name}`);
          if (v.a.length !== r * inp || v.b.length !== out * r) {
            throw new ConfigError(
              `LoRA adapters: block ${layer} ${name} has ${v.a.length} A / ${v.b.length} B values, ` +
                `expected A [${r}, ${inp}] (${r * inp}) and B [${out}, ${r}] (${out * r})`,
            );
          }
          const aT = variable2d(transposeArray(v.a, r, inp), [inp, r]); // [in, r]
          const bT = variable2d(transposeArray(v.b, out, r), [r, out]); // [r, out]
          pairs.push({ layer, name, inFeatures: inp, outFeatures: out, aT, bT });
        }
      }
    } catch (e) {
      for (const p of pairs) {
        p.aT.dispose();
        p.bT.dispose();
      }
      throw e;
    }
    const extra = [...arrays.keys()].filter((k) => !pairs.some((p) => key(p.layer, p.name) === k));
    if (extra.length) throw new ConfigError(`LoRA adapters: values for ${extra[0]} do not match the model or the targets`);
    return new LoraAdapters(cfg, pairs);
  }

  get(layer: number, name: LinearName): LoraPair | undefined {
    return this.byKey.get(key(layer, name));
  }

  /** The trainable variables: aT, bT of every pair, in pair order. */
  variables(): tf.Variable[] {
    return this.pairs.flatMap((p) => [p.aT, p.bT]);
  }

  /** Number of trainable values. */
  parameterCount(): number {
    return this.pairs.reduce((n, p) => n + p.aT.size + p.bT.size, 0);
  }

  /** The values of every pair in the PEFT layout (A [r, in], B [out, r]), keyed `${layer}.${name}`. */
  async toArrays(): Promise<Map<string, LoraArrays>> {
    const out = new Map<string, LoraArrays>();
    const r = this.config.rank;
    for (const p of this.pairs) {
      const a = transposeArray((await p.aT.data()) as Float32Array, p.inFeatures, r);
      const b = transposeArray((await p.bT.data()) as Float32Array, r, p.outFeatures);
      out.set(key(p.layer, p.name), { a, b });
    }
    return out;
  }

  /** Overwrite every variable from values in the PEFT layout (a checkpoint being resumed). */
  assign(arrays: Map<string, LoraArrays>): void {
    const r = this.config.rank;
    for (const p of this.pairs) {
      const v = arrays.get(key(p.layer, p.name));
      if (!v || v.a.length !== p.aT.size || v.b.length !== p.bT.size) {
        throw new ConfigError(`LoRA adapters: missing or mis-sized values for block ${p.layer} ${p.name}`);
      }
      tf.tidy(() => {
        p.aT.assign(tf.tensor2d(transposeArray(v.a, r, p.inFeatures), [p.inFeatures, r]));
        p.bT.assign(tf.tensor2d(transposeArray(v.b, p.outFeatures, r), [r, p.outFeatures]));
      });
    }
  }

  /**
   * Forward options that add the adapters to the model's linears, in evaluation mode (no dropout): for perplexity,
   * evaluation and generation with unmerged adapters.
   */
  forward(): ForwardOptions {
    return {
      linear: (layer: number, name: LinearName, x: tf.Tensor3D, base: Linear): tf.Tensor3D => {
        const pair = this.get(layer, name);
        const y = applyLinear(x, base);
        if (!pair) return y;
        const out = this.adapted(pair, x, base, y, null);
        y.dispose();
        return out;
      },
    };
  }

  /**
   * Forward options for training: every linear (adapted or not) runs through `frozenLinear`, whose backward pass
   * needs no transposed-operand matMul, and with a dropout probability p > 0 each adapted layer's input gets a
   * fresh mask of 0 and 1/(1-p) from `dropout` (as torch.nn.Dropout; masks are drawn in execution order, so the
   * generator's state fixes them).
   */
  trainingForward(dropout: SeededRandom): ForwardOptions {
    const p = this.config.dropout;
    return {
      linear: (layer: number, name: LinearName, x: tf.Tensor3D, base: Linear): tf.Tensor3D => {
        const pair = this.get(layer, name);
        const y = frozenLinear(x, base);
        if (!pair) return y;
        const mask = p > 0 ? dropoutMask(dropout, x.size, p) : null;
        const out = this.adapted(pair, x, base, y, mask);
        y.dispose();
        return out;
      },
    };
  }

  /** y + scale * (dropout(x) aT) bT for x [b, s, in], y [b, s, out] (not consumed). */
  private adapted(pair: LoraPair, x: tf.Tensor3D, base: Linear, y: tf.Tensor3D, mask: Float32Array | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, s, inp] = x.shape;
      const inputs = linearDims(base)[0];
      if (inputs !== pair.inFeatures) {
        throw new ConfigError(`LoRA block ${pair.layer} ${pair.name}: adapter expects ${pair.inFeatures} inputs, layer has ${inputs}`);
      }
      let xd = tf.reshape(x, [b * s, inp]) as tf.Tensor2D; // [b*s, in]
      if (mask) xd = tf.mul(xd, tf.tensor2d(mask, [b * s, inp]));
      const delta = tf.mul(tf.matMul(tf.matMul(xd, pair.aT), pair.bT), this.scale); // [b*s, out]
      return tf.add(y, tf.reshape(delta, [b, s, pair.outFeatures])) as tf.Tensor3D;
    });
  }

  /**
   * The merged weight of an adapted layer, transposed: wT + scale * aT bT ([in, out] = (W + scale * B A)^T).
   * `masked`: every weight that is exactly zero in the base stays the base's zero (the pruning mask re-applied).
   * The caller owns the result.
   */
  mergedWeightT(pair: LoraPair, baseT: tf.Tensor2D, mode: 'masked' | 'dense'): tf.Tensor2D {
    return tf.tidy(() => {
      const merged = tf.add(baseT, tf.mul(tf.matMul(pair.aT, pair.bT), this.scale)) as tf.Tensor2D; // [in, out]
      return mode === 'masked' ? (tf.where(tf.equal(baseT, 0), baseT, merged) as tf.Tensor2D) : merged;
    });
  }

  dispose(): void {
    for (const p of this.pairs) {
      p.aT.dispose();
      p.bT.dispose();
    }
  }
}

/**
 * A frozen matMul x wT ([n, in] x [in, out]) whose gradient (for x only) is dy W with W = wT^T materialised by a
 * transpose, instead of tfjs's default dy wT^T (a transposed right operand: about 10x slower on wasm).
 */
export function frozenMatMul(x: tf.Tensor2D, wT: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((xi: tf.Tensor | tf.GradSaveFunc) => ({
    value: tf.matMul(xi as tf.Tensor2D, wT),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, tf.transpose(wT))),
  }));
  return f(x) as tf.Tensor2D;
}

/**
 * A frozen linear layer y = x wT + bias for x [b, s, in] -> [b, s, out], differentiable in x only (frozenMatMul;
 * a wT held in column chunks: one per chunk, concatenated).
 */
export function frozenLinear(x: tf.Tensor3D, l: Linear): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, s, inp] = x.shape;
    let y: tf.Tensor2D = matMulColumns(tf.reshape(x, [b * s, inp]), linearParts(l), frozenMatMul, 'a linear output');
    if (l.bias) y = tf.add(y, l.bias);
    return tf.reshape(y, [b, s, linearDims(l)[1]]) as tf.Tensor3D;
  });
}

/** A dropout mask of n values: 0 with probability p, else 1/(1-p). */
export function dropoutMask(rng: SeededRandom, n: number, p: number): Float32Array {
  const keep = 1 / (1 - p);
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = rng.uniform() < p ? 0 : keep;
  return m;
}

export { key as loraKey, transposeArray };
