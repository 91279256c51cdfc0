/**
 * runExperiment with a `finetune:` stage, on a tiny random checkpoint with tiny data files (first rows of the shared
 * C4, WikiText-2 and ARC-Easy files, laid out like shared/data): every pruned setting is fine-tuned and evaluated
 * again (the dense model is not), the masked merge keeps every zero, the fine-tuned numbers reach results.json, .md
 * and .csv; on a second run everything is reused; a changed finetune value redoes only the fine-tune (the pruned
 * model's numbers are kept; its checkpoint is pruned again when it was not kept); an unmerged evaluation agrees
 * with the dense merge; a fine-tune killed mid-way continues from its trainer checkpoint to the same results;
 * dropping the section drops the fine-tune results; refusals.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, DataError } from '../../lib/errors.js';
import { runExperiment } from '../../lib/experiment/run.js';
import { expandSettings, loadExperiment, type Experiment } from '../../lib/experiment/schema.js';
import { validateResults, type ResultsFile, type SettingResult } from '../../lib/experiment/report.js';
import { linearZeros } from '../../lib/model/sparsity.js';
import type { FinetuneReport } from '../../lib/finetune/train.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { useTestBackend } from '../helpers/backend.js';
import { writeStandInShared } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { readResults, runNoted, writeExperimentFolder } from '../helpers/experiment-folder.js';

const ID = 'wanda-unstructured-0.5';
const BACKEND = process.env['LLM_PRUNE_TEST_BACKEND'] ?? 'wasm';
let tmp: string;
let configFile: string;

function load(output: string, overrides: Record<string, unknown> = {}): Experiment {
  return loadExperiment(configFile, { output, ...overrides });
}

/** A result without what changes from run to run: timings and the fine-tune's training seconds. */
function stable(r: SettingResult): unknown {
  const { timings: _t, finetune, ...rest } = r;
  if (!finetune) return rest;
  const { seconds: _s, ...f } = finetune;
  return { ...rest, finetune: f };
}

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'run-finetune-test-'));
  configFile = writeExperimentFolder(
    tmp,
    'tiny.json',
    {
      name: 'tiny LoRA',
      model: './model',
      backend: BACKEND,
      calibration: { source: './data/c4/train.jsonl', nsamples: 4, seqlen: 32, seed: 0, batchSize: 2 },
      prune: { method: 'wanda', structure: 'unstructured', sparsity: 0.5 },
      dense: true,
      eval: { ppl: ['wikitext2'], seqlen: 64, maxWindows: 2, tasks: ['arc_easy'], limit: 5, dataDir: './data' },
      // lr 1e-2: big enough that 4 steps move a random model's perplexity in the 2nd decimal
      finetune: { data: './data/c4/train.jsonl', rank: 4, alpha: 8, lr: 1e-2, maxSteps: 4, seqlen: 32, checkpointEvery: 1 },
      output: './unused',
      keepCheckpoints: true,
    },
    { c4: ['train.jsonl', 60], tasks: true },
  );
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('runExperiment with a finetune stage', () => {
  let first: ResultsFile;

  test('each pruned setting is fine-tuned and evaluated again; the masked merge keeps every zero; results.json/md/csv carry it', async () => {
    const out = join(tmp, 'out-a');
    const before = tf.memory().numTensors;
    const { r, notes } = await runNoted(load(out));
    const after = tf.memory().numTensors;
    expect(r.computed).toEqual(['dense', ID]);
    expect(r.reused).toEqual([]);
    expect(r.finetuned).toEqual([ID]);
    expect(notes).toContain(`[2/2] ${ID}: fine-tuning (LoRA rank 4 on q_proj, v_proj, 4 steps)`);
    // training windows: the 60 documents less the 4 calibration documents (distinct here)
    expect(notes).toContain(`[2/2] ${ID}: fine-tuning on 4 windows from 56 documents (4 calibration documents left out)`);

    first = readResults(out);
    expect(r.results).toEqual(first);
    const [dense, pruned] = first.results;
    expect(dense!.finetune).toBeUndefined();
    const f = pruned!.finetune!;
    expect(f).toMatchObject({ merge: 'masked', steps: 4, actualSparsity: 0.5 });
    expect(f.actualSparsity).toBe(pruned!.actualSparsity);
    expect(f.seconds).toBeGreaterThan(0);
    expect(f.firstLoss).toBeGreaterThan(0);
    expect(f.finalLoss).toBeGreaterThan(0);
    expect(f.perplexity['wikitext2']).toMatchObject({ windows: 2, tokens: 128 });
    expect(f.perplexity['wikitext2']!.ppl).not.toBe(pruned!.perplexity['wikitext2']!.ppl); // the adapters changed the model
    expect(f.tasks['arc_easy']!.n).toBe(5);
    expect(f.mean).toBe(f.tasks['arc_easy']!.acc);
    expect(Object.keys(pruned!.timings).sort()).toEqual(
      ['finetune', 'finetune_load', 'finetune_ppl', 'finetune_tasks', 'load', 'ppl', 'prune', 'tasks'].sort(),
    );

    // Kept folders: the merged checkpoint has exactly the zeros of the pruned one, matrix by matrix, and its
    // adapted matrices changed.
    const pruneCkpt = Checkpoint.open(join(out, 'checkpoints', ID));
    const merged = Checkpoint.open(join(out, 'finetune', ID, 'merged'));
    try {
      expect(linearZeros(merged)).toEqual(linearZeros(pruneCkpt));
      const q = linearTensorName(0, 'q_proj');
      expect(Array.from(merged.read(q))).not.toEqual(Array.from(pruneCkpt.read(q)));
      const k = linearTensorName(0, 'k_proj');
      expect(Array.from(merged.read(k))).toEqual(Array.from(pruneCkpt.read(k))); // not adapted
    } finally {
      pruneCkpt.close();
      merged.close();
    }
    expect(readdirSync(join(out, 'finetune', ID))).toEqual(
      expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'report.json', 'merged', 'checkpoint']),
    );
    // The fine-tune filled in its own defaults for the keys the file leaves out (dropout, schedule, warmupSteps,
    // gradAccum; seqlen and merge set): they are the values the fine-tune's fingerprint covers.
    const stored = JSON.parse(readFileSync(join(out, 'settings', `${ID}.json`), 'utf8')) as { finetune: { inputs: Record<string, unknown> } };
    const { data: _data, ...fingerprinted } = stored.finetune.inputs;
    const rep = JSON.parse(readFileSync(join(out, 'finetune', ID, 'report.json'), 'utf8')) as FinetuneReport;
    const { rank, alpha, dropout, targets } = rep.adapters;
    const { lr, schedule, warmupSteps, seqlen, batchSize, gradAccum } = rep.optimizer;
    const used = { rank, alpha, dropout, targets, lr, schedule, warmupSteps, seqlen, batchSize, gradAccum, seed: rep.data.seed, maxSteps: rep.training.steps, merge: rep.merge?.mode ?? 'none' };
    expect(used).toEqual(fingerprinted);
    expect(fingerprinted).toMatchObject({ dropout: 0.05, schedule: 'linear', warmupSteps: 0, gradAccum: 1, merge: 'masked' });

    const md = readFileSync(join(out, 'results.md'), 'utf8');
    const ppl = (x: number | null | undefined): string => x!.toFixed(2);
    const pct = (x: number): string => (100 * x).toFixed(2);
    expect(md).toContain(`| ${ID} | 50.00 | ${ppl(pruned!.perplexity['wikitext2']!.ppl)} | ${pct(pruned!.tasks['arc_easy']!.acc)} |`);
    expect(md).toContain(`| ${ID} + LoRA | 50.00 | ${ppl(f.perplexity['wikitext2']!.ppl)} | ${pct(f.tasks['arc_easy']!.acc)} |`);
    expect(md).not.toContain('dense + LoRA');
    expect(md).toContain('## Fine-tuning');
    expect(md).toContain('with the pruning mask re-applied (the zeros kept exactly)');
    expect(md).toContain(`| ${ID} | masked | 4 | ${f.firstLoss!.toFixed(4)} | ${f.finalLoss!.toFixed(4)} |`);
    expect(first.meta['finetune']).toMatch(/^LoRA rank 4 \(alpha 8, dropout 0\.05\) on q_proj, v_proj; AdamW lr 0\.01, linear schedule/);

    const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    const col = (name: string): number => csv[0]!.indexOf(name);
    for (const c of ['ft_merge', 'ft_steps', 'ft_actual_sparsity', 'ft_wikitext2_ppl', 'ft_arc_easy_acc', 'ft_mean']) expect(col(c)).toBeGreaterThan(0);
    expect(csv[1]![col('ft_merge')]).toBe(''); // dense
    expect(csv[2]![col('ft_merge')]).toBe('masked');
    expect(Number(csv[2]![col('ft_wikitext2_ppl')])).toBe(f.perplexity['wikitext2']!.ppl);
    expect(Number(csv[2]![col('ft_actual_sparsity')])).toBe(0.5);
    expect(after).toBe(before);
  });

  test('a second run reuses everything: nothing pruned, fine-tuned or evaluated, results.json byte for byte the same', async () => {
    const out = join(tmp, 'out-a');
    const text = readFileSync(join(out, 'results.json'), 'utf8');
    const { r, notes } = await runNoted(load(out));
    expect([r.computed, r.reused, r.finetuned]).toEqual([[], ['dense', ID], []]);
    expect(notes).toContain(`[2/2] ${ID}: reused (finished earlier: settings/${ID}.json)`);
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(text);
  });

  test('a changed finetune.lr redoes only the fine-tune; without a kept checkpoint the setting is pruned again, not evaluated again', async () => {
    const out = join(tmp, 'out-a');
    // keepCheckpoints false: the checkpoint still there from the first run is used, then both folders go
    const a = await runNoted(load(out, { 'finetune.lr': 2e-2, keepCheckpoints: false }));
    expect([a.r.computed, a.r.reused, a.r.finetuned]).toEqual([[], ['dense', ID], [ID]]);
    expect(a.notes).toContain(
      `[2/2] ${ID}: reusing the pruned model's result; fine-tuning again: its fine-tune was made from different inputs (changed: finetune.lr)`,
    );
    expect(a.notes.some((l) => l.includes('pruning again'))).toBe(false);
    expect(existsSync(join(out, 'checkpoints'))).toBe(false);
    expect(existsSync(join(out, 'finetune'))).toBe(false);
    const [dense, pruned] = readResults(out).results;
    expect(stable(dense!)).toEqual(stable(first.results[0]!));
    expect({ ...pruned!, finetune: undefined, timings: undefined }).toEqual({ ...first.results[1]!, finetune: undefined, timings: undefined });
    expect(pruned!.timings['prune']).toBe(first.results[1]!.timings['prune']); // the pruning of the first run
    expect(pruned!.finetune!.perplexity['wikitext2']!.ppl).not.toBe(first.results[1]!.finetune!.perplexity['wikitext2']!.ppl);

    // Back to the first lr: the checkpoint is gone, so the setting is pruned again (same weights), fine-tuned, and
    // the fine-tuned numbers are those of the first run.
    const b = await runNoted(load(out, { keepCheckpoints: false }));
    expect([b.r.computed, b.r.reused, b.r.finetuned]).toEqual([[], ['dense', ID], [ID]]);
    expect(b.notes).toContain(`[2/2] ${ID}: pruning again for the fine-tune (its checkpoint was not kept)`);
    expect(b.notes.some((l) => l.includes('differs from the stored one'))).toBe(false);
    expect(readResults(out).results.map(stable)).toEqual(first.results.map(stable));
  });

  test('merge none evaluates the adapters unmerged: the same numbers as the dense merge, no zero fraction', async () => {
    const out = join(tmp, 'out-b');
    const dense = await runNoted(load(out, { 'finetune.merge': 'dense', keepCheckpoints: false, dense: false }));
    expect(dense.r.finetuned).toEqual([ID]);
    const fd = dense.r.results.results[0]!.finetune!;
    expect(fd.merge).toBe('dense');
    expect(fd.actualSparsity!).toBeLessThan(0.5); // the zeros of q_proj and v_proj fill in
    const none = await runNoted(load(out, { 'finetune.merge': 'none', keepCheckpoints: false, dense: false }));
    expect(none.notes).toContain(
      `[1/1] ${ID}: reusing the pruned model's result; fine-tuning again: its fine-tune was made from different inputs (changed: finetune.merge)`,
    );
    const fn = none.r.results.results[0]!.finetune!;
    expect(fn).toMatchObject({ merge: 'none', actualSparsity: null, steps: 4, firstLoss: fd.firstLoss, finalLoss: fd.finalLoss });
    const [pn, pd] = [fn.perplexity['wikitext2']!.ppl!, fd.perplexity['wikitext2']!.ppl!];
    expect(Math.abs(pn - pd) / pd).toBeLessThan(1e-5); // float32 rounding of W + scale B A vs W x + scale B (A x)
    expect(fn.tasks).toEqual(fd.tasks);
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toContain(`| ${ID} + LoRA | - | ${fn.perplexity['wikitext2']!.ppl!.toFixed(2)} |`);
    expect(md).toContain('unmerged, on top of the pruned checkpoint');
  });

  test('a run killed while fine-tuning keeps the pruned result and continues the fine-tune from its checkpoint, to the same results', async () => {
    const out = join(tmp, 'out-c');
    const script = join(tmp, 'child.mts');
    const url = (p: string): string => pathToFileURL(resolve(p)).href;
    writeFileSync(
      script,
      [
        `import { loadExperiment } from '${url('lib/experiment/schema.ts')}';`,
        `import { runExperiment } from '${url('lib/experiment/run.ts')}';`,
        `const [file, output] = process.argv.slice(2);`,
        `await runExperiment(loadExperiment(file, { output }), {`,
        `  onNote: (line) => process.stdout.write(line + '\\n'),`,
        // at the progress of step 3 the checkpoint of step 2 is written (checkpointEvery 1); SIGKILL: no clean-up
        `  onProgress: (label, done) => { if (label === '${ID}: finetune' && done >= 3) process.kill(process.pid, 'SIGKILL'); },`,
        `});`,
        `process.stdout.write('finished\\n');`,
      ].join('\n'),
    );
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, configFile, out], { cwd: process.cwd(), encoding: 'utf8', timeout: 120_000 });
    expect({ signal: child.signal, stderr: child.stderr.slice(0, 2000) }).toEqual({ signal: 'SIGKILL', stderr: '' });
    expect(child.stdout).toContain(`[2/2] ${ID}: fine-tuning (LoRA rank 4`);
    expect(child.stdout).not.toContain('finished');
    // the pruned model's result is saved, marked as fine-tune under way
    const pending = JSON.parse(readFileSync(join(out, 'settings', `${ID}.json`), 'utf8')) as { result: SettingResult; finetune?: unknown };
    expect(pending.result.finetune).toBeUndefined();
    expect(pending.finetune).toBeDefined();
    expect(existsSync(join(out, 'checkpoints', ID, 'model.safetensors'))).toBe(true);

    const before = tf.memory().numTensors;
    const { r, notes } = await runNoted(load(out));
    expect(tf.memory().numTensors).toBe(before);
    expect([r.computed, r.reused, r.finetuned]).toEqual([[], ['dense', ID], [ID]]);
    expect(notes).toContain(`[2/2] ${ID}: reusing the pruned model's result; fine-tuning again: its fine-tune was interrupted`);
    expect(notes).toContain(`[2/2] ${ID}: the fine-tune continued from its checkpoint at step 2`);
    expect(readResults(out).results.map(stable)).toEqual(first.results.map(stable));
  });

  test('without the finetune section the fine-tune results are dropped and the rest reused', async () => {
    const out = join(tmp, 'out-c');
    const exp = load(out);
    const { finetune: _gone, ...plain } = exp;
    const { r, notes } = await runNoted(plain);
    expect([r.computed, r.reused, r.finetuned]).toEqual([[], ['dense', ID], []]);
    expect(notes).toContain(`[2/2] ${ID}: dropped its fine-tune result (the experiment has no finetune section)`);
    expect(notes).toContain(`[2/2] ${ID}: removed its fine-tune folder (the experiment has no finetune section)`);
    const results = readResults(out);
    expect(results.results[1]!.finetune).toBeUndefined();
    expect(Object.keys(results.results[1]!.timings).sort()).toEqual(['load', 'ppl', 'prune', 'tasks']);
    expect(results.meta['finetune']).toBeUndefined();
    expect(readFileSync(join(out, 'results.md'), 'utf8')).not.toContain('+ LoRA');
    expect(existsSync(join(out, 'finetune'))).toBe(false);
  });

  test('configs/finetune-c4-llama-7m.yaml loads: Wanda 50% and 2:4, LoRA rank 8 on q_proj, v_proj at lr 1e-3, masked merge', () => {
    const shared = writeStandInShared(join(tmp, 'stand-in-shared'), ['c4-llama-7m'], (d) => void writeTinyCheckpoint(d, { numLayers: 1 }));
    const exp = loadExperiment(resolve('configs', 'finetune-c4-llama-7m.yaml'), {}, { shared });
    expect(expandSettings(exp).map((s) => s.id)).toEqual(['wanda-unstructured-0.5', 'wanda-2of4']);
    expect(exp.calibration).toMatchObject({ nsamples: 128, seqlen: 256, seed: 0 });
    expect(exp.eval).toMatchObject({ ppl: ['wikitext2'], seqlen: 256, maxWindows: 100, tasks: [] });
    expect(exp.finetune).toMatchObject({
      data: join(shared, 'data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'),
      rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], lr: 1e-3, maxSteps: 300, seqlen: 256, batchSize: 1, gradAccum: 1, merge: 'masked',
    });
  });

  test('refusals: training on an evaluation file, a fine-tuning window beyond the model context', async () => {
    const wiki = join(tmp, 'data', 'wikitext-2-raw-v1', 'test.jsonl');
    await expect(runExperiment(load(join(tmp, 'out-d'), { 'finetune.data': wiki }))).rejects.toThrow(
      new ConfigError(`finetune.data: ${wiki} is also the wikitext2 evaluation file; training on the evaluation text would make its perplexity meaningless`),
    );
    await expect(runExperiment(load(join(tmp, 'out-d'), { 'finetune.seqlen': 256 }))).rejects.toThrow(
      `finetune.seqlen: 256 exceeds the model context (max_position_embeddings = 128 in ${join(tmp, 'model')})`,
    );
    expect(existsSync(join(tmp, 'out-d'))).toBe(false); // refused before any work
    // results files: only pruned settings carry a fine-tune
    const dense = { ...first.results[0]!, finetune: first.results[1]!.finetune };
    expect(() => validateResults({ ...first, results: [dense] }, 'r.json')).toThrow(
      new DataError("r.json: invalid results: 'dense' is the dense model and has a finetune block (only pruned settings are fine-tuned)"),
    );
  });
});
