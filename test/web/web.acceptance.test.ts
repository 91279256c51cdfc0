/**
 * The web app in a real browser (Debian's Chromium, headless, through puppeteer-core): for c4-llama-7m, Wanda 50%
 * with 8 x 128 calibration windows from C4, the page's perplexities on the first 4 windows of 128 tokens of
 * WikiText-2 equal the CLI's (`prune`, then `eval --ppl wikitext2 --seqlen 128 --max-windows 4`) bit for bit on
 * wasm, and within a relative 1e-4 on Chromium's software WebGPU adapter; the downloaded zip holds a checkpoint
 * the CLI loads, with the CLI's masks. Also: the `{"error"}` line of the URL contract.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildWeb } from '../../web/build.js';
import { runCli } from '../helpers/cli.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { SHARED_DIR, sharedPath } from '../helpers/shared.js';
import { downloadBytes, requireChromium, runPage, startHarness, type Harness } from './browser.js';

const MODEL = 'models/c4-llama-7m';
const CALIBRATION = 'data/c4/c4-train.00000-of-01024.head1000.jsonl';
const EVAL = 'data/wikitext-2-raw-v1/test.jsonl';
const RUN = 'method=wanda&sparsity=0.5&structure=unstructured&nsamples=8&seqlen=128&windows=4&seed=0';
const query = (backend: string): string =>
  `?model=shared/${MODEL}/&calibration=shared/${CALIBRATION}&eval=shared/${EVAL}&${RUN}&backend=${backend}&run=1`;

let tmp: string;
let h: Harness;
const cli = { dense: NaN, pruned: NaN, dir: '' };

async function cliPerplexity(model: string, out: string): Promise<number> {
  const r = await runCli(['eval', '--backend', 'wasm', '--model', model, '--ppl', 'wikitext2', '--seqlen', '128', '--max-windows', '4',
    '--data-dir', join(SHARED_DIR, 'data'), '--out', out], { timeout: 900_000 });
  if (r.code !== 0) throw new Error(`eval failed: ${r.stderr}`);
  return (JSON.parse(readFileSync(out, 'utf8')) as { perplexity: { ppl: number }[] }).perplexity[0]!.ppl;
}

beforeAll(async () => {
  requireChromium();
  tmp = mkdtempSync(join(tmpdir(), 'web-acceptance-'));
  await buildWeb();
  h = await startHarness(SHARED_DIR);
  cli.dir = join(tmp, 'cli-pruned');
  const r = await runCli(['prune', '--backend', 'wasm', '--model', sharedPath(MODEL), '--method', 'wanda', '--sparsity', '0.5', '--calibration', sharedPath(CALIBRATION),
    '--nsamples', '8', '--seqlen', '128', '--seed', '0', '--out', cli.dir, '--no-resumable'], { timeout: 900_000 });
  if (r.code !== 0) throw new Error(`prune failed: ${r.stderr}`);
  cli.dense = await cliPerplexity(sharedPath(MODEL), join(tmp, 'dense.json'));
  cli.pruned = await cliPerplexity(cli.dir, join(tmp, 'pruned.json'));
}, 1_800_000);

afterAll(async () => {
  await h?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Zero positions of every linear weight of a checkpoint folder. */
function masks(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [name, t] of readSafetensorsFolder(dir)) if (/proj\.weight$/.test(name)) out.set(name, Uint8Array.from(t, (v) => (v === 0 ? 1 : 0)));
  return out;
}

test('wasm: bit-identical perplexities, and the downloaded checkpoint loads in the CLI with the same masks', async () => {
  const { page, result } = await runPage(h, query('wasm'), 1_200_000);
  expect(result).toMatchObject({ backend: 'wasm', pplDense: cli.dense, pplPruned: cli.pruned });
  expect(result['sparsity']).toBeCloseTo(0.5, 6);
  expect(String(result['adapter'])).toMatch(/^wasm/);
  const zip = join(tmp, 'page.zip');
  writeFileSync(zip, await downloadBytes(page));
  // Python's zipfile checks every CRC and extracts: an independent reader of the page's zip writer
  execFileSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2])', zip, tmp]);
  const dir = join(tmp, 'pruned');
  expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))).toMatchObject({ method: 'wanda', backend: 'wasm' });
  const want = masks(cli.dir);
  const got = masks(dir);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, m] of want) expect(Buffer.from(got.get(name)!).equals(Buffer.from(m))).toBe(true);
  expect(await cliPerplexity(dir, join(tmp, 'page-pruned.json'))).toBe(cli.pruned);
  await page.close();
}, 1_800_000);

test('webgpu (software adapter): perplexities within a relative 1e-4 of the CLI on wasm', async () => {
  const { page, result } = await runPage(h, query('webgpu'), 2_400_000);
  expect(result['backend']).toBe('webgpu');
  expect(String(result['adapter'])).not.toBe('');
  expect(Math.abs((result['pplDense'] as number) / cli.dense - 1)).toBeLessThan(1e-4);
  expect(Math.abs((result['pplPruned'] as number) / cli.pruned - 1)).toBeLessThan(1e-4);
  expect(result['sparsity']).toBeCloseTo(0.5, 6);
  await page.close();
}, 2_400_000);

test('local files (folder picker, file inputs) and the form give the same run as the URLs', async () => {
  const page = await h.browser.newPage();
  await page.goto(`${h.base}index.html`);
  const upload = async (selector: string, files: string[]): Promise<void> => {
    const input = await page.$(selector);
    await (input as unknown as { uploadFile(...p: string[]): Promise<void> }).uploadFile(...files);
  };
  await upload('#model-files', [sharedPath(MODEL)]); // a folder, as the folder picker gives it
  await upload('#calibration-file', [sharedPath(CALIBRATION)]);
  await upload('#eval-file', [sharedPath(EVAL)]);
  await page.select('#backend', 'wasm');
  await page.click('#run');
  const { result } = await runPage(h, null, 1_200_000, undefined, page);
  expect(result).toMatchObject({ backend: 'wasm', pplDense: cli.dense, pplPruned: cli.pruned });
  await page.close();
}, 1_800_000);

test('a missing model gives {"error"} naming the file; a malformed URL parameter names the parameter', async () => {
  const missing = await runPage(h, `?model=shared/models/no-such-model/&eval=shared/${EVAL}&backend=wasm&run=1`, 120_000);
  expect(missing.result).toEqual({ error: expect.stringMatching(/no-such-model\/config\.json not found/) });
  const bad = await runPage(h, `?model=shared/${MODEL}/&eval=shared/${EVAL}&sparsity=half&run=1`, 60_000);
  expect(bad.result).toEqual({ error: 'URL parameter sparsity=half: expected a number' });
  await missing.page.close();
  await bad.page.close();
}, 300_000);
