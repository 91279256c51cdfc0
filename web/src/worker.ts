/**
 * The pruning worker: one run per message, the CLI's pipeline over the browser layer's in-memory file tree
 * (lib/browser/) — the dense model's perplexity (`eval --ppl`), `prune` into /out/pruned, the pruned model's
 * perplexity, and the pruned folder as a zip — posting progress to the page as it goes (protocol.ts).
 */
import { installBrowserPlatform } from '../../lib/browser/platform.js';
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { kernelsFor, type Kernels } from '../../lib/model/backend.js';
import { loadModel } from '../../lib/model/load.js';
import { dtypeSize } from '../../lib/model/safetensors.js';
import { evaluationIds, perplexityOfIds } from '../../lib/eval/perplexity.js';
import { prune, parseStructure, type PruneReport } from '../../lib/prune/prune.js';
import { LAYERWISE_NAMES, METHOD_NAMES, REFINER_NAMES, getMethod, type LayerwiseName, type MethodName, type RefinerName } from '../../lib/prune/registry.js';
import { MODEL_DIR, OUT_DIR, mountInputs } from './inputs.js';
import { estimateMemory, refusal } from './estimate.js';
import { startBackend, type ActiveBackend } from './backend.js';
import { zipStore, concat } from './zip.js';
import type { BlockBar, FromWorker, RunParams, Stage, ToWorker } from './protocol.js';

const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);
const stage = (s: Stage, note: string): void => post({ type: 'stage', stage: s, note });

// the browser layer, with tfjs's .wasm files next to this script (web/build.ts copies them there) and the WebGPU backend
const { fs } = installBrowserPlatform({
  wasmPaths: new URL('./', self.location.href).href,
  webgpuBackend: () => import('@tensorflow/tfjs-backend-webgpu'),
});
let backend: ActiveBackend | null = null;

/** Perplexity of a checkpoint folder as `eval --ppl` computes it: the first `windows` windows of `seqlen` tokens. */
async function perplexity(dir: string, evalFile: string, p: RunParams, kernels: Kernels, s: Stage): Promise<number> {
  const loaded = await loadModel(dir, { kernels });
  try {
    const ids = await evaluationIds('wikitext2', evalFile, loaded.tokenizer, p.seqlen);
    const t0 = performance.now();
    const r = await perplexityOfIds(loaded.model, ids, {
      seqlen: p.seqlen,
      maxWindows: p.windows,
      workers: 1,
      onProgress: (done, total) => post({ type: 'progress', stage: s, done, total, eta: done > 0 ? ((performance.now() - t0) / 1000 / done) * (total - done) : null }),
    });
    return r.ppl;
  } finally {
    loaded.dispose();
  }
}

/** The memory estimate, posted; throws the refusal when the run does not fit. */
function checkMemory(p: RunParams, b: ActiveBackend): void {
  const ckpt = Checkpoint.open(MODEL_DIR);
  try {
    const needsData = getMethod(p.method).stats.length > 0 || p.layerwise !== null || p.refine !== null;
    const deviceMemory = (navigator as { deviceMemory?: number }).deviceMemory;
    const estimate = estimateMemory({
      config: ckpt.config,
      outBytesPerParam: dtypeSize(ckpt.mainDtype()),
      nsamples: needsData ? p.nsamples : 0,
      seqlen: p.seqlen,
      backend: b.name,
      binding: b.binding,
      hostBytes: (deviceMemory ?? 4) * 2 ** 30,
    });
    post({ type: 'estimate', estimate });
    if (!estimate.fits) throw new Error(refusal(estimate));
  } finally {
    ckpt.close();
  }
}

function bars(report: PruneReport): BlockBar[] {
  return report.sparsity.blocks.map((b) => ({ layer: b.layer, sparsity: b.sparsity, allocated: b.allocated }));
}

async function pruneModel(p: RunParams, calibration: string | null, kernels: Kernels): Promise<PruneReport> {
  return prune({
    model: MODEL_DIR,
    out: OUT_DIR,
    method: p.method as MethodName,
    sparsity: p.sparsity,
    structure: parseStructure(p.structure),
    methodOptions: p.methodOptions,
    ...(p.layerwise ? { layerwise: p.layerwise as LayerwiseName } : {}),
    ...(p.refine ? { refine: p.refine as RefinerName } : {}),
    ...(calibration ? { calibration } : {}),
    nsamples: p.nsamples,
    seqlen: p.seqlen,
    seed: p.seed,
    format: p.format,
    resumable: false,
    overwrite: true,
    kernels,
    onProgress: (g) => post({ type: 'progress', stage: 'prune', done: g.layer + 1, total: g.layers, eta: g.pass === 'owl' ? null : g.eta }),
  });
}

async function run(msg: ToWorker): Promise<void> {
  const t0 = performance.now();
  const p = msg.params;
  stage('backend', `starting ${p.backend}`);
  backend ??= await startBackend(p.backend);
  // one backend per worker: the page starts a new worker when another is asked for
  const kernels: Kernels = { ...kernelsFor(backend.name), windows: 'backend' }; // no worker threads in a page
  stage('inputs', 'reading headers');
  const files = await mountInputs(fs, msg.inputs);
  stage('estimate', 'memory');
  checkMemory(p, backend);
  stage('dense', 'perplexity of the dense model');
  const pplDense = await perplexity(MODEL_DIR, files.eval, p, kernels, 'dense');
  stage('prune', `${p.method} ${p.structure} ${p.sparsity}`);
  const report = await pruneModel(p, files.calibration, kernels);
  for (const bar of bars(report)) post({ type: 'block', bar });
  stage('pruned', 'perplexity of the pruned model');
  const pplPruned = await perplexity(OUT_DIR, files.eval, p, kernels, 'pruned');
  stage('package', 'zip');
  const zip = concat(zipStore(fs.filesUnder(OUT_DIR).map(([path, bytes]) => [`pruned/${path}`, bytes])));
  const seconds = (performance.now() - t0) / 1000;
  const result = { backend: tf.getBackend(), adapter: backend.adapter, pplDense, pplPruned, sparsity: report.sparsity.overall, seconds };
  post({ type: 'done', result, blocks: bars(report), report, zip, zipName: `pruned-${p.method}-${p.sparsity}.zip` }, [zip.buffer]);
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  run(e.data).catch((err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err) }));
};

post({ type: 'ready', methods: [...METHOD_NAMES], layerwise: [...LAYERWISE_NAMES], refiners: [...REFINER_NAMES] });
