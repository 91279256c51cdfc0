/**
 * The package's browser entry as a user gets it: the tarball installed offline into a fresh project
 * (test/helpers/packed-package.ts), a worker script importing `tfjs-llm-prune/browser` bundled from that project by
 * esbuild for the browser (a Node built-in reached anywhere fails the bundle), and run in Debian's Chromium on wasm:
 * it mounts c4-llama-7m and the data files from URLs, prunes with Wanda 50% (4 C4 windows of 128 tokens, seed 0)
 * and evaluates WikiText-2 (2 windows of 128) through the public API alone. Its checkpoint must be byte-identical to
 * the Node library's and its perplexity equal bit for bit; the webgpu backend, not passed to the platform, is refused
 * with the advice to pass it.
 */
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WASM_FILES } from '../../web/build.js';
import { evaluate } from '../../lib/eval/evaluate.js';
import { loadModel } from '../../lib/model/load.js';
import { prune } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { installPackedPackage } from '../helpers/packed-package.js';
import { SHARED_DIR, sharedPath } from '../helpers/shared.js';
import { requireChromium, runPage, startHarness, type Harness } from './browser.js';

const MODEL = 'models/c4-llama-7m';
const C4 = 'data/c4/c4-train.00000-of-01024.head1000.jsonl';
const WIKI = 'data/wikitext-2-raw-v1/test.jsonl';
const RUN = { method: 'wanda', sparsity: 0.5, nsamples: 4, seqlen: 128, seed: 0 } as const;

/** What a user writes: the worker, with the library from the package's browser entry only. */
const WORKER = `
import { installBrowserPlatform, urlSource, initBackend, prune, loadModel, evaluate } from 'tfjs-llm-prune/browser';

const { fs } = installBrowserPlatform({ wasmPaths: new URL('./', self.location.href).href });
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

async function mount(path, url) {
  const source = await urlSource(url);
  if (!source) throw new Error(url + ': not found');
  fs.mount(path, source);
}

self.onmessage = async ({ data: { shared, run } }) => {
  try {
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      await mount('/model/' + f, shared + '${MODEL}/' + f);
    }
    await mount('/data/c4.jsonl', shared + '${C4}');
    await mount('/data/wikitext-2-raw-v1/test.jsonl', shared + '${WIKI}');
    let webgpu = null; // refused, naming the fix: this page passes no webgpuBackend
    await initBackend('webgpu').catch((e) => (webgpu = e.message));
    const backend = await initBackend('wasm');
    const report = await prune({ model: '/model', out: '/out/pruned', calibration: '/data/c4.jsonl', resumable: false, ...run });
    const m = await loadModel('/out/pruned');
    let ppl;
    try {
      ppl = (await evaluate(m, { ppl: ['wikitext2'], dataDir: '/data', seqlen: run.seqlen, maxWindows: 2 })).perplexity[0].ppl;
    } finally {
      m.dispose();
    }
    const sha256 = hex(await crypto.subtle.digest('SHA-256', fs.readFileSync('/out/pruned/model.safetensors')));
    self.postMessage({ webgpu, backend: backend.name, sparsity: report.sparsity.overall, ppl, sha256 });
  } catch (e) {
    self.postMessage({ error: String((e && e.stack) || e) });
  }
};
`;

const PAGE = `<!doctype html>
<meta charset="utf-8">
<span id="stage">running</span> <span id="eta"></span>
<pre id="result"></pre>
<script type="module">
  const show = (v) => (document.getElementById('result').textContent = JSON.stringify(v));
  const worker = new Worker('./worker.js', { type: 'module' });
  worker.onmessage = (e) => show(e.data);
  worker.onerror = (e) => show({ error: e.message });
  worker.postMessage({ shared: new URL('/shared/', location.href).href, run: ${JSON.stringify(RUN)} });
</script>
`;

let tmp: string;
let h: Harness | undefined;

beforeAll(async () => {
  requireChromium();
  sharedPath(MODEL); // fails loudly without the shared folder
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-package-browser-'));
}, 60_000);

afterAll(async () => {
  await h?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The Node library's run of the same protocol: the checkpoint's sha256 and the perplexity. */
async function nodeRun(): Promise<{ sha256: string; ppl: number }> {
  await useTestBackend();
  const out = join(tmp, 'node-pruned');
  await prune({ model: sharedPath(MODEL), out, calibration: sharedPath(C4), resumable: false, ...RUN });
  const m = await loadModel(out);
  try {
    const r = await evaluate(m, { ppl: ['wikitext2'], pplFiles: { wikitext2: sharedPath(WIKI) }, seqlen: RUN.seqlen, maxWindows: 2 });
    return { sha256: createHash('sha256').update(readFileSync(join(out, 'model.safetensors'))).digest('hex'), ppl: r.perplexity[0]!.ppl };
  } finally {
    m.dispose();
  }
}

test('a worker importing tfjs-llm-prune/browser from the installed tarball prunes and evaluates as the Node library does', async () => {
  const { project } = installPackedPackage(tmp);
  const app = join(project, 'app');
  const dist = join(app, 'dist');
  mkdirSync(dist, { recursive: true });
  writeFileSync(join(app, 'worker.js'), WORKER);
  writeFileSync(join(dist, 'index.html'), PAGE);
  await build({ entryPoints: [join(app, 'worker.js')], outfile: join(dist, 'worker.js'), bundle: true, format: 'esm', platform: 'browser', target: 'es2022', absWorkingDir: project, logLevel: 'silent' });
  const wasm = join(project, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
  for (const f of WASM_FILES) copyFileSync(join(wasm, f), join(dist, f));
  h = await startHarness(SHARED_DIR, dist);
  const logs: string[] = [];
  const { result } = await runPage(h, '', 1_200_000, (l) => logs.push(l));
  if (result['error']) throw new Error(`the page failed: ${String(result['error'])}\n${logs.join('\n')}`);
  const node = await nodeRun();
  console.log(`browser entry: ${JSON.stringify(result)}; node: ${JSON.stringify(node)}`);
  expect(result).toEqual({ webgpu: expect.stringContaining("webgpuBackend: () => import('@tensorflow/tfjs-backend-webgpu')") as string, backend: 'wasm', sparsity: expect.closeTo(0.5, 6) as number, ppl: node.ppl, sha256: node.sha256 });
}, 1_800_000);
