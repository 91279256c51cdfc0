/** perplexitySetFile on the shared data folder. test/eval/evaluate.test.ts checks it on a folder the test writes. */
import { join } from 'node:path';
import { perplexitySetFile } from '../../lib/eval/datasets.js';
import { sharedPath } from '../helpers/shared.js';

describe('perplexitySetFile on the shared folder', () => {
  test('finds the shared files', async () => {
    const data = sharedPath('data');
    expect(await perplexitySetFile('wikitext2', data)).toBe(join(data, 'wikitext-2-raw-v1', 'test.jsonl'));
    expect(await perplexitySetFile('c4', data)).toBe(join(data, 'c4', 'c4-validation.sample2000.parquet'));
  });
});
