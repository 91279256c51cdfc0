/**
 * Acceptance (npm run test:acceptance): the WikiText-2 protocol value on a real model. TinyStories-656K on the full
 * WikiText-2 test split at seqlen 512 must give the PyTorch reference's 708.9913 (within 0.1%) over exactly 1,094
 * windows (REFERENCE.md section 4). About two minutes on one core.
 */
import { evaluationIds, perplexityOfIds } from '../../lib/eval/perplexity.js';
import { loadModel } from '../../lib/model/load.js';
import { useTestBackend } from '../helpers/backend.js';
import { sharedPath } from '../helpers/shared.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('acceptance: TinyStories-656K on WikiText-2 test at seqlen 512 (PyTorch reference 708.9913)', () => {
  test('ppl 708.99 within 0.1% over exactly 1,094 windows', async () => {
    const m = await loadModel(sharedPath('models', 'TinyStories-656K'));
    try {
      const ids = await evaluationIds('wikitext2', sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), m.tokenizer, 512);
      expect(Math.floor(ids.length / 512)).toBe(1094);
      const r = await perplexityOfIds(m.model, ids, { seqlen: 512, batchSize: 4 });
      expect(r).toMatchObject({ windows: 1094, tokens: 1094 * 512, seqlen: 512 });
      expect(Math.abs(r.ppl - 708.9913) / 708.9913).toBeLessThan(1e-3);
    } finally {
      m.dispose();
    }
  }, 1_800_000);
});
