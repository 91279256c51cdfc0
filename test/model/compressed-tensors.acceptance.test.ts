/**
 * Acceptance (npm run test:acceptance): compressed-tensors checkpoints of the real BF16 c4-llama-7m. Pruned 50%
 * unstructured and 2:4 (magnitude: no calibration, so the check stays short; the README's figures use Wanda) and saved
 * both ways, the compressed linear weights take <= 0.59x of dense BF16, the compressed folder re-saved dense is
 * byte-identical to the dense save, and both folders give the identical perplexity on WikiText-2 text (the first
 * 4 windows of 256 tokens of the test split's first rows).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { perplexityOfIds } from '../../lib/eval/perplexity.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { loadModel } from '../../lib/model/load.js';
import { saveCheckpoint } from '../../lib/model/save.js';
import { parseStructure, prune } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { sharedPath } from '../helpers/shared.js';

let tmp: string;

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-ct-acc-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function ppl(dir: string, text: string): Promise<number> {
  const m = await loadModel(dir);
  try {
    const ids = m.tokenizer.encode(text);
    return (await perplexityOfIds(m.model, ids.slice(0, 4 * 256), { seqlen: 256 })).ppl;
  } finally {
    m.dispose();
  }
}

describe('acceptance: c4-llama-7m saved as compressed-tensors', () => {
  test.each([
    ['unstructured', 'sparse-bitmask'],
    ['2:4', 'sparse-24-bitmask'],
  ])('magnitude 50%% %s: %s <= 0.59x of dense BF16, round trip byte-identical, identical perplexity', async (structure, format) => {
    const model = sharedPath('models', 'c4-llama-7m');
    const common = { model, method: 'magnitude' as const, sparsity: 0.5, structure: parseStructure(structure) };
    const tag = structure.replace(':', 'of');
    const dense = await prune({ ...common, out: join(tmp, `${tag}-dense`) });
    const packed = await prune({ ...common, out: join(tmp, `${tag}-compressed`), format: 'compressed' });
    expect(packed.storage.sparseFormat).toBe(format);
    expect(packed.storage.linearRatio).toBeLessThanOrEqual(0.59);
    expect(packed.storage.safetensorsBytes).toBeLessThan(0.75 * dense.storage.safetensorsBytes);

    const back = join(tmp, `${tag}-back`);
    const ckpt = Checkpoint.open(packed.out);
    try {
      saveCheckpoint(ckpt, { out: back });
    } finally {
      ckpt.close();
    }
    for (const f of ['model.safetensors', 'config.json']) {
      expect({ f, same: readFileSync(join(back, f)).equals(readFileSync(join(dense.out, f))) }).toEqual({ f, same: true });
    }

    const rows = readFileSync(sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), 'utf8').split('\n').slice(0, 200);
    const text = rows.filter(Boolean).map((r) => (JSON.parse(r) as { text: string }).text).join('');
    const [a, b] = [await ppl(dense.out, text), await ppl(packed.out, text)];
    expect(a).toBeGreaterThan(1);
    expect(b).toBe(a);
  }, 1_800_000);
});
