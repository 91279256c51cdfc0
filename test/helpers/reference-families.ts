/**
 * An independent float64 reference of the Hugging Face forwards of Qwen3ForCausalLM, Gemma3ForCausalLM (text) and
 * Phi3ForCausalLM, written from transformers' modeling_qwen3.py, modeling_gemma3.py, modeling_phi3.py,
 * configuration_*.py, masking_utils.py and modeling_rope_utils.py with plain loops over Float64Array. It reads the
 * config.json fields and the stored tensors itself (Phi-3's fused qkv_proj / gate_up_proj as stored) and imports
 * nothing from lib/, so comparing the library with it compares two implementations.
 *
 * Semantics followed (transformers):
 * - Qwen3: `q_norm` / `k_norm` (RMSNorm `w * x / rms`, eps rms_norm_eps) on each head of q and k before RoPE;
 *   head_dim from the config (default 128); q/k/v/o biases when `attention_bias`; SiLU-gated MLP; layers from
 *   `max_window_layers` on use a sliding window when `use_sliding_window`.
 * - Gemma 3: every RMSNorm is `x / rms * (1 + w)`; embeddings times sqrt(hidden_size); per block
 *   input_layernorm -> attention (q_norm, k_norm before RoPE; scores times query_pre_attn_scalar^-0.5) ->
 *   post_attention_layernorm -> residual, pre_feedforward_layernorm -> MLP `down(gelu_tanh(gate) * up)` ->
 *   post_feedforward_layernorm -> residual; `layer_types` or every `sliding_window_pattern`-th layer full, the others
 *   sliding; sliding layers rotate with rope_local_base_freq, full ones with rope_theta; tied embeddings by default.
 * - Phi-3: `qkv = qkv_proj(x)` split as [q | k | v]; `gate, up = gate_up_proj(x).chunk(2)`; `up * silu(gate)`;
 *   RoPE on the first int(head_dim * partial_rotary_factor) dims only; `longrope`: inv_freq = 1 / (ext * theta^(2i/r))
 *   with the short factors up to original_max_position_embeddings and the long ones past it, cos and sin times
 *   sqrt(1 + ln(max_pos / orig) / ln(orig)); every layer windowed when `sliding_window` is set.
 * - Sliding window (masking_utils.sliding_window_overlay): query i sees key j when j <= i and j > i - window.
 */

// Math functions as module constants: global lookups are slow inside jest's vm context (~10x in hot loops).
const { cos, exp, floor, log, max, sin, sqrt, tanh, PI } = Math;

type Family = 'Qwen3ForCausalLM' | 'Gemma3ForCausalLM' | 'Phi3ForCausalLM';

/** The config.json fields the forward needs, with each family's configuration defaults. */
export interface FamilyRefConfig {
  family: Family;
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  tied: boolean;
  bias: boolean; // q/k/v/o biases
  window: number | null;
  sliding: boolean[]; // per layer
  theta: number;
  localTheta: number; // Gemma 3 sliding layers
  rotary: number; // rotated dims per head
  longrope: { short: number[]; long: number[]; orig: number; scale: number } | null;
  scaling: number; // attention score scale
}

function num(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new Error(`family reference: config field '${key}' missing`);
    return fallback;
  }
  if (typeof v !== 'number') throw new Error(`family reference: config field '${key}' is not a number`);
  return v;
}

function slidingLayers(raw: Record<string, unknown>, family: Family, layers: number, window: number | null): boolean[] {
  if (window === null) return Array<boolean>(layers).fill(false);
  const types = raw['layer_types'];
  if (Array.isArray(types)) return types.map((t) => t === 'sliding_attention');
  if (family === 'Gemma3ForCausalLM') {
    const pattern = num(raw, 'sliding_window_pattern', 6);
    return Array.from({ length: layers }, (_, i) => (i + 1) % pattern !== 0);
  }
  if (family === 'Qwen3ForCausalLM') return Array.from({ length: layers }, (_, i) => i >= num(raw, 'max_window_layers', 28));
  return Array<boolean>(layers).fill(true);
}

/** Read config.json the way each family's configuration class does. */
export function familyRefConfig(raw: Record<string, unknown>): FamilyRefConfig {
  const family = (raw['architectures'] as string[])[0] as Family;
  const gemma = family === 'Gemma3ForCausalLM';
  const phi = family === 'Phi3ForCausalLM';
  const hidden = num(raw, 'hidden_size');
  const heads = num(raw, 'num_attention_heads');
  const layers = num(raw, 'num_hidden_layers');
  const headDim = num(raw, 'head_dim', gemma ? 256 : family === 'Qwen3ForCausalLM' ? 128 : hidden / heads);
  let window: number | null = null;
  if (gemma) window = num(raw, 'sliding_window', 4096);
  else if (phi) window = raw['sliding_window'] == null ? null : num(raw, 'sliding_window');
  else if (raw['use_sliding_window'] === true) window = num(raw, 'sliding_window');
  const rotary = phi ? floor(headDim * num(raw, 'partial_rotary_factor', 1)) : headDim;
  const maxPos = num(raw, 'max_position_embeddings');
  const rs = raw['rope_scaling'] as Record<string, unknown> | null | undefined;
  let longrope: FamilyRefConfig['longrope'] = null;
  if (rs && (rs['rope_type'] ?? rs['type']) === 'longrope') {
    const orig = num(raw, 'original_max_position_embeddings', 4096);
    const factor = maxPos / orig;
    const scale = typeof rs['attention_factor'] === 'number' ? rs['attention_factor'] : factor <= 1 ? 1 : sqrt(1 + log(factor) / log(orig));
    longrope = { short: rs['short_factor'] as number[], long: rs['long_factor'] as number[], orig, scale };
  } else if (rs) throw new Error(`family reference: rope_scaling ${JSON.stringify(rs)}`);
  return {
    family,
    vocab: num(raw, 'vocab_size'),
    hidden,
    intermediate: num(raw, 'intermediate_size'),
    layers,
    heads,
    kvHeads: num(raw, 'num_key_value_heads', heads),
    headDim,
    eps: num(raw, 'rms_norm_eps', phi ? 1e-5 : 1e-6),
    tied: typeof raw['tie_word_embeddings'] === 'boolean' ? raw['tie_word_embeddings'] : gemma,
    bias: !phi && raw['attention_bias'] === true,
    window,
    sliding: slidingLayers(raw, family, layers, window),
    theta: num(raw, 'rope_theta', gemma ? 1_000_000 : 10000),
    localTheta: num(raw, 'rope_local_base_freq', 10000),
    rotary,
    longrope,
    scaling: gemma ? num(raw, 'query_pre_attn_scalar', 256) ** -0.5 : 1 / sqrt(headDim),
  };
}

/** Float64 forward of one sequence at a time; hidden states are row-major [seq * hidden]. */
export class ReferenceFamily {
  readonly c: FamilyRefConfig;

  /** `weights`: tensor name -> values as stored (Hugging Face layout, [out, in] for linears, fused for Phi-3). */
  constructor(raw: Record<string, unknown>, private readonly w: Map<string, Float32Array>) {
    this.c = familyRefConfig(raw);
  }

  private get(name: string): Float32Array {
    const v = this.w.get(name);
    if (!v) throw new Error(`family reference: tensor '${name}' not given`);
    return v;
  }

  /** x [s * in] -> [s * out] with W [out * in] (+ bias [out]). */
  private linear(x: Float64Array, s: number, name: string, inDim: number, outDim: number, bias: boolean): Float64Array {
    const W = this.get(`${name}.weight`);
    if (W.length !== inDim * outDim) throw new Error(`family reference: ${name}.weight has ${W.length} values, want ${outDim}x${inDim}`);
    const b = bias ? this.get(`${name}.bias`) : null;
    const y = new Float64Array(s * outDim);
    for (let t = 0; t < s; t++) {
      for (let o = 0; o < outDim; o++) {
        let acc = b ? b[o]! : 0;
        for (let i = 0; i < inDim; i++) acc += x[t * inDim + i]! * W[o * inDim + i]!;
        y[t * outDim + o] = acc;
      }
    }
    return y;
  }

  /** RMSNorm over rows of `width`: Gemma3RMSNorm `x/rms * (1 + w)`, else `w * x/rms`. */
  private norm(x: Float64Array, width: number, weight: string): Float64Array {
    const w = this.get(weight);
    const gemma = this.c.family === 'Gemma3ForCausalLM';
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / width; r++) {
      let ss = 0;
      for (let i = 0; i < width; i++) ss += x[r * width + i]! ** 2;
      const inv = 1 / sqrt(ss / width + this.c.eps);
      for (let i = 0; i < width; i++) y[r * width + i] = x[r * width + i]! * inv * (gemma ? 1 + w[i]! : w[i]!);
    }
    return y;
  }

  /** inv_freq and the cos/sin scale of one layer for a sequence of length s. */
  private ropeParams(layer: number, s: number): { inv: Float64Array; scale: number } {
    const { rotary: r, longrope } = this.c;
    const local = this.c.family === 'Gemma3ForCausalLM' && this.c.sliding[layer]!;
    const theta = local ? this.c.localTheta : this.c.theta;
    const inv = new Float64Array(r / 2);
    const ext = longrope ? (s > longrope.orig ? longrope.long : longrope.short) : null;
    for (let i = 0; i < r / 2; i++) inv[i] = 1 / ((ext ? ext[i]! : 1) * theta ** ((2 * i) / r));
    return { inv, scale: longrope ? longrope.scale : 1 };
  }

  /** Rotate the first `rotary` dims of [s * n * d] in place (rotate_half over them); the rest pass through. */
  private rope(x: Float64Array, s: number, n: number, p: { inv: Float64Array; scale: number }): void {
    const d = this.c.headDim;
    const half = this.c.rotary / 2;
    for (let t = 0; t < s; t++) {
      for (let hd = 0; hd < n; hd++) {
        const o = (t * n + hd) * d;
        for (let i = 0; i < half; i++) {
          const c = cos(t * p.inv[i]!) * p.scale;
          const sn = sin(t * p.inv[i]!) * p.scale;
          const x1 = x[o + i]!;
          const x2 = x[o + i + half]!;
          x[o + i] = x1 * c - x2 * sn;
          x[o + i + half] = x2 * c + x1 * sn;
        }
      }
    }
  }

  /** q, k, v of a block: [s * heads * d], [s * kvHeads * d] twice (Phi-3 from its fused qkv_proj). */
  private qkv(p: string, h1: Float64Array, s: number): [Float64Array, Float64Array, Float64Array] {
    const { hidden, heads, kvHeads, headDim: d, bias } = this.c;
    if (this.c.family !== 'Phi3ForCausalLM') {
      return [
        this.linear(h1, s, `${p}.self_attn.q_proj`, hidden, heads * d, bias),
        this.linear(h1, s, `${p}.self_attn.k_proj`, hidden, kvHeads * d, bias),
        this.linear(h1, s, `${p}.self_attn.v_proj`, hidden, kvHeads * d, bias),
      ];
    }
    const op = (heads + 2 * kvHeads) * d;
    const all = this.linear(h1, s, `${p}.self_attn.qkv_proj`, hidden, op, false);
    const q = new Float64Array(s * heads * d);
    const k = new Float64Array(s * kvHeads * d);
    const v = new Float64Array(s * kvHeads * d);
    for (let t = 0; t < s; t++) {
      q.set(all.subarray(t * op, t * op + heads * d), t * heads * d);
      k.set(all.subarray(t * op + heads * d, t * op + (heads + kvHeads) * d), t * kvHeads * d);
      v.set(all.subarray(t * op + (heads + kvHeads) * d, (t + 1) * op), t * kvHeads * d);
    }
    return [q, k, v];
  }

  /** Causal (windowed on sliding layers) softmax attention: [s * heads * d]. */
  private attend(layer: number, q: Float64Array, k: Float64Array, v: Float64Array, s: number): Float64Array {
    const { heads, kvHeads, headDim: d } = this.c;
    const window = this.c.sliding[layer] ? this.c.window : null;
    const rep = heads / kvHeads;
    const ctx = new Float64Array(s * heads * d);
    const scores = new Float64Array(s);
    for (let hq = 0; hq < heads; hq++) {
      const hk = floor(hq / rep);
      for (let i = 0; i < s; i++) {
        const first = window === null ? 0 : max(0, i - window + 1);
        let top = -Infinity;
        for (let j = first; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[(i * heads + hq) * d + e]! * k[(j * kvHeads + hk) * d + e]!;
          scores[j] = dot * this.c.scaling;
          top = max(top, scores[j]!);
        }
        let sum = 0;
        for (let j = first; j <= i; j++) sum += (scores[j] = exp(scores[j]! - top));
        for (let j = first; j <= i; j++) {
          const pj = scores[j]! / sum;
          for (let e = 0; e < d; e++) ctx[(i * heads + hq) * d + e] = ctx[(i * heads + hq) * d + e]! + pj * v[(j * kvHeads + hk) * d + e]!;
        }
      }
    }
    return ctx;
  }

  /** The gated MLP on h2 [s * hidden]: SiLU (Qwen3, Phi-3 from gate_up_proj) or GELU-tanh (Gemma 3). */
  private mlp(p: string, h2: Float64Array, s: number): Float64Array {
    const { hidden, intermediate: m } = this.c;
    let g: Float64Array;
    let u: Float64Array;
    if (this.c.family === 'Phi3ForCausalLM') {
      const gu = this.linear(h2, s, `${p}.mlp.gate_up_proj`, hidden, 2 * m, false);
      g = new Float64Array(s * m);
      u = new Float64Array(s * m);
      for (let t = 0; t < s; t++) {
        g.set(gu.subarray(t * 2 * m, t * 2 * m + m), t * m);
        u.set(gu.subarray(t * 2 * m + m, (t + 1) * 2 * m), t * m);
      }
    } else {
      g = this.linear(h2, s, `${p}.mlp.gate_proj`, hidden, m, false);
      u = this.linear(h2, s, `${p}.mlp.up_proj`, hidden, m, false);
    }
    const gelu = (x: number): number => 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x ** 3)));
    const silu = (x: number): number => x / (1 + exp(-x));
    const act = this.c.family === 'Gemma3ForCausalLM' ? gelu : silu;
    const a = new Float64Array(s * m);
    for (let i = 0; i < a.length; i++) a[i] = act(g[i]!) * u[i]!;
    return this.linear(a, s, `${p}.mlp.down_proj`, m, hidden, false);
  }

  /** Decoder block `layer` on one sequence x [s * hidden] -> [s * hidden]. */
  block(layer: number, x: Float64Array, s: number): Float64Array {
    const { hidden, heads, kvHeads, headDim: d, family } = this.c;
    const p = `model.layers.${layer}`;
    const gemma = family === 'Gemma3ForCausalLM';
    const [q0, k0, v] = this.qkv(p, this.norm(x, hidden, `${p}.input_layernorm.weight`), s);
    const q = family === 'Phi3ForCausalLM' ? q0 : this.norm(q0, d, `${p}.self_attn.q_norm.weight`);
    const k = family === 'Phi3ForCausalLM' ? k0 : this.norm(k0, d, `${p}.self_attn.k_norm.weight`);
    const rp = this.ropeParams(layer, s);
    this.rope(q, s, heads, rp);
    this.rope(k, s, kvHeads, rp);
    let attnOut = this.linear(this.attend(layer, q, k, v, s), s, `${p}.self_attn.o_proj`, heads * d, hidden, this.c.bias);
    if (gemma) attnOut = this.norm(attnOut, hidden, `${p}.post_attention_layernorm.weight`);
    const x2 = x.map((xi, i) => xi + attnOut[i]!);
    const preMlp = gemma ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`;
    let mlpOut = this.mlp(p, this.norm(x2, hidden, preMlp), s);
    if (gemma) mlpOut = this.norm(mlpOut, hidden, `${p}.post_feedforward_layernorm.weight`);
    return x2.map((xi, i) => xi + mlpOut[i]!);
  }

  /** Full forward of one sequence: logits [s * vocab]. */
  logits(ids: number[]): Float64Array {
    const { hidden, vocab } = this.c;
    const s = ids.length;
    const E = this.get('model.embed_tokens.weight');
    const scale = this.c.family === 'Gemma3ForCausalLM' ? sqrt(hidden) : 1;
    let x: Float64Array = new Float64Array(s * hidden);
    ids.forEach((id, t) => {
      for (let i = 0; i < hidden; i++) x[t * hidden + i] = E[id * hidden + i]! * scale;
    });
    for (let l = 0; l < this.c.layers; l++) x = this.block(l, x, s);
    const n = this.norm(x, hidden, 'model.norm.weight');
    const H = this.c.tied ? E : this.get('lm_head.weight');
    const y = new Float64Array(s * vocab);
    for (let t = 0; t < s; t++) {
      for (let o = 0; o < vocab; o++) {
        let acc = 0;
        for (let i = 0; i < hidden; i++) acc += n[t * hidden + i]! * H[o * hidden + i]!;
        y[t * vocab + o] = acc;
      }
    }
    return y;
  }
}
