/**
 * Each method, layerwise allocator and refiner declares the `version` of its numbers, and experiment results record
 * it (lib/experiment/fingerprint.ts): a run redoes results made by another version. This test is what makes "a change
 * to a method's numbers must bump its version" hold: it pins, per component, its version and a digest of what it
 * computes on fixed seeded inputs. A change of the numbers with the same version fails here; the fix is to bump the
 * `version` in the component's module and pin the new version and digest below (both in one commit). A component
 * added to the registry fails until it is pinned.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import type { PruneOptions } from '../../lib/prune/method.js';
import { outlierRatio, owlSparsities } from '../../lib/prune/owl.js';
import { getLayerwise, getMethod, getRefiner, LAYERWISE_NAMES, METHOD_NAMES, REFINER_NAMES } from '../../lib/prune/registry.js';
import { createStats, type ActivationStats, type StatName } from '../../lib/prune/stats.js';
import { useTestBackend } from '../helpers/backend.js';
import { TestRng } from '../helpers/reference-prune.js';

/** name -> [version, digest of its numbers on the inputs below]. */
const PINNED: Record<string, [number, string]> = {
  magnitude: [1, '9e68aa9a1a94394a'],
  wanda: [1, '019d769ae3b073e8'],
  sparsegpt: [1, '5029aef4907c5287'],
  ria: [1, '5c8c0194670ee7b7'],
  admm: [1, 'f65834d1c26a5e33'],
  'layerwise:owl': [1, '840431be2ede87e5'],
  'refine:dsnot': [1, 'f744d0b9a9edbe7f'],
  'refine:admm': [1, '2dd24636df1dbba6'],
};

const OUT = 16;
const IN = 64;
const UNSTRUCTURED: PruneOptions = { sparsity: 0.5, structure: { kind: 'unstructured' } };
const NM24: PruneOptions = { sparsity: 0.5, structure: { kind: 'nm', n: 2, m: 4 } };
const WHERE = { layer: 0, linear: 'q_proj', name: 'model.layers.0.self_attn.q_proj' } as const;

beforeAll(async () => {
  await useTestBackend();
});

/** A seeded weight [OUT, IN] and statistics of 4 samples of 12 tokens with per-feature scales. */
function layer(needs: { stats: readonly StatName[] }): { w: Float32Array; stats: ActivationStats | null } {
  const rng = new TestRng(20261207);
  const w = rng.normals(OUT * IN);
  const scale = Float32Array.from({ length: IN }, () => 0.2 + 2 * rng.uniform());
  const x = rng.normals(4 * 12 * IN);
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * (scale[i % IN] as number);
  const stats = createStats(needs, IN);
  if (stats) tf.tidy(() => stats.add(tf.tensor3d(x, [4, 12, IN])));
  return { w, stats };
}

/** sha256 of numbers: masks as they are, weights rounded to 5 significant digits (robust to the last bit). */
function digest(...parts: ArrayLike<number>[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(Array.from(p, (v) => Number(v).toPrecision(5)).join(',') + ';');
  return h.digest('hex').slice(0, 16);
}

/** A method's masks (unstructured 50% and 2:4, when it takes N:M) and, if it updates weights, the weights. */
async function methodNumbers(name: string): Promise<string> {
  const method = getMethod(name);
  const { w, stats } = layer(method);
  const parts: ArrayLike<number>[] = [];
  for (const target of [UNSTRUCTURED, NM24]) {
    const weight = tf.tensor2d(w, [OUT, IN]);
    const res = await method.prune(weight, stats, target, method.options.parse({}), WHERE);
    parts.push(await res.mask.data());
    if (method.updatesWeights) parts.push(await res.weight.data());
    tf.dispose([weight, res.weight, res.mask]);
  }
  stats?.dispose();
  return digest(...parts);
}

/** OWL: outlier ratios of seeded metric blocks and the sparsities they give at 50% and 70%. */
function owlNumbers(): string {
  const rng = new TestRng(7);
  const ratios = Array.from({ length: 6 }, (_, b) => outlierRatio([Float32Array.from(rng.normals(512), (v) => Math.abs(v) ** (1 + b / 4))], 5));
  return digest(ratios, owlSparsities(ratios, 0.5, 0.08), owlSparsities(ratios, 0.7, 0.08));
}

/** DSnoT: the mask it refines from Wanda's unstructured 50% mask. */
async function dsnotNumbers(): Promise<string> {
  const refiner = getRefiner('dsnot');
  const wanda = getMethod('wanda');
  const { w, stats } = layer({ stats: [...new Set([...wanda.stats, ...refiner.stats])] });
  const weight = tf.tensor2d(w, [OUT, IN]);
  const first = await wanda.prune(weight, stats, UNSTRUCTURED, wanda.options.parse({}), WHERE);
  const refined = await refiner.refine(weight, first.mask, stats!, UNSTRUCTURED, refiner.options.parse({}));
  const out = digest(await refined.data());
  tf.dispose([weight, first.weight, first.mask, refined]);
  stats!.dispose();
  return out;
}

/** The ADMM update: the weights it gives Wanda's unstructured 50% mask (the mask is kept). */
async function admmUpdateNumbers(): Promise<string> {
  const refiner = getRefiner('admm');
  const wanda = getMethod('wanda');
  const { w, stats } = layer({ stats: [...new Set([...wanda.stats, ...refiner.stats])] });
  const weight = tf.tensor2d(w, [OUT, IN]);
  const first = await wanda.prune(weight, stats, UNSTRUCTURED, wanda.options.parse({}), WHERE);
  const updated = await refiner.update!(weight, first.mask, stats!, UNSTRUCTURED, refiner.options.parse({}));
  const out = digest(await updated.mask.data(), await updated.weight.data());
  tf.dispose([weight, first.weight, first.mask, updated.weight, updated.mask]);
  stats!.dispose();
  return out;
}

async function numbersOf(kind: 'method' | 'layerwise' | 'refine', name: string): Promise<string> {
  if (kind === 'method') return methodNumbers(name);
  if (kind === 'layerwise' && name === 'owl') return owlNumbers();
  if (kind === 'refine' && name === 'dsnot') return dsnotNumbers();
  if (kind === 'refine' && name === 'admm') return admmUpdateNumbers();
  throw new Error(`${kind} '${name}': no inputs defined in test/prune/method-versions.test.ts; add them and pin it`);
}

const COMPONENTS = [
  ...METHOD_NAMES.map((n) => ['method', n, getMethod(n).version] as const),
  ...LAYERWISE_NAMES.map((n) => ['layerwise', n, getLayerwise(n).version] as const),
  ...REFINER_NAMES.map((n) => ['refine', n, getRefiner(n).version] as const),
];

test.each(COMPONENTS)('%s %s: its numbers are the pinned ones for its version (changed numbers: bump the version)', async (kind, name, version) => {
  const before = tf.memory().numTensors;
  const got: [number, string] = [version, await numbersOf(kind, name)];
  expect(tf.memory().numTensors).toBe(before);
  const key = kind === 'method' ? name : `${kind}:${name}`; // a method and a refiner may share a name (admm)
  expect({ [key]: got }).toEqual({ [key]: PINNED[key] });
});
