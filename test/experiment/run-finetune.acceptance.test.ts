/** configs/finetune-c4-llama-7m.yaml against the shared folder. test/experiment/run-finetune.test.ts loads it with a stand-in folder. */
import { resolve } from 'node:path';
import { expandSettings, loadExperiment } from '../../lib/experiment/schema.js';
import { SHARED_DIR, sharedPath } from '../helpers/shared.js';

describe('shipped fine-tune config on the shared folder', () => {
  test('configs/finetune-c4-llama-7m.yaml loads: Wanda 50% and 2:4, LoRA rank 8 on q_proj, v_proj at lr 1e-3, masked merge', () => {
    sharedPath('models', 'c4-llama-7m');
    const exp = loadExperiment(resolve('configs', 'finetune-c4-llama-7m.yaml'), {}, { shared: SHARED_DIR });
    expect(expandSettings(exp).map((s) => s.id)).toEqual(['wanda-unstructured-0.5', 'wanda-2of4']);
    expect(exp.calibration).toMatchObject({ nsamples: 128, seqlen: 256, seed: 0 });
    expect(exp.eval).toMatchObject({ ppl: ['wikitext2'], seqlen: 256, maxWindows: 100, tasks: [] });
    expect(exp.finetune).toMatchObject({
      data: sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'),
      rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], lr: 1e-3, maxSteps: 300, seqlen: 256, batchSize: 1, gradAccum: 1, merge: 'masked',
    });
  });
});
