/**
 * The run described in the page URL: `?model=URL&calibration=URL&eval=URL&method=wanda&sparsity=0.5
 * &structure=unstructured&nsamples=8&seqlen=128&windows=4&seed=0&backend=wasm&run=1` (run=1 starts at once).
 * Every key is optional here; the form fills the rest with the defaults below.
 */
import type { BackendChoice, OutputFormat, RunParams } from './protocol.js';

export const DEFAULTS: RunParams = {
  method: 'wanda',
  sparsity: 0.5,
  structure: 'unstructured',
  nsamples: 8,
  seqlen: 128,
  windows: 4,
  seed: 0,
  backend: 'auto',
  format: 'dense',
  methodOptions: {},
  layerwise: null,
  refine: null,
};

export interface UrlRun {
  params: RunParams;
  model: string | null;
  calibration: string | null;
  eval: string | null;
  run: boolean;
}

const BACKENDS: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm'];
const FORMATS: readonly OutputFormat[] = ['dense', 'compressed'];

function num(q: URLSearchParams, key: string, fallback: number, integer: boolean): number {
  const s = q.get(key);
  if (s === null || s === '') return fallback;
  const v = Number(s);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new Error(`URL parameter ${key}=${s}: expected ${integer ? 'an integer' : 'a number'}`);
  }
  return v;
}

function oneOf<T extends string>(q: URLSearchParams, key: string, allowed: readonly T[], fallback: T): T {
  const s = q.get(key);
  if (s === null || s === '') return fallback;
  if (!(allowed as readonly string[]).includes(s)) throw new Error(`URL parameter ${key}=${s}: expected one of ${allowed.join(', ')}`);
  return s as T;
}

function json(q: URLSearchParams, key: string): Record<string, unknown> {
  const s = q.get(key);
  if (s === null || s === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new Error(`URL parameter ${key}: not JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`URL parameter ${key}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** Parse a query string (`location.search`); a malformed value throws an Error naming the parameter. */
export function parseRunUrl(search: string): UrlRun {
  const q = new URLSearchParams(search);
  const text = (k: string): string | null => q.get(k) || null;
  return {
    params: {
      method: text('method') ?? DEFAULTS.method,
      sparsity: num(q, 'sparsity', DEFAULTS.sparsity, false),
      structure: text('structure') ?? DEFAULTS.structure,
      nsamples: num(q, 'nsamples', DEFAULTS.nsamples, true),
      seqlen: num(q, 'seqlen', DEFAULTS.seqlen, true),
      windows: num(q, 'windows', DEFAULTS.windows, true),
      seed: num(q, 'seed', DEFAULTS.seed, true),
      backend: oneOf(q, 'backend', BACKENDS, DEFAULTS.backend),
      format: oneOf(q, 'format', FORMATS, DEFAULTS.format),
      methodOptions: json(q, 'options'),
      layerwise: text('layerwise'),
      refine: text('refine'),
    },
    model: text('model'),
    calibration: text('calibration'),
    eval: text('eval'),
    run: q.get('run') === '1',
  };
}

/** The query string of a run (for the page's "share" link): the inverse of parseRunUrl for URL inputs. */
export function runUrl(p: RunParams, inputs: { model: string; calibration: string | null; eval: string }): string {
  const q = new URLSearchParams();
  q.set('model', inputs.model);
  if (inputs.calibration) q.set('calibration', inputs.calibration);
  q.set('eval', inputs.eval);
  for (const k of ['method', 'sparsity', 'structure', 'nsamples', 'seqlen', 'windows', 'seed', 'backend', 'format'] as const) q.set(k, String(p[k]));
  if (Object.keys(p.methodOptions).length > 0) q.set('options', JSON.stringify(p.methodOptions));
  if (p.layerwise) q.set('layerwise', p.layerwise);
  if (p.refine) q.set('refine', p.refine);
  q.set('run', '1');
  return `?${q.toString()}`;
}
