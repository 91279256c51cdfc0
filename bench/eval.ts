/**
 * Perplexity-evaluation throughput (tokens/s) of c4-llama-7m on WikiText-2.
 *   npx tsx bench/eval.ts [--model DIR] [--seqlen 1024] [--windows 8] [--batch 1] [--backend auto]
 */
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../lib/model/backend.js';
import { loadModel } from '../lib/model/load.js';
import { evaluationIds, perplexityOfIds } from '../lib/eval/perplexity.js';
import { benchModelPath, benchSharedPath } from './common.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seqlen: { type: 'string', default: '1024' },
    windows: { type: 'string', default: '8' },
    batch: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'auto' },
  },
});
const backend = await initBackend(values.backend as BackendName);
const m = await loadModel(values.model ?? benchModelPath('c4-llama-7m'));
const seqlen = Number(values.seqlen);
const ids = await evaluationIds('wikitext2', benchSharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), m.tokenizer, seqlen);
await perplexityOfIds(m.model, ids, { seqlen, maxWindows: 1 }); // warm-up
const r = await perplexityOfIds(m.model, ids, { seqlen, maxWindows: Number(values.windows), batchSize: Number(values.batch) });
console.log(
  JSON.stringify(
    {
      bench: 'eval',
      model: m.dir,
      backend: backend.name,
      seqlen,
      batch: Number(values.batch),
      windows: r.windows,
      pplOfTheseWindows: +r.ppl.toFixed(3),
      seconds: +r.seconds.toFixed(2),
      tokensPerSecond: +r.tokensPerSecond.toFixed(1),
    },
    null,
    2,
  ),
);
m.dispose();
