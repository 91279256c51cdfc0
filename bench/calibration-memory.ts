/**
 * Memory of one calibration forward against the calibration batch size (PRUNE_DEFAULTS.batchSize): the peak of
 * tfjs-allocated bytes while one block runs on `b` windows (b = 1 and 2), minus what was allocated before, on random
 * LLaMA-shaped blocks (wasm, one thread; intermediate / hidden = 11008 / 4096 as LLaMA-7B). The growth per window is
 * fitted as alpha x heads x seqlen^2 x 4 (attention scores) + beta x seqlen x hidden x 4 (activations) over three
 * shapes, then extrapolated to LLaMA-7B (32 heads, hidden 4096) at seqlen 2048 with 128 calibration windows, next to
 * what the loop holds whatever the batch size (lib/prune/resume.ts memoryEstimate: 2 blocks + 2 x activations).
 *   npx tsx bench/calibration-memory.ts
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { memoryEstimate } from '../lib/prune/resume.js';
import { parseConfig } from '../lib/model/config.js';
import { writeTinyCheckpoint } from '../test/helpers/tiny-checkpoint.js';

const mb = (x: number): string => `${(x / 1e6).toFixed(1)} MB`;
const gb = (x: number): string => `${(x / 1e9).toFixed(1)} GB`;

/** Peak work bytes of one block forward on b windows of a random block of this shape. */
async function peakWork(dir: string, hidden: number, heads: number, seqlen: number, b: number): Promise<number> {
  const name = `h${hidden}-n${heads}-s${seqlen}`;
  writeTinyCheckpoint(join(dir, name), { seed: 1, hiddenSize: hidden, numHeads: heads, intermediateSize: (hidden * 11008) / 4096, numLayers: 1, maxPositions: seqlen });
  const m = await loadModel(join(dir, name));
  try {
    const x = tf.randomNormal([b, seqlen, hidden]) as tf.Tensor3D;
    const before = tf.memory().numBytes;
    const info = await tf.profile(() => m.model.block(0, x));
    tf.dispose(x);
    return info.peakBytes - before;
  } finally {
    m.dispose();
  }
}

await initBackend('wasm', { threads: 1 });
const dir = mkdtempSync(join(tmpdir(), 'llm-prune-calib-mem-'));
try {
  const shapes = [
    { hidden: 256, heads: 8, seqlen: 512 },
    { hidden: 512, heads: 8, seqlen: 512 },
    { hidden: 256, heads: 8, seqlen: 1024 },
  ];
  const per: number[] = [];
  for (const s of shapes) {
    const one = await peakWork(dir, s.hidden, s.heads, s.seqlen, 1);
    const two = await peakWork(dir, s.hidden, s.heads, s.seqlen, 2);
    per.push(two - one);
    console.log(`hidden ${s.hidden}, ${s.heads} heads, seqlen ${s.seqlen}: batch 1 ${mb(one)}, batch 2 ${mb(two)}: ${mb(two - one)} per window`);
  }
  // Shapes 0 and 1 differ in hidden only: beta; then alpha from shape 0; shape 2 checks the fit.
  const row = (s: (typeof shapes)[number]): number => s.seqlen * s.hidden * 4;
  const scores = (s: (typeof shapes)[number]): number => s.heads * s.seqlen * s.seqlen * 4;
  const beta = (per[1]! - per[0]!) / (row(shapes[1]!) - row(shapes[0]!));
  const alpha = (per[0]! - beta * row(shapes[0]!)) / scores(shapes[0]!);
  const predicted = alpha * scores(shapes[2]!) + beta * row(shapes[2]!);
  console.log(`fit: ${alpha.toFixed(2)} x heads x seqlen^2 x 4 + ${beta.toFixed(1)} x seqlen x hidden x 4 per window; predicts ${mb(predicted)} for the third shape (measured ${mb(per[2]!)})`);
  const s7 = { hidden: 4096, heads: 32, seqlen: 2048 };
  const window7 = alpha * scores(s7) + beta * row(s7);
  const c7 = parseConfig({
    model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32,
    vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-6, rope_theta: 10000,
  }, 'llama-7b');
  const est = memoryEstimate(c7, { nsamples: 128, seqlen: 2048, method: 'wanda' });
  const held = 2 * est.block + 2 * est.activations;
  console.log(
    `LLaMA-7B, 128 x 2048 calibration: ${gb(window7)} of work per window in the forward, on top of ${gb(held)} held whatever ` +
      `the batch size (2 blocks ${gb(2 * est.block)} + inputs and outputs ${gb(2 * est.activations)}): ` +
      `batch 1 ~${gb(held + window7)}, batch 8 ~${gb(held + 8 * window7)}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
