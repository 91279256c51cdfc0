/** The shipped configs validate against the shared models and data. test/experiment/schema.test.ts loads them with a stand-in folder. */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expandSettings, loadExperiment } from '../../lib/experiment/schema.js';
import { sharedPath } from '../helpers/shared.js';

describe('shipped configs', () => {
  const dir = resolve('configs');
  const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  const expected: Record<string, number> = {
    'admm-c4-llama-7m.yaml': 20,
    'c4-llama-7m.yaml': 4,
    'demo.yaml': 2,
    'finetune-c4-llama-7m.yaml': 2,
    'newer-methods-c4-llama-7m.yaml': 23,
    'paper-grid-c4-llama-7m.yaml': 9,
    'pruning-c4-llama-7m.yaml': 4,
    'sparsity-sweep-c4-llama-7m.yaml': 24,
    'tinystories-656k.yaml': 4,
  };

  test('the expected files are there', () => {
    expect(files).toEqual(Object.keys(expected).sort());
  });

  test.each(files)('%s validates against the shared models and data', (f) => {
    sharedPath('models'); // fails loudly, with instructions, when the shared folder is absent
    const exp = loadExperiment(join(dir, f));
    expect(expandSettings(exp)).toHaveLength(expected[f]!);
    expect(exp.model.startsWith(sharedPath('models'))).toBe(true);
    expect(exp.calibration.source).toBe(sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'));
    expect(exp.eval.dataDir).toBe(sharedPath('data'));
  });
});
