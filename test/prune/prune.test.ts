/**
 * prune() end to end: output folders (dtype, shards, config.json, tokenizer files, report.json) on tiny random
 * checkpoints and TinyStories-656K, staging (a killed run, an in-process failure, an existing --out). The small real
 * runs on shared/models/c4-llama-7m that reload and generate are in prune.acceptance.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { cliFlag, ConfigError } from '../../lib/errors.js';
import { generate } from '../../lib/generate.js';
import { Checkpoint } from '../../lib/model/checkpoint.js';
import { linearTensorName } from '../../lib/model/architecture.js';
import { loadModel } from '../../lib/model/load.js';
import { kernels, type Kernels } from '../../lib/model/backend.js';
import type { DType } from '../../lib/model/safetensors.js';
import { LINEAR_NAMES } from '../../lib/model/architecture.js';
import type { MethodName } from '../../lib/prune/registry.js';
import { parseStructure, prune, type PruneConfig, type PruneReport } from '../../lib/prune/prune.js';
import { pruneOptionName } from '../../lib/experiment/schema.js';
import { useTestBackend } from '../helpers/backend.js';
import { readSafetensorsFolder } from '../helpers/reference-llama.js';
import { jsonl, syntheticDocs } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint, type TinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let c4: string; // C4 train documents (calibration source)

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-e2e-'));
  c4 = join(tmp, 'c4-train.jsonl'); // seeded C4-like documents
  writeFileSync(c4, jsonl(syntheticDocs(200, 2)));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
const REPORT_FIELDS = [
  'backend',
  'calibration',
  'dtype',
  'method',
  'model',
  'out',
  'peakRssMB',
  'plan',
  'resumedAt',
  'sparsity',
  'sparsityTarget',
  'storage',
  'structure',
  'times',
  'useVariant',
];
const TIME_FIELDS = ['calibrationForward', 'calibrationSampling', 'load', 'prune', 'reforward', 'statistics', 'total', 'write'];

let counter = 0;
function tinyModel(options: TinyCheckpointOptions): TinyCheckpoint {
  return writeTinyCheckpoint(join(tmp, `in-${counter++}`), { seed: 3, ...options });
}

/** Tiny-model calibration: 4 C4 windows of 32 tokens (the TinyStories tokenizer), seed 0. */
const SMALL = { calibration: '', nsamples: 4, seqlen: 32, seed: 0 };

function pruneTiny(model: TinyCheckpoint, extra: Partial<PruneConfig> = {}): Promise<PruneReport> {
  return prune({ model: model.dir, out: join(tmp, `out-${counter++}`), method: 'wanda', sparsity: 0.5, ...SMALL, calibration: c4, ...extra });
}

/** Stored dtype of every tensor of a checkpoint folder (header only). */
function storedDtypes(dir: string): Set<string> {
  const c = Checkpoint.open(dir);
  try {
    return new Set(c.files.flatMap((f) => [...f.entries.values()].map((e) => e.dtype)));
  } finally {
    c.close();
  }
}

/**
 * Everything a finished output folder must be: loadable, report.json = the returned report with every field,
 * config.json = the input's with torch_dtype set, tokenizer files copied, each linear's zeros as reported, and every
 * other tensor as stored in the input (tests only write to the input's dtype or a wider one).
 */
async function expectCompleteOutput(
  report: PruneReport,
  input: TinyCheckpoint,
  dtype: DType,
  stale: string[] = [], // `.partial-*` folders of killed runs known to lie beside the output
): Promise<Map<string, Float32Array>> {
  const out = report.out;
  expect(existsSync(out)).toBe(true);
  expect(readdirSync(dirname(out)).filter((f) => f.startsWith(`${basename(out)}.`))).toEqual(stale); // no .partial-*/.old-*
  // report.json
  const onDisk = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as PruneReport;
  expect(onDisk).toEqual(JSON.parse(JSON.stringify(report)));
  expect(Object.keys(onDisk).sort()).toEqual(REPORT_FIELDS);
  expect(Object.keys(onDisk.times).sort()).toEqual(TIME_FIELDS);
  expect(onDisk.model).toBe(resolve(input.dir));
  expect(onDisk.dtype).toBe(dtype);
  expect(onDisk.backend).toBe(tf.getBackend());
  expect(onDisk.peakRssMB).toBeGreaterThan(10);
  for (const f of TIME_FIELDS) expect(onDisk.times[f as keyof PruneReport['times']]).toBeGreaterThanOrEqual(0);
  // config.json and tokenizer files
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  expect(config).toEqual({ ...input.raw, torch_dtype: TORCH_DTYPE[dtype] });
  for (const f of TOKENIZER_FILES) expect({ f, same: readFileSync(join(out, f)).equals(readFileSync(join(input.dir, f))) }).toEqual({ f, same: true });
  // weights: stored dtype, zeros as reported, the rest unchanged
  expect(storedDtypes(out)).toEqual(new Set([dtype]));
  const stored = readSafetensorsFolder(out); // an independent reader
  const layers = input.config.numLayers;
  expect(report.sparsity.blocks.map((b) => b.layer)).toEqual([...Array(layers).keys()]);
  let zeros = 0;
  let params = 0;
  for (const b of report.sparsity.blocks) {
    for (const n of LINEAR_NAMES) {
      const w = stored.get(linearTensorName(b.layer, n))!;
      const z = w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
      expect({ layer: b.layer, n, zeros: z }).toEqual({ layer: b.layer, n, zeros: b.matrices[n] * w.length });
      zeros += z;
      params += w.length;
    }
  }
  expect(report.sparsity.overall).toBe(zeros / params);
  for (const [name, values] of input.tensors) {
    if (LINEAR_NAMES.some((n) => name.endsWith(`.${n}.weight`))) continue;
    expect({ name, same: sameValues(stored.get(name), values) }).toEqual({ name, same: true }); // exact: same or wider dtype
  }
  // the library loads it
  const m = await loadModel(out);
  try {
    expect(m.model.config.numLayers).toBe(layers);
    const w = tf.tidy(() => tf.transpose(m.model.blocks[0]!.linears.q_proj.wT!).dataSync() as Float32Array);
    expect(sameValues(w, stored.get(linearTensorName(0, 'q_proj')))).toBe(true);
  } finally {
    m.dispose();
  }
  return stored;
}

/** Bit-identical float32 arrays (jest's toEqual is very slow on large typed arrays). */
function sameValues(a: Float32Array | undefined, b: Float32Array | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('prune() output folder (tiny checkpoints)', () => {
  test('F16 in -> F16 out (wanda 50%): report, config, tokenizer, exact zeros, other tensors untouched', async () => {
    const input = tinyModel({ dtype: 'F16' });
    const before = tf.memory().numTensors;
    const report = await pruneTiny(input);
    expect(tf.memory().numTensors).toBe(before);
    expect(report).toMatchObject({ method: 'wanda', structure: 'unstructured', sparsityTarget: 0.5, useVariant: false });
    expect(report.calibration).toMatchObject({ file: resolve(c4), nsamples: 4, seqlen: 32, seed: 0 });
    expect(report.calibration!.windows).toHaveLength(4);
    expect(report.calibration!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(report.sparsity.overall).toBe(0.5); // floor(in / 2) per row, every in even
    const stored = await expectCompleteOutput(report, input, 'F16');
    // Wanda does not update weights: every kept linear weight is the input's
    for (let l = 0; l < 2; l++) {
      for (const n of LINEAR_NAMES) {
        const name = linearTensorName(l, n);
        const w = stored.get(name)!;
        const orig = input.tensors.get(name)!;
        expect(w.reduce((a, v, i) => a + (v !== 0 && v !== orig[i] ? 1 : 0), 0)).toBe(0);
      }
    }
  });

  test('BF16 in -> BF16 out (sparsegpt 2:4, batch size 2), and the same input with dtype F32 -> F32 out', async () => {
    const input = tinyModel({ dtype: 'BF16', numKvHeads: 2 });
    const nm = await pruneTiny(input, { method: 'sparsegpt', structure: parseStructure('2:4'), batchSize: 2 });
    expect(nm.structure).toBe('2:4');
    expect(nm.sparsityTarget).toBe(0.5); // N:M fixes it
    await expectCompleteOutput(nm, input, 'BF16');
    const f32 = await pruneTiny(input, { method: 'magnitude', dtype: 'F32' });
    expect(f32.calibration).toBeNull(); // magnitude uses no calibration data
    expect(f32.times.calibrationForward).toBe(0);
    const stored = await expectCompleteOutput(f32, input, 'F32');
    // magnitude 50%: one threshold per matrix, `<=`, so at least half of every matrix
    for (const b of f32.sparsity.blocks) for (const n of LINEAR_NAMES) expect(b.matrices[n]).toBeGreaterThanOrEqual(0.5);
    // BF16 values widen to F32 exactly
    expect(sameValues(stored.get('model.embed_tokens.weight'), input.tensors.get('model.embed_tokens.weight'))).toBe(true);
  });

  test('sharded input: read across shards; output sharded with maxShardBytes, one file by default (HF 5 GB shards)', async () => {
    const input = tinyModel({ maxShardBytes: 200_000 });
    expect(input.files.length).toBeGreaterThan(1);
    const sharded = await pruneTiny(input, { maxShardBytes: 150_000 });
    await expectCompleteOutput(sharded, input, 'F32');
    const index = JSON.parse(readFileSync(join(sharded.out, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    const shards = [...new Set(Object.values(index.weight_map))];
    expect(shards.length).toBeGreaterThan(2);
    for (const s of shards) expect(s).toMatch(/^model-\d{5}-of-\d{5}\.safetensors$/);
    expect(existsSync(join(sharded.out, 'model.safetensors'))).toBe(false);
    const single = await pruneTiny(input);
    await expectCompleteOutput(single, input, 'F32');
    expect(readdirSync(single.out).filter((f) => f.endsWith('.safetensors'))).toEqual(['model.safetensors']);
    expect(existsSync(join(single.out, 'model.safetensors.index.json'))).toBe(false);
    // the same pruned weights either way
    const a = readSafetensorsFolder(sharded.out);
    const b = readSafetensorsFolder(single.out);
    for (const [name, v] of a) expect({ name, same: sameValues(b.get(name), v) }).toEqual({ name, same: true });
  });
});

test('tied embeddings stored only as lm_head.weight (as TinyStories-656K): the output stores them once and reloads', async () => {
  const dir = writeTinyCheckpoint(join(tmp, 'tied-input'), { seed: 12, tie: 'lm_head', numHeads: 4, numKvHeads: 2 }).dir;
  const report = await prune({ model: dir, out: join(tmp, 'tinystories'), method: 'wanda', sparsity: 0.5, ...SMALL, calibration: c4 });
  expect(report.sparsity.overall).toBe(0.5);
  expect(report.dtype).toBe('F32');
  const stored = readSafetensorsFolder(report.out);
  const input = readSafetensorsFolder(dir);
  expect(stored.has('lm_head.weight')).toBe(false);
  expect(sameValues(stored.get('model.embed_tokens.weight'), input.get('lm_head.weight'))).toBe(true);
  const m = await loadModel(report.out);
  try {
    expect(m.model.config.tieWordEmbeddings).toBe(true);
    expect((await generate(m, 'Once upon a time', 5)).ids).toHaveLength(m.tokenizer.encode('Once upon a time').length + 5);
  } finally {
    m.dispose();
  }
});

describe('staging: the output appears only when complete', () => {
  const outsOf = (out: string): string[] => readdirSync(dirname(out)).filter((f) => f === basename(out) || f.startsWith(`${basename(out)}.`));

  test('--no-resumable: a run SIGKILLed after block 1 leaves only its .partial-<pid>; a second run completes and removes it', async () => {
    const input = tinyModel({ numLayers: 3 });
    const out = join(tmp, 'killed-nr', 'pruned');
    mkdirSync(dirname(out));
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', join('test', 'fixtures', 'prune-child.ts'), JSON.stringify({ model: input.dir, out, calibration: c4, killAfterLayer: 1, resumable: false })],
      { cwd: process.cwd(), encoding: 'utf8', timeout: 120_000 },
    );
    expect({ signal: child.signal, stdout: child.stdout, stderr: child.stderr.slice(0, 2000) }).toMatchObject({
      signal: 'SIGKILL',
      stdout: 'block 0\nblock 1\n',
    });
    expect(existsSync(out)).toBe(false);
    // the killed run's output lock stays until a later run takes it over (lib/output-lock.ts)
    expect(outsOf(out).sort()).toEqual(['pruned.lock', `pruned.partial-${child.pid}`]);
    expect(readdirSync(`${out}.partial-${child.pid}`)).toContain('model.safetensors'); // it was writing
    // a second run completes, and removes the stale partial folder of the dead process (lib/interrupt.ts)
    const notes: string[] = [];
    const report = await prune({ model: input.dir, out, method: 'wanda', sparsity: 0.5, ...SMALL, calibration: c4, resumable: false, onNote: (l) => notes.push(l) });
    await expectCompleteOutput(report, input, 'F32', []);
    expect(notes).toEqual([
      expect.stringMatching(/^took over \S*pruned\.lock from .*: its process is gone$/),
      `removed pruned.partial-${child.pid} (left by interrupted runs whose process is gone)`,
    ]);
    expect(outsOf(out)).toEqual(['pruned']); // the lock released
  }, 240_000);

  test('a run SIGKILLed after block 1 leaves no output folder (only its resumable .partial); a second run completes', async () => {
    const input = tinyModel({ numLayers: 3 });
    const out = join(tmp, 'killed', 'pruned');
    mkdirSync(dirname(out));
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', join('test', 'fixtures', 'prune-child.ts'), JSON.stringify({ model: input.dir, out, calibration: c4, killAfterLayer: 1 })],
      { cwd: process.cwd(), encoding: 'utf8', timeout: 120_000 },
    );
    expect({ signal: child.signal, stdout: child.stdout, stderr: child.stderr.slice(0, 2000) }).toMatchObject({
      signal: 'SIGKILL',
      stdout: 'block 0\nblock 1\n',
    });
    expect(existsSync(out)).toBe(false);
    expect(outsOf(out).sort()).toEqual(['pruned.lock', 'pruned.partial']); // the lock: taken over by the next run
    expect(readdirSync(`${out}.partial`).sort()).toEqual(['model.safetensors', 'resume']); // it was writing; test/prune/resume.test.ts resumes such runs
    // a second run without --resume starts over in the same staging folder and completes
    const report = await prune({ model: input.dir, out, method: 'wanda', sparsity: 0.5, ...SMALL, calibration: c4 });
    await expectCompleteOutput(report, input, 'F32', []);
    // the child, not killed, writes the same checkpoint (same windows, same masks)
    const out2 = join(tmp, 'killed', 'pruned-child');
    const done = spawnSync(process.execPath, ['--import', 'tsx', join('test', 'fixtures', 'prune-child.ts'), JSON.stringify({ model: input.dir, out: out2, calibration: c4 })], {
      cwd: process.cwd(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect({ status: done.status, stdout: done.stdout, stderr: done.stderr.slice(0, 2000) }).toMatchObject({
      status: 0,
      stdout: 'block 0\nblock 1\nblock 2\ndone\n',
    });
    expect(readFileSync(join(out2, 'model.safetensors')).equals(readFileSync(join(out, 'model.safetensors')))).toBe(true);
  });

  test('an in-process failure (a plan refused up front: nothing; a progress callback throwing: a resumable .partial) leaves no output; --resume continues', async () => {
    const input = tinyModel({});
    const out = join(tmp, 'failed', 'pruned');
    const before = tf.memory().numTensors;
    // the Wanda variant with SparseGPT is refused before any folder is made
    await expect(pruneTiny(input, { out, method: 'sparsegpt', useVariant: true })).rejects.toThrow(
      /^useVariant: applies to wanda only, not sparsegpt/,
    );
    expect(existsSync(dirname(out)) ? outsOf(out) : []).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
    const progress: number[] = [];
    await expect(
      pruneTiny(input, {
        out,
        onProgress: (p) => {
          progress.push(p.layer);
          if (p.layer === 0) throw new Error('interrupted after block 0');
        },
      }),
    ).rejects.toThrow('interrupted after block 0');
    expect(progress).toEqual([0]);
    expect(outsOf(out)).toEqual(['pruned.partial']);
    expect(tf.memory().numTensors).toBe(before);
    // ... and continues from block 1
    const resumed = await pruneTiny(input, { out, resume: true });
    expect(resumed.resumedAt).toEqual([1]);
    await expectCompleteOutput(resumed, input, 'F32');
    expect(tf.memory().numTensors).toBe(before);
  });

  test('out existing and not empty: ConfigError naming out, nothing touched; overwrite replaces it; empty is fine', async () => {
    const input = tinyModel({});
    const out = join(tmp, 'existing');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'user data');
    const run = (overwrite?: boolean): Promise<PruneReport> =>
      pruneTiny(input, { out, method: 'magnitude', ...(overwrite !== undefined ? { overwrite } : {}) });
    await expect(run()).rejects.toThrow(ConfigError);
    await expect(run(false)).rejects.toThrow(new ConfigError(`out ${out}: folder exists and is not empty (pass overwrite to replace it)`));
    // refused before any data is read: a missing calibration file is not even looked at
    await expect(pruneTiny(input, { out, calibration: join(tmp, 'no-such-file.jsonl') })).rejects.toThrow(/^out .*folder exists/);
    expect(readdirSync(out)).toEqual(['keep.txt']);
    expect(outsOf(out)).toEqual(['existing']);
    const report = await run(true);
    expect(readdirSync(out)).not.toContain('keep.txt');
    await expectCompleteOutput(report, input, 'F32');
    const empty = join(tmp, 'empty-out');
    mkdirSync(empty);
    await expectCompleteOutput(await pruneTiny(input, { out: empty, method: 'magnitude' }), input, 'F32');
  });
});

test('bad pruning options are refused before the model or the data are read', async () => {
  const cfg = { model: join(tmp, 'no-such-model'), out: join(tmp, 'never'), calibration: join(tmp, 'no-such-file.jsonl') };
  await expect(prune({ ...cfg, method: 'wanda', sparsity: 1.5 })).rejects.toThrow('sparsity: 1.5 is not a number in [0, 1)');
  await expect(prune({ ...cfg, method: 'wanda', sparsity: 0.6, structure: parseStructure('2:4') })).rejects.toThrow(
    'structure 2:4 fixes sparsity at 0.5; got sparsity 0.6',
  );
  await expect(prune({ ...cfg, method: 'wanda', sparsity: 0.5, structure: parseStructure('4:8'), useVariant: true })).rejects.toThrow(
    ConfigError,
  );
  await expect(prune({ ...cfg, method: 'obs' as MethodName, sparsity: 0.5 })).rejects.toThrow(
    "method: 'obs' is not one of magnitude, wanda, sparsegpt, ria",
  );
  expect(existsSync(cfg.out)).toBe(false);
});

describe("messages name the caller's options: the library's names by default, the CLI's flags or an experiment file's key paths when given", () => {
  const asCli = { optionName: cliFlag };
  const asExperiment = { optionName: pruneOptionName('wanda-unstructured-0.5') };
  // label, options, library, CLI, experiment file (a method's own options keep their flag names by default)
  const cases: [string, (m: TinyCheckpoint) => Partial<PruneConfig>, string, string, string][] = [
    ['seqlen beyond the model context', () => ({ seqlen: 99999 }), 'seqlen 99999: must be an integer in 1..', '--seqlen 99999: must be an integer in 1..', 'calibration.seqlen 99999: must be an integer in 1..'],
    ['a targets pattern that matches nothing', () => ({ targets: ['model.layers.99'] }), "targets 'model.layers.99' matches no linear layer", "--targets 'model.layers.99' matches no linear layer", "prune.targets 'model.layers.99' matches no linear layer"],
    ['no calibration file', () => ({ calibration: '' }), 'calibration: method wanda needs a calibration data file', '--calibration: --method wanda needs a calibration data file', 'calibration.source: prune.method wanda needs a calibration data file'],
    ['batch size 0', () => ({ batchSize: 0 }), 'batchSize must be a positive integer, got 0', '--batch-size must be a positive integer, got 0', 'calibration.batchSize must be a positive integer, got 0'],
    ['nsamples 0', () => ({ nsamples: 0 }), 'nsamples must be a positive integer, got 0', '--nsamples must be a positive integer, got 0', 'calibration.nsamples must be a positive integer, got 0'],
    ['an unknown method', () => ({ method: 'obs' as MethodName }), "method: 'obs' is not one of", "--method: 'obs' is not one of", "prune.method: 'obs' is not one of"],
    ['the variant of another method', () => ({ method: 'sparsegpt', useVariant: true }), 'useVariant: applies to wanda only', '--use-variant: applies to wanda only', 'prune.useVariant: applies to wanda only'],
    ['a method option that does not fit the structure', () => ({ method: 'ria', methodOptions: { permute: true } }), 'ria: --permute applies to N:M structures only', 'ria: --permute applies to N:M structures only', 'ria: prune.ria.permute applies to N:M structures only'],
    ['N:M whose M does not divide the inputs', () => ({ sparsity: 1 / 3, structure: parseStructure('1:3') }), 'structure 1:3: q_proj has 64 inputs, not a multiple of 3', '--structure 1:3: q_proj has 64 inputs, not a multiple of 3', 'prune.structure 1:3: q_proj has 64 inputs, not a multiple of 3'],
  ];
  /** The message of the ConfigError that `p` rejects with. */
  async function configError(p: Promise<unknown>): Promise<string> {
    const e = await p.then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  test.each(cases)('%s', async (_label, extra, library, cli, experiment) => {
    const input = tinyModel({});
    const out = join(tmp, `named-${counter++}`);
    const fromLibrary = await configError(pruneTiny(input, { out, ...extra(input) }));
    expect(fromLibrary.slice(0, library.length)).toBe(library);
    expect(await configError(pruneTiny(input, { out, ...extra(input), ...asCli }))).toContain(cli);
    const fromFile = await configError(pruneTiny(input, { out, ...extra(input), ...asExperiment }));
    expect(fromFile).toContain(experiment);
    expect(fromFile).not.toMatch(/--[a-z]/); // no CLI flag in what an experiment-file user reads
    expect(existsSync(out)).toBe(false);
  });
});

test("kernels from the caller: park 'none' writes the same bytes as wasm's parking in JS memory, with 15 fewer host reads per block (the tiny model, one input batch)", async () => {
  const input = tinyModel({});
  const run = async (park: Kernels['park']): Promise<{ report: PruneReport; reads: number }> => {
    const proto = tf.Tensor.prototype as { data: (...a: unknown[]) => unknown };
    const data = proto.data;
    let reads = 0;
    proto.data = function (this: unknown, ...a: unknown[]) {
      reads++;
      return data.apply(this, a);
    };
    try {
      const report = await pruneTiny(input, { batchSize: 4, kernels: { ...kernels(), park } }); // 4 windows: one input batch
      return { report, reads };
    } finally {
      proto.data = data;
    }
  };
  const parked = await run('js-memory');
  const kept = await run('none');
  const bytes = (dir: string): Buffer => readFileSync(join(dir, 'model.safetensors'));
  expect(bytes(kept.report.out).equals(bytes(parked.report.out))).toBe(true);
  expect(kept.report.sparsity).toEqual(parked.report.sparsity);
  // per block: the input batch parked, seven linears parked and seven pruned ones read back
  expect(parked.reads - kept.reads).toBe(input.config.numLayers * (1 + 2 * LINEAR_NAMES.length));
});
