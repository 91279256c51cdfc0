/**
 * runExperiment on a tiny random checkpoint with tiny data files (first rows of the shared C4, WikiText-2 and
 * ARC-Easy files, laid out like shared/data): the report files, resume after SIGKILL (same results.json as an
 * uninterrupted run, finished settings not redone), redo on changed inputs, kept checkpoints, refusals.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runExperiment } from '../../lib/experiment/run.js';
import { loadExperiment, type Experiment } from '../../lib/experiment/schema.js';
import type { ResultsFile } from '../../lib/experiment/report.js';
import { packageVersion } from '../../lib/paths.js';
import { getMethod } from '../../lib/prune/registry.js';
import { useTestBackend } from '../helpers/backend.js';
import { readResults, runNoted, withoutTimings, writeExperimentFolder } from '../helpers/experiment-folder.js';

let tmp: string;
let configFile: string;
const BACKEND = process.env['LLM_PRUNE_TEST_BACKEND'] ?? 'wasm';
const IDS = ['dense', 'magnitude-unstructured-0.5', 'wanda-unstructured-0.5', 'wanda-2of4'];

function load(output: string, overrides: Record<string, unknown> = {}): Experiment {
  return loadExperiment(configFile, { output, ...overrides });
}

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'run-test-'));
  configFile = writeExperimentFolder(
    tmp,
    'tiny.json',
    {
      name: 'tiny',
      model: './model',
      backend: BACKEND,
      calibration: { source: './data/c4/calibration.jsonl', nsamples: 4, seqlen: 32, seed: 0, batchSize: 2 },
      prune: [
        { method: ['magnitude', 'wanda'], structure: 'unstructured', sparsity: 0.5 },
        { method: 'wanda', structure: '2:4' },
      ],
      dense: true,
      eval: { ppl: ['wikitext2'], seqlen: 64, maxWindows: 4, tasks: ['arc_easy'], limit: 10, dataDir: './data' },
      output: './unused',
      keepCheckpoints: false,
    },
    { c4: ['calibration.jsonl', 200], tasks: true },
  );
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('runExperiment', () => {
  let uninterrupted: ResultsFile;

  test('an uninterrupted run: every setting measured, results.json/md/csv and the SVG charts written, no leftovers', async () => {
    const out = join(tmp, 'out-a');
    const before = tf.memory().numTensors;
    const { r, notes } = await runNoted(load(out));
    const after = tf.memory().numTensors;
    expect(r.computed).toEqual(IDS);
    expect(r.reused).toEqual([]);
    expect(readdirSync(out).sort()).toEqual(
      ['block-sparsity.svg', 'experiment.json', 'ppl-vs-sparsity-wikitext2.svg', 'results.csv', 'results.json', 'results.md', 'settings'].sort(),
    );
    expect(readdirSync(join(out, 'settings')).sort()).toEqual(IDS.map((id) => `${id}.json`).sort());
    expect(notes).toContain('[3/4] wanda-unstructured-0.5: pruning');

    uninterrupted = readResults(out);
    expect(r.results).toEqual(uninterrupted);
    expect(uninterrupted.title).toBe('tiny');
    expect(uninterrupted.results.map((x) => x.id)).toEqual(IDS);
    const [dense, mag, wanda, nm] = uninterrupted.results;
    expect(dense).toMatchObject({ method: 'dense', structure: null, sparsity: 0, actualSparsity: 0, blockSparsity: [] });
    // magnitude zeroes every weight <= the k-th smallest magnitude (the reference's `<=`): one more than half of
    // each of a block's 7 matrices (40,960 weights in all)
    const magZeros = (20480 + 7) / 40960;
    expect(mag).toMatchObject({ method: 'magnitude', structure: 'unstructured', sparsity: 0.5, actualSparsity: magZeros, blockSparsity: [magZeros, magZeros] });
    expect(wanda).toMatchObject({ method: 'wanda', structure: 'unstructured', actualSparsity: 0.5, blockSparsity: [0.5, 0.5] });
    expect(nm).toMatchObject({ method: 'wanda', structure: '2:4', sparsity: 0.5, actualSparsity: 0.5, blockSparsity: [0.5, 0.5] });
    for (const x of uninterrupted.results) {
      expect(x.perplexity['wikitext2']).toMatchObject({ windows: 4, tokens: 256 });
      expect(x.perplexity['wikitext2']!.ppl).toBeGreaterThan(1);
      expect(x.tasks['arc_easy']!.n).toBe(10);
      expect(x.tasks['arc_easy']!.acc_norm).toBeDefined();
      expect(x.mean).toBe(x.tasks['arc_easy']!.acc);
      expect(Object.keys(x.timings).sort()).toEqual(x.id === 'dense' ? ['load', 'ppl', 'tasks'] : ['load', 'ppl', 'prune', 'tasks']);
    }
    // pruning changes the model: perplexities differ from the dense one
    expect(mag!.perplexity['wikitext2']!.ppl).not.toBe(dense!.perplexity['wikitext2']!.ppl);
    expect(wanda!.perplexity['wikitext2']!.ppl).not.toBe(mag!.perplexity['wikitext2']!.ppl);
    expect(uninterrupted.meta).toMatchObject({ model: join(tmp, 'model'), backend: BACKEND });

    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toMatch(/^# tiny\n/);
    expect(md).toContain(`| wanda-2of4 | 50.00 | ${nm!.perplexity['wikitext2']!.ppl!.toFixed(2)} |`);
    expect(md).toContain('![WikiText-2 perplexity vs sparsity](ppl-vs-sparsity-wikitext2.svg)');
    const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(5);
    expect(csv[0]).toMatch(/^setting,method,structure,sparsity,use_variant,actual_sparsity,wikitext2_ppl,/);
    for (const svg of ['block-sparsity.svg', 'ppl-vs-sparsity-wikitext2.svg']) {
      expect(readFileSync(join(out, svg), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>\s*$/);
    }
    // every setting is at 50%: the two methods' points are drawn 8 px apart instead of on top of each other
    const pointX = new Map<string, Set<number>>();
    const svg = readFileSync(join(out, 'ppl-vs-sparsity-wikitext2.svg'), 'utf8');
    for (const m of svg.matchAll(/aria-label="[^"]*Method: (\w+)[^"]*" role="graphics-symbol" aria-roledescription="point" transform="translate\(([\d.]+),/g)) {
      pointX.set(m[1]!, (pointX.get(m[1]!) ?? new Set()).add(Number(m[2])));
    }
    expect([...pointX.keys()].sort()).toEqual(['Magnitude', 'Wanda']);
    const [xm, xw] = [[...pointX.get('Magnitude')!], [...pointX.get('Wanda')!]];
    expect(xm).toHaveLength(1);
    expect(xw).toHaveLength(1);
    expect(Math.abs(xm[0]! - xw[0]!)).toBeCloseTo(8, 6);
    expect(after).toBe(before); // every model loaded, pruned and evaluated was freed
  });

  test('run again on a finished folder: every setting reused, results.json byte for byte the same', async () => {
    const out = join(tmp, 'out-a');
    const text = readFileSync(join(out, 'results.json'), 'utf8');
    const { r, notes } = await runNoted(load(out));
    expect(r.computed).toEqual([]);
    expect(r.reused).toEqual(IDS);
    expect(notes).toContain('[1/4] dense: reused (finished earlier: settings/dense.json)');
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toBe(text);
  });

  test('output.format compressed: checkpoints written as compressed-tensors, the same results', async () => {
    const out = join(tmp, 'out-compressed');
    const exp = load(out, { 'output.format': 'compressed', dense: false, keepCheckpoints: true, prune: { method: 'wanda', structure: '2:4' } });
    expect(exp.outputFormat).toBe('compressed');
    const { r } = await runNoted(exp);
    expect(r.computed).toEqual(['wanda-2of4']);
    const config = JSON.parse(readFileSync(join(out, 'checkpoints', 'wanda-2of4', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config['quantization_config']).toMatchObject({ quant_method: 'compressed-tensors', sparsity_config: { format: 'sparse-24-bitmask' } });
    const { timings: _t1, ...got } = readResults(out).results[0]!;
    const { timings: _t2, ...want } = uninterrupted.results.find((x) => x.id === 'wanda-2of4')!;
    expect(got).toEqual(want);
  });

  test('a run SIGKILLed while pruning its third setting, started again, gives the same results.json and redoes only the unfinished', async () => {
    const out = join(tmp, 'out-b');
    const script = join(tmp, 'child.mts'); // .mts: an ES module wherever it lies (top-level await)
    const url = (p: string): string => pathToFileURL(resolve(p)).href;
    writeFileSync(
      script,
      [
        `import { loadExperiment } from '${url('lib/experiment/schema.ts')}';`,
        `import { runExperiment } from '${url('lib/experiment/run.ts')}';`,
        `const [file, output, killAt] = process.argv.slice(2);`,
        `await runExperiment(loadExperiment(file, { output }), {`,
        `  onNote: (line) => process.stdout.write(line + '\\n'),`,
        // After the first block of `killAt` is written: SIGKILL, so no finally and no clean-up runs.
        `  onProgress: (label, done) => { if (label === killAt + ': prune' && done >= 1) process.kill(process.pid, 'SIGKILL'); },`,
        `});`,
        `process.stdout.write('finished\\n');`,
      ].join('\n'),
    );
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, configFile, out, 'wanda-unstructured-0.5'], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect({ signal: child.signal, stderr: child.stderr.slice(0, 2000) }).toEqual({ signal: 'SIGKILL', stderr: '' });
    expect(child.stdout).toContain('[2/4] magnitude-unstructured-0.5: done in');
    expect(child.stdout).toContain('[3/4] wanda-unstructured-0.5: pruning');
    expect(child.stdout).not.toContain('finished');
    // killed mid-setting: two settings saved, the third half-written, the lock of the dead process left behind
    expect(readdirSync(join(out, 'settings')).sort()).toEqual(['dense.json', 'magnitude-unstructured-0.5.json']);
    // the resume state, and the locks of the dead process (taken over by the next run)
    expect(readdirSync(join(out, 'checkpoints')).sort()).toEqual(['wanda-unstructured-0.5.lock', 'wanda-unstructured-0.5.partial']);
    expect(JSON.parse(readFileSync(join(out, '.run.lock'), 'utf8'))).toMatchObject({ pid: child.pid, host: hostname(), command: 'llm-prune run' });
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const mtimes = ['dense', 'magnitude-unstructured-0.5'].map((id) => statSync(join(out, 'settings', `${id}.json`)).mtimeMs);

    const before = tf.memory().numTensors;
    const { r, notes } = await runNoted(load(out));
    const after = tf.memory().numTensors;
    expect(r.reused).toEqual(['dense', 'magnitude-unstructured-0.5']);
    expect(r.computed).toEqual(['wanda-unstructured-0.5', 'wanda-2of4']);
    // the interrupted pruning continues at its first unfinished block (lib/prune/resume.ts)
    expect(notes).toContain(`wanda-unstructured-0.5: resuming ${join(out, 'checkpoints', 'wanda-unstructured-0.5')}.partial at block 2 of 2`);
    expect(notes).toContain('[2/4] magnitude-unstructured-0.5: reused (finished earlier: settings/magnitude-unstructured-0.5.json)');
    expect(notes).toContain('[3/4] wanda-unstructured-0.5: pruning');
    expect(['dense', 'magnitude-unstructured-0.5'].map((id) => statSync(join(out, 'settings', `${id}.json`)).mtimeMs)).toEqual(mtimes);
    expect(existsSync(join(out, 'checkpoints'))).toBe(false);
    expect(existsSync(join(out, '.run.lock'))).toBe(false);

    expect(withoutTimings(readResults(out))).toEqual(withoutTimings(uninterrupted));
    // the timings are there, in their own field
    expect(readResults(out).results.every((x) => (x.timings['ppl'] ?? 0) > 0)).toBe(true);
    expect(after).toBe(before);
  });

  test('changed inputs redo exactly the settings they affect; a kept checkpoint that is missing redoes its setting', async () => {
    const out = join(tmp, 'out-a');
    // magnitude uses no calibration data: only the wanda settings depend on calibration.nsamples
    const { r, notes } = await runNoted(load(out, { 'calibration.nsamples': 6, keepCheckpoints: true }));
    expect(r.reused).toEqual(['dense']);
    expect(r.computed).toEqual(['magnitude-unstructured-0.5', 'wanda-unstructured-0.5', 'wanda-2of4']);
    expect(notes).toContain(
      `[2/4] magnitude-unstructured-0.5: redoing: finished earlier but its kept checkpoint ${join(out, 'checkpoints', 'magnitude-unstructured-0.5')} is missing`,
    );
    expect(notes).toContain('[3/4] wanda-unstructured-0.5: redoing: the stored result was made from different inputs (changed: calibration.nsamples)');
    for (const id of IDS.slice(1)) {
      expect(readdirSync(join(out, 'checkpoints', id))).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'report.json']));
    }
    const now = readResults(out).results;
    expect(now[1]!.perplexity).toEqual(uninterrupted.results[1]!.perplexity); // magnitude: same inputs, same numbers
    expect(now[2]!.perplexity).not.toEqual(uninterrupted.results[2]!.perplexity); // wanda: other calibration windows

    // Back to keepCheckpoints false: results reused, the kept checkpoints removed.
    const again = await runNoted(load(out, { 'calibration.nsamples': 6 }));
    expect(again.r.computed).toEqual([]);
    expect(again.notes).toContain('[2/4] magnitude-unstructured-0.5: removed its checkpoint (keepCheckpoints is false)');
    expect(existsSync(join(out, 'checkpoints'))).toBe(false);
  });

  test('a result stored by another package or method version is redone; reuseAnyVersion keeps it with a warning', async () => {
    const out = join(tmp, 'out-v');
    cpSync(join(tmp, 'out-a', 'settings'), join(out, 'settings'), { recursive: true });
    const restamp = (id: string, versions: unknown): void => {
      const file = join(out, 'settings', `${id}.json`);
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), versions }));
    };
    const stored = JSON.parse(readFileSync(join(out, 'settings', 'wanda-2of4.json'), 'utf8')) as { versions: { package: string; methods: unknown } };
    expect(stored.versions).toEqual({ package: packageVersion(), methods: { wanda: getMethod('wanda').version } });
    restamp('magnitude-unstructured-0.5', { package: '0.0.1', methods: { magnitude: getMethod('magnitude').version } });
    restamp('wanda-2of4', { package: packageVersion(), methods: { wanda: getMethod('wanda').version + 1 } });
    const kept = await runNoted(load(out, { 'calibration.nsamples': 6, reuseAnyVersion: true }));
    expect(kept.r.computed).toEqual([]);
    expect(kept.notes).toContain(
      `[2/4] magnitude-unstructured-0.5: warning: reusing a result computed by another version (package 0.0.1 -> ${packageVersion()}) as reuseAnyVersion asks; this version may compute other numbers`,
    );
    const redone = await runNoted(load(out, { 'calibration.nsamples': 6 }));
    expect(redone.r.computed).toEqual(['magnitude-unstructured-0.5', 'wanda-2of4']);
    expect(redone.r.reused).toEqual(['dense', 'wanda-unstructured-0.5']);
    expect(redone.notes).toContain(
      `[4/4] wanda-2of4: redoing: the stored result was computed by another version (wanda ${getMethod('wanda').version + 1} -> ${getMethod('wanda').version}); --reuse-any-version (reuseAnyVersion: true) keeps it`,
    );
    const again = JSON.parse(readFileSync(join(out, 'settings', 'magnitude-unstructured-0.5.json'), 'utf8')) as { versions: unknown };
    expect(again.versions).toEqual({ package: packageVersion(), methods: { magnitude: getMethod('magnitude').version } });
  });

  test('refusals: a folder in use by a live run, a seqlen beyond the model context', async () => {
    const exp = load(join(tmp, 'out-c'));
    mkdirSync(exp.output, { recursive: true });
    writeFileSync(join(exp.output, '.run.lock'), `${process.pid} ${hostname()}\n`); // the format of earlier versions
    await expect(runExperiment(exp)).rejects.toThrow(
      `${exp.output} is being written by llm-prune run (process ${process.pid} on ${hostname()}, started ?); wait for it to finish, or pass --force-unlock if that process is gone (lock file ${join(exp.output, '.run.lock')})`,
    );
    expect(readdirSync(exp.output)).toEqual(['.run.lock']); // nothing touched
    await expect(runExperiment(load(join(tmp, 'out-d'), { 'eval.seqlen': 256 }))).rejects.toThrow(
      `eval.seqlen: 256 exceeds the model context (max_position_embeddings = 128 in ${join(tmp, 'model')})`,
    );
  });

  test("pruning errors name the experiment file's keys, not the CLI's flags", async () => {
    const refused = async (prune: unknown[]): Promise<string> => {
      const e = await runExperiment(load(join(tmp, `out-keys-${Math.random().toString(36).slice(2)}`), { dense: false, prune })).then(
        () => null,
        (x: unknown) => x as Error,
      );
      expect(e).toBeInstanceOf(Error);
      expect(e!.message).not.toMatch(/--[a-z]/);
      return e!.message;
    };
    expect(await refused([{ method: 'wanda', sparsity: 0.5, targets: ['model.layers.99'] }])).toContain("prune.targets 'model.layers.99' matches no linear layer");
    expect(await refused([{ method: 'wanda', structure: '1:3' }])).toContain('prune.structure 1:3: q_proj has 64 inputs, not a multiple of 3');
  });
});
