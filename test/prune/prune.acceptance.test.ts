/**
 * Acceptance (npm run test:acceptance): end-to-end prunes of the real BF16 shared/models/c4-llama-7m with each method
 * (Wanda unstructured and 2:4, magnitude, SparseGPT) on C4 calibration windows: reported and stored sparsity agree,
 * the calibration hash is recomputed from (document, offset), and the output reloads and generates without leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readTexts } from '../../lib/data/sources.js';
import { generate } from '../../lib/generate.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearShape, linearTensorName } from '../../lib/model/architecture.js';
import { loadModel } from '../../lib/model/load.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import { parseStructure, prune } from '../../lib/prune/prune.js';
import { useTestBackend } from '../helpers/backend.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { sharedPath } from '../helpers/shared.js';

let tmp: string;
let c4: string; // C4 train documents (calibration source)

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-e2e-acc-'));
  c4 = sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl');
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The dtypes stored in a checkpoint folder. */
function storedDtypes(dir: string): Set<string> {
  const c = Checkpoint.open(dir);
  try {
    return new Set(c.files.flatMap((f) => [...f.entries.values()].map((e) => e.dtype)));
  } finally {
    c.close();
  }
}

describe('c4-llama-7m (real BF16 model): small runs that reload and generate', () => {
  const model = (): string => sharedPath('models', 'c4-llama-7m');
  const NSAMPLES = 8;
  const SEQLEN = 128;

  /** sha256 of the windows' ids as little-endian int32, recomputed from (document, offset) and the tokenizer. */
  async function recomputedHash(windows: [number, number][]): Promise<string> {
    const m = await loadModel(model(), { blocks: false });
    try {
      const docs = await readTexts(c4);
      const hash = createHash('sha256');
      for (const [doc, offset] of windows) {
        const ids = m.tokenizer.encode(docs[doc]!, { addSpecialTokens: true }).slice(offset, offset + SEQLEN);
        expect(ids).toHaveLength(SEQLEN);
        const bytes = Buffer.alloc(ids.length * 4);
        ids.forEach((id, i) => bytes.writeInt32LE(id, i * 4));
        hash.update(bytes);
      }
      return hash.digest('hex');
    } finally {
      m.dispose();
    }
  }

  test.each([
    ['wanda', 'unstructured'],
    ['wanda', '2:4'],
    ['magnitude', 'unstructured'],
    ['sparsegpt', 'unstructured'],
  ] as const)('%s %s 50%%', async (method, structure) => {
    const out = join(tmp, `c4-${method}-${structure.replace(':', 'of')}`);
    const report = await prune({
      model: model(),
      out,
      method,
      sparsity: 0.5,
      structure: parseStructure(structure),
      calibration: c4,
      nsamples: NSAMPLES,
      seqlen: SEQLEN,
      seed: 0,
      batchSize: 4,
    });
    expect(report.dtype).toBe('BF16');
    expect(report.sparsity.blocks).toHaveLength(6);
    if (method === 'wanda') {
      expect(report.sparsity.overall).toBe(0.5);
      for (const b of report.sparsity.blocks) expect(b.sparsity).toBe(0.5);
    } else {
      // magnitude and SparseGPT threshold with `<=`: ties with the threshold (many in BF16) go too
      expect(report.sparsity.overall).toBeGreaterThanOrEqual(0.5);
      expect(report.sparsity.overall).toBeLessThan(0.505);
      for (const b of report.sparsity.blocks) {
        expect(b.sparsity).toBeGreaterThanOrEqual(0.5);
        expect(b.sparsity).toBeLessThan(0.51);
      }
    }
    if (method === 'magnitude') {
      expect(report.calibration).toBeNull();
    } else {
      const cal = report.calibration!;
      expect(cal).toMatchObject({ file: resolve(c4), nsamples: NSAMPLES, seqlen: SEQLEN, seed: 0 });
      expect(cal.windows).toHaveLength(NSAMPLES);
      expect(cal.hash).toBe(await recomputedHash(cal.windows));
    }
    // the stored zeros are the reported ones; 2:4 holds in every group of the reloaded weights
    const stored = readSafetensorsFolder(out);
    const m = await loadModel(out);
    try {
      expect(storedDtypes(out)).toEqual(new Set(['BF16']));
      const cfg = m.model.config;
      for (const b of report.sparsity.blocks) {
        for (const n of LINEAR_NAMES) {
          const w = stored.get(linearTensorName(b.layer, n))!;
          expect(w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0)).toBe(b.matrices[n] * w.length);
          if (structure === '2:4') {
            const [rows, cols] = linearShape(cfg, n);
            for (let g = 0; g < rows * cols; g += 4) {
              const z = (w[g] === 0 ? 1 : 0) + (w[g + 1] === 0 ? 1 : 0) + (w[g + 2] === 0 ? 1 : 0) + (w[g + 3] === 0 ? 1 : 0);
              if (z !== 2) throw new Error(`block ${b.layer} ${n} group at ${g}: ${z} zeros`);
            }
          }
        }
      }
      await generate(m, '', 1); // warm-up: the model caches its RoPE table
      const before = tf.memory().numTensors;
      const g = await generate(m, 'The city council met on', 10);
      expect(tf.memory().numTensors).toBe(before);
      const promptLen = m.tokenizer.encode('The city council met on', { addSpecialTokens: true }).length;
      expect(g.ids).toHaveLength(promptLen + 10);
      for (const id of g.ids) expect(id >= 0 && id < cfg.vocabSize).toBe(true);
      expect(g.newText.length).toBeGreaterThan(0);
    } finally {
      m.dispose();
    }
  });
});
