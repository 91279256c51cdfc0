/**
 * Random layers for the tests of the methods after Wanda: a weight [out, in] and calibration samples [seq, in] with
 * per-feature scales and offsets (so Wanda's scaler, DSnoT's sums and variances vary), and statistics fed with them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ActivationStats, type StatName } from '../../lib/prune/stats.js';
import { TestRng } from './reference-prune.js';

/** A layer: weight [out, in] and samples [seq, in] with per-feature scales and offsets (so sums and variances vary). */
export function makeLayer(seed: number, out: number, inF: number, nSamples: number, seq: number) {
  const rng = new TestRng(seed);
  const w = rng.normals(out * inF);
  const scale = Float32Array.from({ length: inF }, () => 0.2 + 2 * rng.uniform());
  const shift = Float32Array.from({ length: inF }, () => rng.normal() * 0.5);
  const samples = Array.from({ length: nSamples }, () => {
    const x = rng.normals(seq * inF);
    for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * (scale[i % inF] as number) + (shift[i % inF] as number);
    return x;
  });
  return { out, inF, seq, w, samples };
}
export type Layer = ReturnType<typeof makeLayer>;

export function collect(layer: Layer, needs: StatName[], from = 0, to = layer.samples.length): ActivationStats {
  const stats = new ActivationStats(layer.inF, needs);
  for (let s = from; s < to; s++) {
    const x = tf.tensor3d(layer.samples[s]!, [1, layer.seq, layer.inF]);
    stats.add(x);
    x.dispose();
  }
  return stats;
}

/** A float32 0/1 mask tensor as bytes. */
export const maskOf = (t: tf.Tensor): Uint8Array => Uint8Array.from(t.dataSync());

/** `count` calibration windows of `seq` random token ids below `vocab` (no tokenizer, no file). */
export function randomCalibration(seed: number, count: number, seq: number, vocab: number): { windows: { doc: number; offset: number; ids: number[] }[]; hash: string } {
  const rng = new TestRng(seed);
  const windows = Array.from({ length: count }, (_, doc) => ({ doc, offset: 0, ids: Array.from({ length: seq }, () => Math.floor(rng.uniform() * vocab)) }));
  return { windows, hash: 'synthetic' };
}
