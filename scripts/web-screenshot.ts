/**
 * The page after a run, for the README and docs/web.md: c4-llama-7m, Wanda 50%, 8 x 128 calibration, on wasm, in
 * headless Chromium (test/web/browser.ts). Needs web/dist (npm run build:web) and ../shared.
 *   npx tsx scripts/web-screenshot.ts [--out web/screenshot.png] [--backend wasm]
 */
import { parseArgs } from 'node:util';
import { runPage, startHarness } from '../test/web/browser.js';
import { SHARED_DIR } from '../test/helpers/shared.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'web/screenshot.png' }, backend: { type: 'string', default: 'wasm' } } });
const h = await startHarness(SHARED_DIR);
try {
  const q = '?model=shared/models/c4-llama-7m/&calibration=shared/data/c4/c4-train.00000-of-01024.head1000.jsonl' +
    `&eval=shared/data/wikitext-2-raw-v1/test.jsonl&method=wanda&sparsity=0.5&structure=unstructured&nsamples=8&seqlen=128&windows=4&seed=0&backend=${values.backend}&run=1`;
  const { page, result } = await runPage(h, q, 3_600_000);
  await page.setViewport({ width: 1000, height: 800 });
  await page.screenshot({ path: values.out as `${string}.png`, fullPage: true });
  console.log(JSON.stringify(result));
} finally {
  await h.close();
}
