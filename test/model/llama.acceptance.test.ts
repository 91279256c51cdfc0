/** The shared real checkpoints against the reference implementation. test/model/llama.test.ts covers tiny ones. */
import { join } from 'node:path';
import { generate, inspectModel } from '../../lib/generate.js';
import { loadModel } from '../../lib/model/load.js';
import { useTestBackend } from '../helpers/backend.js';
import { libLogits, logitError, readJson, TOL } from '../helpers/logit-check.js';
import { ReferenceLlama, readSafetensorsFolder } from '../helpers/reference-llama.js';
import { sharedPath } from '../helpers/shared.js';

beforeAll(async () => {
  await useTestBackend();
});

describe('shared real checkpoints', () => {
  test('c4-llama-7m (BF16, untied) matches the reference and generates 10 tokens', async () => {
    const dir = sharedPath('models', 'c4-llama-7m');
    const loaded = await loadModel(dir);
    try {
      const info = inspectModel(loaded);
      expect(info.dtype).toBe('BF16');
      expect(info.tiedEmbeddings).toBe(false);
      const ids = loaded.tokenizer.encode('The city council met on', { addSpecialTokens: true });
      const ref = new ReferenceLlama(readJson(join(dir, 'config.json')), readSafetensorsFolder(dir));
      const { err, scale } = logitError(libLogits(loaded, [ids]), ref, [ids]);
      expect(err).toBeLessThan(TOL * scale);
      const out = await generate(loaded, 'The city council met on', 10);
      expect(out.ids.slice(0, ids.length)).toEqual(ids);
      expect(out.ids).toHaveLength(ids.length + 10);
      for (const id of out.ids) expect(id >= 0 && id < 4096).toBe(true);
      expect(out.newText.length).toBeGreaterThan(0);
    } finally {
      loaded.dispose();
    }
  });

  test('TinyStories-656K (tied, lm_head stored with an alias): finite logits equal to the reference', async () => {
    const dir = sharedPath('models', 'TinyStories-656K');
    const loaded = await loadModel(dir);
    try {
      const ids = loaded.tokenizer.encode('Once upon a time', { addSpecialTokens: true });
      const lib = libLogits(loaded, [ids]);
      expect(lib[0]!.every((v) => Number.isFinite(v))).toBe(true);
      const ref = new ReferenceLlama(readJson(join(dir, 'config.json')), readSafetensorsFolder(dir));
      const { err, scale } = logitError(lib, ref, [ids]);
      expect(err).toBeLessThan(TOL * scale);
    } finally {
      loaded.dispose();
    }
  });
});
