/**
 * Acceptance (npm run test:acceptance): `--method admm` on the real BF16 c4-llama-7m against the float64 port of the
 * reference (test/helpers/reference-admm.ts through test/helpers/reference-pipeline.ts): the same C4 calibration
 * windows, seed 0; the masks must agree at >= 99.5% of positions and the WikiText-2 perplexity (seqlen 512) of the
 * two pruned models within 0.5%, at 50% and 70% unstructured and 2:4.
 *
 * By default a smaller check that fits CI: 8 calibration windows of 128 tokens, perplexity on the first 4 windows.
 * There 2:4 masks need only agree at >= 99%: with 1,024 calibration tokens float32 rounding alone moves them further
 * (bench/admm-float32.ts: the port with its matrices stored as float32 agrees with the float64 port at 99.28%, the
 * library at 99.13%); 99.5% holds for 2:4 in the full protocol.
 * LLM_PRUNE_ADMM_FULL=1 runs the full protocol (32 windows of 512 tokens, perplexity on the first 40 windows;
 * LLM_PRUNE_ADMM_PPL_WINDOWS overrides the count), whose figures docs/admm.md lists. Each case prints its figures.
 *
 * The smaller check runs in CI (a few minutes: the float64 port is plain loops); the full protocol on request.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calibrationFromFile } from '../../lib/data/calibration.js';
import { evaluationIds, perplexityOfIds } from '../../lib/eval/perplexity.js';
import { expectedTensors, linearTensorName, LINEAR_NAMES } from '../../lib/model/architecture.js';
import { Checkpoint, CheckpointWriter } from '../../lib/model/checkpoint.js';
import { loadModel } from '../../lib/model/load.js';
import type { DType } from '../../lib/model/safetensors.js';
import { parseStructure, prune } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { referencePipeline } from '../helpers/reference-pipeline.js';
import type { RefAdmmStructure } from '../helpers/reference-admm.js';
import { sharedPath } from '../helpers/shared.js';

const FULL = process.env['LLM_PRUNE_ADMM_FULL'] === '1';
const NSAMPLES = FULL ? 32 : 8;
const SEQLEN = FULL ? 512 : 128;
const PPL_WINDOWS = Number(process.env['LLM_PRUNE_ADMM_PPL_WINDOWS'] ?? (FULL ? 40 : 4));

let tmp: string;
const model = (): string => sharedPath('models', 'c4-llama-7m');

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-admm-acc-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** `dir` (a pruned checkpoint) copied to `to` with the linear weights replaced by `linears`, in the same dtype. */
function withLinears(dir: string, to: string, linears: Map<string, Float32Array>): void {
  const src = Checkpoint.open(dir);
  try {
    const dtype = src.files[0]!.entries.values().next().value!.dtype as DType;
    const plan = expectedTensors(src.config).map((t) => ({ name: t.name, shape: t.shape }));
    mkdirSync(to, { recursive: true });
    const w = new CheckpointWriter(to, plan, { dtype });
    for (const t of plan) w.write(t.name, linears.get(t.name) ?? src.read(t.name));
    w.finish();
  } finally {
    src.close();
  }
  for (const f of readdirSync(dir)) if (!f.endsWith('.safetensors') && f !== 'report.json' && !f.endsWith('.index.json')) copyFileSync(join(dir, f), join(to, f));
}

async function wikitextPpl(dir: string): Promise<number> {
  const m = await loadModel(dir);
  try {
    const ids = await evaluationIds('wikitext2', sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), m.tokenizer, 512);
    return (await perplexityOfIds(m.model, ids, { seqlen: 512, maxWindows: PPL_WINDOWS })).ppl;
  } finally {
    m.dispose();
  }
}

describe(`c4-llama-7m: --method admm against the port of the reference (${NSAMPLES} x ${SEQLEN} C4 calibration, seed 0)`, () => {
  test.each([
    ['unstructured', 0.5, 0.995],
    ['2:4', 0.5, FULL ? 0.995 : 0.99],
    ['unstructured', 0.7, 0.995],
  ] as const)('%s %s: masks agree at >= %s, perplexity within 0.5%%', async (structure, sparsity, minAgree) => {
    const tag = `${structure.replace(':', 'of')}-${sparsity}`;
    const c4 = sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
    const out = join(tmp, `lib-${tag}`);
    const t0 = performance.now();
    const report = await prune({ model: model(), out, method: 'admm', sparsity, structure: parseStructure(structure), calibration: c4, nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0, resumable: false });
    const libSeconds = (performance.now() - t0) / 1000;
    // the port sees the same windows (same sampler; the hash is the report's)
    const m = await loadModel(model(), { blocks: false });
    const calib = await calibrationFromFile(c4, { tokenizer: m.tokenizer, nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0 });
    m.dispose();
    expect(calib.hash).toBe(report.calibration!.hash);
    const raw = JSON.parse((await import('node:fs')).readFileSync(join(model(), 'config.json'), 'utf8')) as Record<string, unknown>;
    const ref: RefAdmmStructure = structure === '2:4' ? { kind: 'nm', n: 2, m: 4 } : { kind: 'unstructured', sparsity };
    const t1 = performance.now();
    const port = referencePipeline(raw, readSafetensorsFolder(model()), { method: 'admm', structure: ref, windows: calib.windows.map((w) => w.ids) });
    const portSeconds = (performance.now() - t1) / 1000;
    const lib = readSafetensorsFolder(out);
    let same = 0;
    let total = 0;
    const portLinears = new Map<string, Float32Array>();
    port.layers.forEach((layer, l) => {
      for (const n of LINEAR_NAMES) {
        const name = linearTensorName(l, n);
        const got = lib.get(name)!;
        got.forEach((v, i) => {
          if ((v === 0 ? 1 : 0) === layer[n].mask[i]) same++;
        });
        total += got.length;
        portLinears.set(name, Float32Array.from(layer[n].weight));
      }
    });
    const portDir = join(tmp, `port-${tag}`);
    withLinears(out, portDir, portLinears);
    const [pplLib, pplPort] = [await wikitextPpl(out), await wikitextPpl(portDir)];
    const agree = same / total;
    const rel = Math.abs(pplLib - pplPort) / pplPort;
    console.log(
      `admm ${structure} ${sparsity} (${NSAMPLES} x ${SEQLEN}, ppl on ${PPL_WINDOWS} windows): mask agreement ${(100 * agree).toFixed(3)}%, ` +
        `ppl library ${pplLib.toFixed(3)} port ${pplPort.toFixed(3)} (${(100 * rel).toFixed(3)}%), zeros ${(100 * report.sparsity.overall).toFixed(2)}%, ` +
        `prune ${report.times.prune.toFixed(1)} s of ${libSeconds.toFixed(0)} s, port ${portSeconds.toFixed(0)} s`,
    );
    expect(agree).toBeGreaterThanOrEqual(minAgree);
    expect(rel).toBeLessThan(0.005);
    rmSync(out, { recursive: true, force: true });
    rmSync(portDir, { recursive: true, force: true });
  }, 3_600_000);
});
