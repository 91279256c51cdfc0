/**
 * Which model sizes the web app runs on which backend: each model folder under --root is pruned in the page
 * (headless Chromium, test/web/browser.ts) with the page's own run (Wanda 50%, 8 x 128 calibration, 4 perplexity
 * windows of 128), and the result line or the error is printed with the parameter count and the wall time.
 *   npx tsx bench/web-sizes.ts --root DIR --backend wasm|webgpu MODEL...   (DIR holds the models and data/, laid out
 *   like ../shared: data/c4/c4-train.00000-of-01024.head1000.jsonl and data/wikitext-2-raw-v1/test.jsonl)
 * Make models with scripts/make-synthetic-llama.ts (e.g. --shape 7b --layers 4 --vocab 4096).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parameterCount } from '../lib/model/architecture.js';
import { parseConfig } from '../lib/model/config.js';
import { runPage, startHarness } from '../test/web/browser.js';

const { values, positionals } = parseArgs({ options: { root: { type: 'string' }, backend: { type: 'string', default: 'wasm' }, method: { type: 'string', default: 'wanda' } }, allowPositionals: true });
if (!values.root || positionals.length === 0) throw new Error('usage: bench/web-sizes.ts --root DIR --backend wasm|webgpu MODEL...');
const h = await startHarness(values.root);
try {
  for (const m of positionals) {
    const params = parameterCount(parseConfig(JSON.parse(readFileSync(join(values.root, m, 'config.json'), 'utf8')) as Record<string, unknown>));
    const q = `?model=shared/${m}/&calibration=shared/data/c4/c4-train.00000-of-01024.head1000.jsonl&eval=shared/data/wikitext-2-raw-v1/test.jsonl` +
      `&method=${values.method}&sparsity=0.5&nsamples=8&seqlen=128&windows=4&seed=0&backend=${values.backend}&run=1`;
    const t0 = Date.now();
    const { page, result } = await runPage(h, q, 3_600_000);
    const estimate = (await page.evaluate(`document.getElementById('estimate').innerText`)) as string;
    console.log(JSON.stringify({ model: m, params, backend: values.backend, wall: (Date.now() - t0) / 1000, result, estimate: estimate.split('\n') }));
    await page.close();
  }
} finally {
  await h.close();
}
