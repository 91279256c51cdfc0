/** Logits of the library against test/helpers/reference-llama.ts, for the model tests. */
import type { LoadedModel } from '../../lib/model/load.js';
import type { ReferenceLlama } from './reference-llama.js';
import { readFileSync } from 'node:fs';

export const TOL = 1e-4; // max abs error relative to the largest reference value

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The library's logits for IDS, split per sequence. */
export function libLogits(loaded: LoadedModel, ids: number[][]): Float32Array[] {
  const t = loaded.model.logits(ids);
  const v = t.dataSync() as Float32Array;
  t.dispose();
  const per = v.length / ids.length;
  return ids.map((_, b) => v.slice(b * per, (b + 1) * per));
}

/** Relative error of the library's logits against the reference, per the worst sequence. */
export function logitError(lib: Float32Array[], ref: ReferenceLlama, ids: number[][]): { err: number; scale: number } {
  let err = 0;
  let scale = 0;
  ids.forEach((row, b) => {
    const r = ref.logits(row);
    err = Math.max(err, maxAbsDiff(lib[b]!, r));
    scale = Math.max(scale, maxAbs(r));
  });
  return { err, scale };
}
