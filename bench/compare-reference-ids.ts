/**
 * The token ids bench/compare-reference.py is fed: the calibration windows the project draws (same file, tokenizer,
 * sampler and seed as `llm-prune prune`) and the WikiText-2 evaluation ids (same as `llm-prune eval --ppl wikitext2`).
 *   node dist/bench/compare-reference-ids.js --model DIR --calibration FILE --wikitext FILE --nsamples 32 --seqlen 512
 * Prints JSON: { calibration: number[][], calibrationHash, eval: number[] }.
 */
import '../lib/node/platform.js'; // the Node platform layer (files, workers, backends)
import { parseArgs } from 'node:util';
import { calibrationFromFile } from '../lib/data/calibration.js';
import { evaluationIds } from '../lib/eval/perplexity.js';
import { HfTokenizer } from '../lib/model/tokenizer.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    calibration: { type: 'string' },
    wikitext: { type: 'string' },
    nsamples: { type: 'string', default: '32' },
    seqlen: { type: 'string', default: '512' },
    seed: { type: 'string', default: '0' },
  },
});
if (!values.model || !values.calibration || !values.wikitext) throw new Error('give --model, --calibration and --wikitext');
const tokenizer = await HfTokenizer.fromFolder(values.model);
const seqlen = Number(values.seqlen);
const calib = await calibrationFromFile(values.calibration, { tokenizer, nsamples: Number(values.nsamples), seqlen, seed: Number(values.seed) });
const ids = await evaluationIds('wikitext2', values.wikitext, tokenizer, seqlen);
process.stdout.write(JSON.stringify({ calibration: calib.windows.map((w) => w.ids), calibrationHash: calib.hash, eval: ids }));
