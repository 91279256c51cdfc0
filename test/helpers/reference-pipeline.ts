/**
 * An independent replay of REFERENCE.md section 2 (capture layer inputs, prune layer by layer), for tests only.
 * It runs the float64 reference forward of reference-llama.ts one calibration sample at a time (batch of 1, as the
 * reference) and prunes with the plain-loop reference methods of reference-prune.ts; it imports nothing from lib/.
 *
 * For each decoder block in order:
 *   1. run the UNPRUNED block on every sample, recording the input of each of the seven linears (rounded to float32,
 *      the precision the library's activations have);
 *   2. prune the seven linears from those inputs;
 *   3. run the PRUNED block on every sample: its outputs are the next block's inputs.
 *
 * `fault` replays two plausible wrong orders on purpose, so a test can show that its comparison tells them apart:
 *   'stats-after-pruning': the linears are pruned group by group (q/k/v, o, gate/up, down) and each group's inputs
 *     are recorded after the groups before it were pruned (o_proj sees pruned q/k/v, down_proj pruned gate/up);
 *   'propagate-unpruned': the next block receives the outputs of the unpruned block.
 */
import { REF_LINEARS, ReferenceLlama, type RefLinear } from './reference-llama.js';
import {
  type RefStructure,
  refHessian,
  refMagnitudeMask,
  refSparseGpt,
  refWandaMask,
  refWandaMetric,
  refWandaScaler,
  refWandaVariant,
} from './reference-prune.js';
import { refAdmm, refGram, type RefAdmmOptions } from './reference-admm.js';
import { refDsnot, refDsnotStats, refOutlierRatio, refOwlSparsities, refRiaMetric, refRiaPermutedMask, refRiaUnstructured } from './reference-newer.js';

export type RefMethod = 'wanda' | 'magnitude' | 'sparsegpt' | 'ria' | 'admm';
/** The ADMM options of reference-admm.ts (structure and mask come from the pipeline). */
export type RefAdmmSettings = Omit<RefAdmmOptions, 'structure' | 'mask'>;

export interface RefPipelineOptions {
  method: RefMethod;
  structure: RefStructure; // unstructured carries the sparsity; N:M fixes it
  useVariant?: boolean; // Wanda's alpha-bisection variant (unstructured only)
  riaPermute?: boolean; // RIA's channel reallocation + LSA (N:M)
  owl?: { lamda: number; M: number }; // OWL: pass 1 on the dense model, then per-block sparsities (unstructured)
  dsnot?: { maxCycle: number; threshold: number }; // DSnoT on the attention linears after Wanda (unstructured)
  admm?: RefAdmmSettings; // method 'admm': its options (default the reference's)
  admmUpdate?: RefAdmmSettings; // the ADMM update of every linear after the mask of wanda, magnitude or ria
  windows: number[][]; // calibration token ids, one sequence per sample (ignored by magnitude)
  fault?: 'stats-after-pruning' | 'propagate-unpruned';
}

/** One pruned linear, Hugging Face layout. */
export interface RefLinearResult {
  rows: number; // out
  cols: number; // in
  weight: Float64Array; // [out, in] after pruning (SparseGPT: updated)
  mask: Uint8Array; // [out, in], 1 = removed
  /** The metric the mask was chosen from ([out, in]; Wanda: |W| sqrt(s), magnitude: |W|); null for SparseGPT. */
  metric: Float32Array | null;
}

export interface RefPipelineResult {
  layers: Record<RefLinear, RefLinearResult>[]; // per block
  owl?: { ratios: number[]; sparsities: number[] };
  permutations?: Record<string, number[]>;
}

/** The attention/MLP groups in execution order; linears of a group read the same input. */
const GROUPS: RefLinear[][] = [['q_proj', 'k_proj', 'v_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']];

function linearName(layer: number, n: RefLinear): string {
  const group = n === 'gate_proj' || n === 'up_proj' || n === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${n}.weight`;
}

/**
 * Replay the pipeline on `weights` (tensor name -> float32 values, Hugging Face layout; not modified) with the
 * config.json object `raw`. Returns every block's pruned linears.
 */
export function referencePipeline(
  raw: Record<string, unknown>,
  weights: Map<string, Float32Array>,
  o: RefPipelineOptions,
): RefPipelineResult {
  const w = new Map(weights); // pruned matrices replace entries here; the caller's map stays intact
  const model = new ReferenceLlama(raw, w);
  const c = model.c;
  const useData = o.method !== 'magnitude' || o.admmUpdate !== undefined;
  let xs: { x: Float64Array; s: number }[] = useData ? o.windows.map((ids) => ({ x: model.embed(ids), s: ids.length })) : [];
  const layers: Record<RefLinear, RefLinearResult>[] = [];
  const permutations: Record<string, number[]> = {};
  let owl: { ratios: number[]; sparsities: number[] } | undefined;
  if (o.owl) {
    if (o.structure.kind !== 'unstructured') throw new Error('reference pipeline: OWL is unstructured only');
    // pass 1: the dense model, block by block; ratio of the Wanda metrics of the seven linears together
    const dense = new ReferenceLlama(raw, new Map(weights));
    let ys = o.windows.map((ids) => ({ x: dense.embed(ids), s: ids.length }));
    const ratios: number[] = [];
    for (let layer = 0; layer < c.layers; layer++) {
      const got = new Map<RefLinear, Float32Array[]>();
      let seq = 0;
      for (const { x, s } of ys) {
        dense.block(layer, x, s, (name, input) => {
          got.set(name, [...(got.get(name) ?? []), Float32Array.from(input)]);
          seq = s;
        });
      }
      const parts = REF_LINEARS.map((n) => {
        const w0 = weights.get(linearName(layer, n))!;
        const cols = got.get(n)![0]!.length / seq;
        return refWandaMetric(w0, refWandaScaler(got.get(n)!, seq, cols), w0.length / cols, cols);
      });
      ratios.push(refOutlierRatio(parts, o.owl.M));
      ys = ys.map(({ x, s }) => ({ x: dense.block(layer, x, s), s }));
    }
    owl = { ratios, sparsities: refOwlSparsities(ratios, o.structure.sparsity, o.owl.lamda) };
  }

  /** Inputs of the linears in `names`, per sample, with the block's current weights. */
  const capture = (layer: number, names: readonly RefLinear[]): Map<RefLinear, { samples: Float32Array[]; seq: number; inF: number }> => {
    const got = new Map<RefLinear, { samples: Float32Array[]; seq: number; inF: number }>();
    for (const n of names) got.set(n, { samples: [], seq: 0, inF: 0 });
    for (const { x, s } of xs) {
      model.block(layer, x, s, (name, input, inDim) => {
        const g = got.get(name);
        if (!g) return;
        g.samples.push(Float32Array.from(input));
        g.seq = s;
        g.inF = inDim;
      });
    }
    return got;
  };

  for (let layer = 0; layer < c.layers; layer++) {
    const result = {} as Record<RefLinear, RefLinearResult>;
    const pruneGroup = (names: readonly RefLinear[], inputs: ReturnType<typeof capture> | null): void => {
      for (const n of names) {
        const key = linearName(layer, n);
        const w0 = w.get(key);
        if (!w0) throw new Error(`reference pipeline: tensor '${key}' not given`);
        const inp = inputs?.get(n);
        const cols = n === 'o_proj' ? c.heads * c.headDim : n === 'down_proj' ? c.intermediate : c.hidden; // in
        const rows = w0.length / cols;
        let r: RefLinearResult;
        const structure: RefStructure = owl ? { kind: 'unstructured', sparsity: owl.sparsities[layer]! } : o.structure;
        if (o.method === 'ria') {
          if (!inp) throw new Error(`reference pipeline: no inputs recorded for ${key}`);
          const metric = refRiaMetric(w0, refWandaScaler(inp.samples, inp.seq, cols), rows, cols, 0.5);
          let mask: Uint8Array;
          if (structure.kind === 'unstructured') mask = refRiaUnstructured(metric, structure.sparsity);
          else if (o.riaPermute) {
            const p = refRiaPermutedMask(metric, rows, cols, structure.n, structure.m);
            mask = p.mask;
            permutations[key.replace(/\.weight$/, '')] = p.index;
          } else mask = refWandaMask(metric, rows, cols, structure);
          r = { rows, cols, weight: masked(w0, mask), mask, metric };
        } else if (o.method === 'magnitude') {
          const mask = refMagnitudeMask(w0, rows, cols, o.structure);
          r = { rows, cols, weight: masked(w0, mask), mask, metric: Float32Array.from(w0, Math.abs) };
        } else if (o.method === 'wanda') {
          if (!inp) throw new Error(`reference pipeline: no inputs recorded for ${key}`);
          const metric = refWandaMetric(w0, refWandaScaler(inp.samples, inp.seq, cols), rows, cols);
          let mask: Uint8Array;
          if (o.useVariant) {
            if (o.structure.kind !== 'unstructured') throw new Error('reference pipeline: the Wanda variant is unstructured only');
            mask = refWandaVariant(metric, rows, cols, o.structure.sparsity).mask;
          } else {
            mask = refWandaMask(metric, rows, cols, structure);
          }
          if (o.dsnot && structure.kind === 'unstructured' && !['gate_proj', 'up_proj', 'down_proj'].includes(n)) {
            const { sum, variance } = refDsnotStats(inp.samples, inp.seq, cols);
            const scaler = refWandaScaler(inp.samples, inp.seq, cols);
            mask = refDsnot({ rows, cols, w: w0, initialMask: mask, scaler, sum, variance, maxCycle: o.dsnot.maxCycle, threshold: o.dsnot.threshold });
          }
          r = { rows, cols, weight: masked(w0, mask), mask, metric };
        } else if (o.method === 'admm') {
          if (!inp) throw new Error(`reference pipeline: no inputs recorded for ${key}`);
          const { weight, mask } = refAdmm(w0, refGram(inp.samples, inp.seq, cols), rows, cols, { structure, ...o.admm });
          r = { rows, cols, weight, mask, metric: null };
        } else {
          if (!inp) throw new Error(`reference pipeline: no inputs recorded for ${key}`);
          const { weight, mask } = refSparseGpt(w0, refHessian(inp.samples, inp.seq, cols), rows, cols, o.structure);
          r = { rows, cols, weight, mask, metric: null };
        }
        if (o.admmUpdate) {
          if (!inp || o.method === 'sparsegpt' || o.method === 'admm') throw new Error('reference pipeline: the ADMM update follows wanda, magnitude or ria');
          const updated = refAdmm(w0, refGram(inp.samples, inp.seq, cols), rows, cols, { structure, mask: r.mask, ...o.admmUpdate });
          r = { ...r, weight: updated.weight };
        }
        result[n] = r;
        w.set(key, Float32Array.from(r.weight)); // the block now runs with the pruned matrix (float32, as stored)
      }
    };

    // unpruned outputs, for the 'propagate-unpruned' fault
    const unprunedOut = useData && o.fault === 'propagate-unpruned' ? xs.map(({ x, s }) => ({ x: model.block(layer, x, s), s })) : null;
    if (!useData) {
      pruneGroup(REF_LINEARS, null);
    } else if (o.fault === 'stats-after-pruning') {
      for (const g of GROUPS) pruneGroup(g, capture(layer, g));
    } else {
      // 1. every linear's inputs from the unpruned block, 2. prune all seven
      const inputs = capture(layer, REF_LINEARS);
      pruneGroup(REF_LINEARS, inputs);
    }
    layers.push(result);
    // 3. the pruned block's outputs feed the next block
    if (useData && layer < c.layers - 1) xs = unprunedOut ?? xs.map(({ x, s }) => ({ x: model.block(layer, x, s), s }));
  }
  return { layers, ...(owl ? { owl } : {}), ...(Object.keys(permutations).length > 0 ? { permutations } : {}) };
}

function masked(w: Float32Array, mask: Uint8Array): Float64Array {
  return Float64Array.from(w, (v, i) => (mask[i] ? 0 : v));
}

/**
 * Mask positions where `got` (1 = removed) differs from the reference and the difference is NOT explained by a
 * near-tie of the reference metric: per comparison group (a row for unstructured, M consecutive columns of a row
 * for N:M), with k removed, the boundary is the k-th and (k+1)-th smallest metric values; a mismatch is explained
 * when those two are within `relTol` of each other and the entry's metric lies within `relTol` of them (float32
 * vs float64 activations can swap two nearly equal scores, nothing else). Returns the unexplained mismatches and
 * the explained ones.
 */
export function unexplainedMaskDiffs(
  got: Uint8Array,
  ref: RefLinearResult,
  structure: RefStructure,
  relTol: number,
): { unexplained: number; nearTies: number } {
  const { rows, cols, mask, metric } = ref;
  let unexplained = 0;
  let nearTies = 0;
  const groupLen = structure.kind === 'nm' ? structure.m : cols;
  const k = structure.kind === 'nm' ? structure.n : Math.floor(cols * structure.sparsity);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += groupLen) {
      const from = r * cols + g;
      let diffs = 0;
      for (let j = 0; j < groupLen; j++) if (got[from + j] !== mask[from + j]) diffs++;
      if (diffs === 0) continue;
      if (!metric || k === 0 || k === groupLen) {
        unexplained += diffs;
        continue;
      }
      const sorted = Float64Array.from(metric.subarray(from, from + groupLen)).sort();
      const lo = sorted[k - 1] as number;
      const hi = sorted[k] as number;
      const tol = relTol * Math.max(Math.abs(hi), 1e-30);
      for (let j = 0; j < groupLen; j++) {
        if (got[from + j] === mask[from + j]) continue;
        const v = metric[from + j] as number;
        if (hi - lo <= tol && v >= lo - tol && v <= hi + tol) nearTies++;
        else unexplained++;
      }
    }
  }
  return { unexplained, nearTies };
}
