/**
 * How far float32 rounding alone moves ADMM's masks: the float64 port of the reference
 * (test/helpers/reference-admm.ts through test/helpers/reference-pipeline.ts) run twice on c4-llama-7m with the same
 * C4 calibration windows (seed 0), once in float64 and once with every ADMM matrix stored as float32 (as the
 * reference's own float32 tensors), next to `--method admm` of the library (wasm). Prints, per case, the share of
 * mask positions on which each pair agrees. The float32 port against the float64 port is the floor any float32
 * implementation of the reference can be expected to reach against the float64 port.
 *   npx tsx bench/admm-float32.ts [--case unstructured:0.5|2:4|unstructured:0.7] [--nsamples 8] [--seqlen 128]
 * Without --case all three run (about 10 minutes each at 8 x 128 on one core: the ports are plain loops).
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { calibrationFromFile } from '../lib/data/calibration.js';
import { LINEAR_NAMES, linearTensorName } from '../lib/model/architecture.js';
import { initBackend } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { parseStructure, prune } from '../lib/prune/prune.js';
import type { RefAdmmStructure } from '../test/helpers/reference-admm.js';
import { readSafetensorsFolder } from '../test/helpers/reference-llama.js';
import { referencePipeline, type RefPipelineResult } from '../test/helpers/reference-pipeline.js';
import { benchModelPath, benchSharedPath } from './common.js';

const { values } = parseArgs({
  options: {
    case: { type: 'string', multiple: true },
    nsamples: { type: 'string', default: '8' },
    seqlen: { type: 'string', default: '128' },
  },
});
const MODEL = benchModelPath('c4-llama-7m');
const C4 = benchSharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
const NSAMPLES = Number(values.nsamples);
const SEQLEN = Number(values.seqlen);
const CASES = values.case ?? ['unstructured:0.5', '2:4', 'unstructured:0.7'];

/** Removed-position masks (1 = removed) of every linear, in layer order, from a port run. */
function portMasks(r: RefPipelineResult): Uint8Array[] {
  return r.layers.flatMap((layer) => LINEAR_NAMES.map((n) => layer[n].mask));
}

function agreement(a: Uint8Array[], b: Uint8Array[]): number {
  let same = 0;
  let total = 0;
  a.forEach((m, k) => {
    const o = b[k]!;
    for (let i = 0; i < m.length; i++) if (m[i] === o[i]) same++;
    total += m.length;
  });
  return same / total;
}

async function runCase(spec: string, tmp: string): Promise<void> {
  const [structure, sparsity] = spec.startsWith('unstructured:') ? ['unstructured', Number(spec.split(':')[1])] : [spec, 0.5];
  const out = join(tmp, spec.replace(/:/g, '-'));
  const t0 = performance.now();
  await prune({ model: MODEL, out, method: 'admm', sparsity, structure: parseStructure(structure), calibration: C4, nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0, resumable: false });
  const libSeconds = (performance.now() - t0) / 1000;
  const lib = readSafetensorsFolder(out);
  const m = await loadModel(MODEL, { blocks: false });
  const calib = await calibrationFromFile(C4, { tokenizer: m.tokenizer, nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0 });
  m.dispose();
  const raw = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
  const ref: RefAdmmStructure = structure === 'unstructured' ? { kind: 'unstructured', sparsity } : { kind: 'nm', n: 2, m: 4 };
  const windows = calib.windows.map((w) => w.ids);
  const run = (float32: boolean): { masks: Uint8Array[]; seconds: number } => {
    const t = performance.now();
    const r = referencePipeline(raw, readSafetensorsFolder(MODEL), { method: 'admm', structure: ref, windows, admm: { float32 } });
    return { masks: portMasks(r), seconds: (performance.now() - t) / 1000 };
  };
  const p64 = run(false);
  const p32 = run(true);
  const libMasks = Array.from({ length: p64.masks.length / LINEAR_NAMES.length }, (_, l) =>
    LINEAR_NAMES.map((n) => Uint8Array.from(lib.get(linearTensorName(l, n))!, (v) => (v === 0 ? 1 : 0))),
  ).flat();
  const pct = (x: number): string => `${(100 * x).toFixed(3)}%`;
  console.log(
    `admm ${spec} (${NSAMPLES} x ${SEQLEN}): masks agree float32 port vs float64 port ${pct(agreement(p32.masks, p64.masks))}, ` +
      `library vs float64 port ${pct(agreement(libMasks, p64.masks))}, library vs float32 port ${pct(agreement(libMasks, p32.masks))} ` +
      `(library ${libSeconds.toFixed(0)} s, ports ${p64.seconds.toFixed(0)} s + ${p32.seconds.toFixed(0)} s)`,
  );
}

await initBackend('wasm');
const tmp = mkdtempSync(join(tmpdir(), 'llm-prune-admm-f32-'));
try {
  for (const c of CASES) await runCase(c, tmp);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
