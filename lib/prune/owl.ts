/**
 * OWL, outlier-weighted layerwise sparsity (Yin et al. 2024; docs/methods.md section 7.1). Reference: luuyin/OWL
 * lib/prune_all.py `prune_wanda_outlier`. Pass 1 runs the block loop on the UNPRUNED model and measures each block's
 * outlier ratio of the Wanda metric; the ratios map to per-block sparsities that average the target; pass 2 (the
 * ordinary layer loop) prunes block i at s_i with any method. The outlier ratios always come from the Wanda metric
 * (OWL's "layerwise outlier distribution"), whatever method prunes in pass 2.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Kernels } from '../model/backend.js';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { CalibrationSet } from '../data/calibration.js';
import { type LayerwiseAllocator } from './method.js';
import { LINEAR_NAMES } from '../model/architecture.js';
import { runLayerLoop } from './pipeline.js';
import { linearModuleName, parseOptions } from './plan.js';
import { wandaMetric } from './wanda.js';
import { linearParts } from '../model/llama.js';

const owlOptions = z.strictObject({
  lambda: z.number().min(0).default(0.08).meta({ flag: 'owl-lambda', description: 'OWL: block sparsities span 2*lambda around the target (default 0.08)' }),
  m: z.number().positive().default(5).meta({ flag: 'owl-m', description: 'OWL: outliers are metric values > M * mean (default 5)' }),
});
export type OwlOptions = z.infer<typeof owlOptions>;

export const owl: LayerwiseAllocator<OwlOptions> = {
  name: 'owl',
  version: 1, // bump when a change alters its masks or weights
  summary: 'outlier-weighted layerwise sparsity: blocks with more Wanda-metric outliers are pruned less (Yin et al. 2024)',
  options: owlOptions,
};

/**
 * The outlier ratio of one block: 100 * #{v > M * mean(v)} / |v| over the concatenated metric values `parts`
 * (strict >, the mean over the whole block in float32 as the reference's torch.mean).
 */
export function outlierRatio(parts: readonly Float32Array[], m: number): number {
  let total = 0;
  let count = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) total += p[i] as number;
    count += p.length;
  }
  const thresh = Math.fround(Math.fround(total / count) * Math.fround(m));
  let above = 0;
  for (const p of parts) for (let i = 0; i < p.length; i++) if ((p[i] as number) > thresh) above++;
  return (above / count) * 100; // the reference's float(count) / total_params * 100
}

/**
 * Block sparsities from outlier ratios (float64, as the reference's numpy):
 * D = (r - min r) * (1 / (max r - min r) * lambda * 2); D = D - mean(D) + (1 - s); s_i = 1 - D_i, or 0.01 where
 * that is <= 0. The s_i span 2*lambda and average s. All ratios equal (the reference divides by zero there): every
 * block gets s.
 */
export function owlSparsities(ratios: readonly number[], sparsity: number, lambda: number): number[] {
  if (ratios.length === 0) return [];
  const lo = Math.min(...ratios);
  const hi = Math.max(...ratios);
  if (hi === lo) return ratios.map(() => sparsity);
  let d = ratios.map((r) => (r - lo) * ((1 / (hi - lo)) * lambda * 2));
  const mean = d.reduce((a, b) => a + b, 0) / d.length;
  d = d.map((x) => x - mean + (1 - sparsity));
  return d.map((x) => {
    const s = 1 - x;
    return s <= 0 ? 0.01 : s;
  });
}

/** Pass 1 and the mapping: the outlier ratio and allocated sparsity of every block. */
export interface OwlAllocation {
  ratios: number[];
  sparsities: number[];
}

/**
 * Run OWL's pass 1 over the unpruned model (nothing is pruned or written) and allocate block sparsities around
 * `sparsity`. Only the linears in `selected` (module names) count towards a block's ratio (all seven by default).
 * `kernels`: the layer loop's (default: those of the active backend).
 */
export async function owlAllocate(
  checkpoint: Checkpoint,
  calibration: CalibrationSet,
  batchSize: number,
  sparsity: number,
  options: OwlOptions,
  selected?: ReadonlySet<string>,
  onProgress?: (layer: number, layers: number) => void,
  kernels?: Kernels,
): Promise<OwlAllocation> {
  const o = parseOptions('owl', owlOptions, options) as OwlOptions;
  const c = checkpoint.config;
  const ratios: number[] = [];
  await runLayerLoop({
    checkpoint,
    plan: { blocks: Array.from({ length: c.numLayers }, (_, layer) => ({ layer, sparsity: 0, linears: {} })), skipped: [] },
    calibration,
    batchSize,
    writer: null,
    ...(kernels ? { kernels } : {}),
    inspect: {
      needs: ['scaler'],
      fn: async (layer, block, stats) => {
        const parts: Float32Array[] = [];
        for (const n of LINEAR_NAMES) {
          if (selected && !selected.has(linearModuleName(layer, n))) continue;
          for (const p of linearParts(block.linears[n])) {
            // (a weight held in column chunks of wT on webgpu: its rows chunk by chunk, in order)
            const values = tf.tidy(() => wandaMetric(tf.transpose(p) as tf.Tensor2D, stats(n).scalerRow));
            try {
              parts.push((await values.data()) as Float32Array); // the ratio is counted on the host
            } finally {
              values.dispose();
            }
          }
        }
        if (parts.length === 0) throw new ConfigError(`OWL: block ${layer} has no linear to measure`);
        ratios.push(outlierRatio(parts, o.m));
      },
    },
    ...(onProgress ? { onProgress: (p) => onProgress(p.layer, p.layers) } : {}),
  });
  return { ratios, sparsities: owlSparsities(ratios, sparsity, o.lambda) };
}
