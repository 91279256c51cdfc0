/**
 * The llm-prune command line end to end, as a user runs it (`node --import tsx lib/cli.ts ...` in a child
 * process): inspect, generate, prune (magnitude without data, Wanda 2:4 with a small calibration file), eval, and
 * what errors look like (exit code 1, one `error: ...` line naming the path or flag, no stack trace).
 * Each invocation costs a Node start with tsx (a few seconds), so there are only a handful.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { syntheticDocs, writeSyntheticData } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

type Run = CliRun;

/** Run the CLI program from the project root; never rejects (the exit code is part of the result). */
function cli(...args: string[]): Promise<Run> {
  return runCli(args, { env: { ...process.env, LLM_PRUNE_DATA: '' }, timeout: 180_000 });
}

/** The result as jest shows it when an expectation fails: code and the end of stderr. */
function brief(r: Run): { code: number | null; stderr: string } {
  return { code: r.code, stderr: r.stderr.slice(-1500) };
}

let tmp: string;
let tiny: TinyCheckpoint;
let tied: TinyCheckpoint; // tied embeddings stored only as lm_head.weight, as TinyStories-656K
const tinyStories = (): string => tied.dir;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-cli-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 5, hiddenSize: 32, intermediateSize: 64, numLayers: 2, maxPositions: 64 });
  tied = writeTinyCheckpoint(join(tmp, 'tied'), { seed: 6, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, tie: 'lm_head' });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('inspect prints the checkpoint as JSON (a tied tiny checkpoint: its parameters counted here from the tensors)', async () => {
  const r = await cli('inspect', '--model', tinyStories());
  expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  let parameters = 0;
  for (const v of tied.tensors.values()) parameters += v.length; // the tied embedding once (no lm_head entry)
  expect(info).toMatchObject({
    parameters,
    architecture: 'LlamaForCausalLM',
    layers: 2,
    hiddenSize: 32,
    vocabSize: 2048,
    maxPositions: 128,
    tiedEmbeddings: true,
    dtype: 'F32',
  });
});

test('generate --max-new-tokens 5 continues the prompt by 5 tokens', async () => {
  const prompt = 'Once upon a time';
  const r = await cli('generate', '--model', tinyStories(), '--prompt', prompt, '--max-new-tokens', '5');
  expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
  const out = JSON.parse(r.stdout) as { ids: number[]; text: string; newText: string };
  const promptIds = (await HfTokenizer.fromFolder(tinyStories())).encode(prompt, { addSpecialTokens: true });
  expect(out.ids).toHaveLength(promptIds.length + 5);
  expect(out.ids.slice(0, promptIds.length)).toEqual(promptIds);
  expect(typeof out.newText).toBe('string');
  expect(out.newText.length).toBeGreaterThan(0);
});

test('--threads: the wasm thread count is used and said; the same ids with 1 and 2 threads; bad values refused', async () => {
  const args = ['generate', '--model', tinyStories(), '--prompt', 'Once upon a time', '--max-new-tokens', '8', '--backend', 'wasm'];
  const [one, two, bad] = await Promise.all([cli(...args, '--threads', '1'), cli(...args, '--threads', '2'), cli(...args, '--threads', '0')]);
  expect(brief(one)).toEqual({ code: 0, stderr: expect.stringContaining('backend wasm (SIMD, single-threaded)') });
  expect(brief(two)).toEqual({ code: 0, stderr: expect.stringContaining('backend wasm (SIMD, 2 threads)') });
  expect((JSON.parse(two.stdout) as { ids: number[] }).ids).toEqual((JSON.parse(one.stdout) as { ids: number[] }).ids);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("error: --threads: '0' is not a whole number >= 1");
});

describe('prune', () => {
  test('magnitude 50% needs no data and writes a checkpoint folder with report.json', async () => {
    const out = join(tmp, 'magnitude');
    const r = await cli('prune', '--model', tiny.dir, '--method', 'magnitude', '--sparsity', '0.5', '--out', out);
    expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
    const report = JSON.parse(r.stdout) as { method: string; out: string; sparsity: { overall: number } };
    expect(report).toMatchObject({ method: 'magnitude', out });
    // magnitude's `<=` threshold may prune a few ties more than half, never less
    expect(report.sparsity.overall).toBeGreaterThanOrEqual(0.5);
    expect(report.sparsity.overall).toBeLessThan(0.51);
    expect(readdirSync(out).sort()).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'report.json', 'tokenizer.json']));
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'))).toMatchObject({ method: 'magnitude' });
  });

  test('wanda 2:4 with a small calibration JSONL', async () => {
    const calibration = join(tmp, 'calibration.jsonl');
    const docs = syntheticDocs(20, 3).map(({ text }) => ({ text }));
    writeFileSync(calibration, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
    const out = join(tmp, 'wanda');
    const r = await cli(
      'prune', '--model', tiny.dir, '--method', 'wanda', '--structure', '2:4',
      '--calibration', calibration, '--nsamples', '2', '--seqlen', '16', '--out', out,
    );
    expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
    const report = JSON.parse(r.stdout) as { method: string; sparsity: { overall: number }; calibration: { windows: string } };
    expect(report).toMatchObject({ method: 'wanda', calibration: { windows: '2 windows (see report.json)' } });
    expect(report.sparsity.overall).toBe(0.5); // N:M: exactly 2 of every 4
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    const full = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { calibration: { windows: unknown[] } };
    expect(full.calibration.windows).toHaveLength(2);
  });
});

test('prune --format compressed writes compressed-tensors; convert --format dense gives the dense prune back, byte for byte', async () => {
  const packed = join(tmp, 'pruned-compressed');
  const dense = join(tmp, 'pruned-dense');
  const back = join(tmp, 'pruned-back');
  const common = ['--model', tiny.dir, '--method', 'magnitude', '--structure', '2:4'];
  const r1 = await cli('prune', ...common, '--format', 'compressed', '--out', packed);
  expect(brief(r1)).toEqual({ code: 0, stderr: expect.any(String) });
  expect(JSON.parse(r1.stdout)).toMatchObject({ storage: { format: 'compressed', sparseFormat: 'sparse-24-bitmask' } });
  const config = JSON.parse(readFileSync(join(packed, 'config.json'), 'utf8')) as { quantization_config: { sparsity_config: { format: string } } };
  expect(config.quantization_config.sparsity_config.format).toBe('sparse-24-bitmask');
  const r2 = await cli('prune', ...common, '--out', dense);
  expect(brief(r2)).toEqual({ code: 0, stderr: expect.any(String) });
  const r3 = await cli('convert', '--model', packed, '--format', 'dense', '--out', back);
  expect(brief(r3)).toEqual({ code: 0, stderr: expect.any(String) });
  expect(JSON.parse(r3.stdout)).toMatchObject({ out: back, storage: { format: 'dense', linearRatio: 1 } });
  for (const f of ['model.safetensors', 'config.json']) expect({ f, same: readFileSync(join(back, f)).equals(readFileSync(join(dense, f))) }).toEqual({ f, same: true });
});

test('eval --ppl wikitext2 --max-windows 1 --seqlen 64 (and two task items) prints JSON with ppl and writes --out', async () => {
  // A data folder laid out like shared/data with seeded rows (test/helpers/synthetic-text.ts).
  const dataDir = writeSyntheticData(join(tmp, 'data'), { docs: 5, articles: 6, items: 5 });
  const outFile = join(tmp, 'eval.json');
  const r = await cli(
    'eval', '--model', tinyStories(), '--ppl', 'wikitext2', '--max-windows', '1', '--seqlen', '64',
    '--tasks', 'rte', '--limit', '2', '--data-dir', dataDir, '--out', outFile,
  );
  expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
  const result = JSON.parse(r.stdout) as {
    model: string;
    perplexity: { dataset: string; ppl: number; windows: number; tokens: number; seqlen: number; file: string }[];
    zeroShot: { tasks: { task: string; n: number; acc: number }[] };
  };
  expect(result.perplexity).toHaveLength(1);
  expect(result.perplexity[0]).toMatchObject({
    dataset: 'wikitext2',
    windows: 1,
    tokens: 64,
    seqlen: 64,
    file: join(dataDir, 'wikitext-2-raw-v1', 'test.jsonl'),
  });
  expect(Number.isFinite(result.perplexity[0]!.ppl)).toBe(true);
  expect(result.perplexity[0]!.ppl).toBeGreaterThan(1);
  expect(result.zeroShot.tasks).toMatchObject([{ task: 'rte', n: 2 }]);
  expect(JSON.parse(readFileSync(outFile, 'utf8'))).toEqual(result);
  expect(r.stderr).toContain('RTE'); // the results table goes to stderr, stdout stays JSON
});

describe('errors: exit code 1 and one `error: ...` line, no stack trace', () => {
  const noStack = (stderr: string): void => {
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(stderr).not.toContain('internal error');
  };

  test('a missing --model folder names the path', async () => {
    const missing = join(tmp, 'no-such-model');
    const r = await cli('inspect', '--model', missing);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: --model '${missing}': folder does not exist`);
    noStack(r.stderr);
    expect(r.stdout).toBe('');
  });

  test('a truncated safetensors file names the file', async () => {
    const broken = join(tmp, 'broken');
    mkdirSync(broken);
    for (const f of readdirSync(tiny.dir)) copyFileSync(join(tiny.dir, f), join(broken, f));
    const file = join(broken, 'model.safetensors');
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    const r = await cli('inspect', '--model', broken);
    expect(brief(r).code).toBe(1);
    expect(r.stderr).toMatch(/^error: /m);
    expect(r.stderr).toContain(file);
    noStack(r.stderr);
  });

  test('an unknown flag exits non-zero and names it', async () => {
    const r = await cli('inspect', '--model', tiny.dir, '--bogus', '3');
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/error: Unknown argument/);
    expect(r.stderr).toContain('bogus');
    expect(r.stdout).toBe('');
  });

  test('--structure 4:4 names N:M', async () => {
    const r = await cli('prune', '--model', tiny.dir, '--method', 'wanda', '--structure', '4:4', '--out', join(tmp, 'never'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: --structure: N:M needs N < M, got 4:4');
    noStack(r.stderr);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });
});
