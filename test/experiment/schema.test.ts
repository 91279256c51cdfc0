import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import { expandSettings, ExperimentConfigError, loadExperiment, settingId } from '../../lib/experiment/schema.js';
import { parseStructure } from '../../lib/prune/structure.js';
import { writeStandInShared } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { EVAL_DEFAULTS } from '../../lib/eval/defaults.js';
import { FINETUNE_DEFAULTS } from '../../lib/finetune/defaults.js';
import { PRUNE_DEFAULTS } from '../../lib/prune/defaults.js';
import { DEFAULT_LORA } from '../../lib/finetune/lora.js';

/**
 * Each test writes its experiment file into a temporary project:
 *   <tmp>/models/tiny/config.json, <tmp>/data/calib.jsonl, <tmp>/data/tasks/mine.jsonl, <tmp>/configs/<file>
 * and the configs refer to them as ../models/tiny etc. (relative to the config file).
 */
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'schema-test-'));
  mkdirSync(join(root, 'models', 'tiny'), { recursive: true });
  writeFileSync(join(root, 'models', 'tiny', 'config.json'), '{}');
  mkdirSync(join(root, 'models', 'no-config'), { recursive: true });
  mkdirSync(join(root, 'data', 'tasks'), { recursive: true });
  writeFileSync(join(root, 'data', 'calib.jsonl'), '{"text": "hello"}\n');
  writeFileSync(join(root, 'data', 'tasks', 'mine.jsonl'), '{"query": "q", "choices": ["a", "b"], "gold": 0}\n');
  mkdirSync(join(root, 'configs'));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A valid experiment; prune comes last so that tests can append entries to it. */
const BASE = `model: ../models/tiny
calibration:
  source: ../data/calib.jsonl
output: ../results/x
prune:
  - method: wanda
    structure: unstructured
    sparsity: 0.5
`;

function write(name: string, text: string): string {
  const file = join(root, 'configs', name);
  writeFileSync(file, text);
  return file;
}

/** The ExperimentConfigError thrown by loading `text` (fails the test when nothing is thrown). */
function errorOf(text: string, overrides: Record<string, unknown> = {}, name = 'bad.yaml'): ExperimentConfigError {
  const file = write(name, text);
  try {
    loadExperiment(file, overrides);
  } catch (e) {
    expect(e).toBeInstanceOf(ExperimentConfigError);
    expect(e).toBeInstanceOf(ConfigError);
    return e as ExperimentConfigError;
  }
  throw new Error(`expected ${file} to be rejected`);
}

describe('loadExperiment: defaults and paths', () => {
  test('fills defaults and resolves paths against the config file folder, not the cwd', () => {
    const file = write('ok.yaml', BASE);
    const exp = loadExperiment(file);
    expect(exp.model).toBe(join(root, 'models', 'tiny'));
    expect(exp.calibration).toEqual({ source: join(root, 'data', 'calib.jsonl'), nsamples: 128, seed: 0, batchSize: 1 });
    expect(exp.calibration.seqlen).toBeUndefined();
    expect(exp.output).toBe(join(root, 'results', 'x'));
    expect(exp.name).toBe('ok');
    expect(exp.backend).toBe('auto');
    expect(exp.dense).toBe(true);
    expect(exp.keepCheckpoints).toBe(false);
    expect(exp.eval).toEqual({ ppl: ['wikitext2'], tasks: [], addBos: false, meanMetric: 'acc' });
    expect(exp.finetune).toBeUndefined();
    // The cwd is the project root, where ../models/tiny does not exist: resolution really used the file folder.
    expect(resolve('../models/tiny')).not.toBe(exp.model);
  });

  test('JSON files validate like YAML', () => {
    const file = write('ok.json', JSON.stringify({
      model: '../models/tiny',
      calibration: { source: '../data/calib.jsonl', nsamples: 4 },
      prune: { method: 'magnitude', sparsity: 0.25 },
      output: 'out',
    }));
    const exp = loadExperiment(file);
    expect(exp.calibration.nsamples).toBe(4);
    expect(exp.output).toBe(join(root, 'configs', 'out'));
    expect(expandSettings(exp).map((s) => s.id)).toEqual(['magnitude-unstructured-0.25']);
  });

  test('a hub id is kept as is; task names and task files; finetune defaults', () => {
    const exp = loadExperiment(write('hub.yaml', BASE.replace('../models/tiny', 'someone/some-model') + `eval:
  ppl: [wikitext2, c4]
  tasks: [boolq, ../data/tasks/mine.jsonl]
  limit: 10
  maxWindows: 3
finetune:
  maxSteps: 5
  data: ../data/calib.jsonl
`));
    expect(exp.model).toBe('someone/some-model');
    expect(exp.eval).toEqual({
      ppl: ['wikitext2', 'c4'], tasks: ['boolq', join(root, 'data', 'tasks', 'mine.jsonl')], limit: 10, maxWindows: 3,
      addBos: false, meanMetric: 'acc',
    });
    expect(exp.finetune).toEqual({
      rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], lr: 1e-4, maxSteps: 5,
      data: join(root, 'data', 'calib.jsonl'), batchSize: 1, seed: 0,
    });
    // one source of defaults per stage, the same on every route (the experiment had batchSize 8 and merge masked)
    const { rank, alpha, targets, lr, batchSize, seed } = FINETUNE_DEFAULTS;
    expect(exp.finetune).toMatchObject({ rank, alpha, targets, lr, batchSize, seed });
    expect(DEFAULT_LORA).toEqual({ rank, alpha, dropout: FINETUNE_DEFAULTS.dropout, targets });
    expect(exp.eval).toMatchObject({ addBos: EVAL_DEFAULTS.addBos, meanMetric: EVAL_DEFAULTS.meanMetric });
    expect(exp.calibration).toMatchObject({ nsamples: PRUNE_DEFAULTS.nsamples, seed: PRUNE_DEFAULTS.seed, batchSize: PRUNE_DEFAULTS.batchSize });
    expect(exp.outputFormat).toBe(PRUNE_DEFAULTS.format);
  });

  test('overrides are applied before validation; string values read as YAML; override paths resolve against the cwd', () => {
    const file = write('ok.yaml', BASE);
    const exp = loadExperiment(file, {
      'calibration.nsamples': 8,
      'calibration.seed': '3',
      'prune[0].sparsity': '[0.3, 0.6]',
      'prune.0.method': 'magnitude',
      output: 'rel/out',
      dense: 'false',
    });
    expect(exp.calibration.nsamples).toBe(8);
    expect(exp.calibration.seed).toBe(3);
    expect(exp.dense).toBe(false);
    expect(exp.output).toBe(resolve(process.cwd(), 'rel/out'));
    expect(expandSettings(exp).map((s) => s.id)).toEqual(['magnitude-unstructured-0.3', 'magnitude-unstructured-0.6']);
  });

  test('a malformed override key is a ConfigError naming it', () => {
    const file = write('ok.yaml', BASE);
    expect(() => loadExperiment(file, { 'calibration..x': 1 })).toThrow(
      "override 'calibration..x': not a key path like 'calibration.nsamples' or 'prune[0].sparsity'",
    );
    expect(() => loadExperiment(file, { 'model.x': 1 })).toThrow("override 'model.x': 'model' is '../models/tiny', not an object or list");
  });
});

describe('loadExperiment: errors name the file and the key path', () => {
  test('unknown key, with a suggestion', () => {
    const e = errorOf(BASE.replace('    sparsity: 0.5', '    sparsty: 0.5'));
    expect(e.file).toBe(join(root, 'configs', 'bad.yaml'));
    expect(e.issues).toEqual([
      { path: 'prune[0].sparsty', message: "unknown key 'sparsty' (did you mean 'sparsity'?); allowed: method, structure, sparsity, useVariant, layerwise, refine, targets, ignore, magnitude, wanda, sparsegpt, ria, owl, dsnot" },
      { path: 'prune[0].sparsity', message: 'required for unstructured pruning (a number >= 0 and < 1)' },
    ]);
    expect(e.message).toContain(`${join(root, 'configs', 'bad.yaml')}: 2 problems:`);
    expect(e.message).toContain("  prune[0].sparsty: unknown key 'sparsty' (did you mean 'sparsity'?)");
  });

  test('unknown top-level key without a close match', () => {
    const e = errorOf(BASE + 'colour: red\n');
    expect(e.message).toBe(
      `${join(root, 'configs', 'bad.yaml')}: colour: unknown key 'colour'; allowed: name, model, backend, threads, calibration, ` +
        'prune, dense, eval, finetune, output, keepCheckpoints, reuseAnyVersion',
    );
  });

  test('output: a path (dense checkpoints) or { dir, format }; --set output.format works on either', () => {
    expect(loadExperiment(write('ok.yaml', BASE)).outputFormat).toBe('dense');
    const obj = loadExperiment(write('obj.yaml', BASE.replace('output: ../results/x', 'output: {dir: ../results/y, format: compressed}')));
    expect([obj.output, obj.outputFormat]).toEqual([join(root, 'results', 'y'), 'compressed']);
    const set = loadExperiment(write('ok.yaml', BASE), { 'output.format': 'compressed' });
    expect([set.output, set.outputFormat]).toEqual([join(root, 'results', 'x'), 'compressed']);
    expect(errorOf(BASE.replace('output: ../results/x', 'output: {dir: ../results/y, format: sparse}')).issues).toEqual([
      { path: 'output.format', message: "must be one of dense, compressed, got 'sparse'" },
    ]);
    expect(errorOf(BASE.replace('output: ../results/x', 'output: {dirs: ../results/y}')).issues).toEqual([
      { path: 'output.dir', message: 'required (a string)' },
      { path: 'output.dirs', message: "unknown key 'dirs' (did you mean 'dir'?); allowed: dir, format" },
    ]);
    expect(errorOf(BASE.replace('output: ../results/x', 'output: 3')).issues).toEqual([{ path: 'output', message: 'expected a string, got 3' }]);
  });

  test('wrong types', () => {
    const e = errorOf(BASE.replace('source: ../data/calib.jsonl', 'source: ../data/calib.jsonl\n  nsamples: many') + 'dense: 1\n');
    expect(e.issues).toEqual([
      { path: 'calibration.nsamples', message: "expected a number, got 'many'" },
      { path: 'dense', message: 'expected a boolean, got 1' },
    ]);
  });

  test('missing required keys', () => {
    const e = errorOf('model: ../models/tiny\nprune: {method: wanda, sparsity: 0.5}\n');
    expect(e.issues).toEqual([
      { path: 'calibration', message: 'required (an object)' },
      { path: 'output', message: 'required (a string)' },
    ]);
  });

  test('sparsity out of range, in a list entry and in a sweep list', () => {
    const e = errorOf(BASE + '  - method: magnitude\n    sparsity: 1.2\n  - method: wanda\n    sparsity: [0.1, -0.5]\n');
    expect(e.issues).toEqual([
      { path: 'prune[1].sparsity', message: 'must be >= 0 and < 1, got 1.2' },
      { path: 'prune[2].sparsity[1]', message: 'must be >= 0 and < 1, got -0.5' },
    ]);
    expect(e.message).toContain('prune[1].sparsity: must be >= 0 and < 1, got 1.2');
  });

  test('integer fields', () => {
    const e = errorOf(BASE.replace('source: ../data/calib.jsonl', 'source: ../data/calib.jsonl\n  nsamples: 0\n  seed: 1.5'));
    expect(e.issues).toEqual([
      { path: 'calibration.nsamples', message: 'must be an integer >= 1, got 0' },
      { path: 'calibration.seed', message: 'must be an integer >= 0, got 1.5' },
    ]);
  });

  test('N:M needs 1 <= N < M, and a given sparsity must be N/M', () => {
    expect(errorOf(BASE.replace('structure: unstructured', "structure: '4:4'")).issues).toEqual([
      { path: 'prune[0].structure', message: 'N:M needs N < M, got 4:4' },
    ]);
    expect(errorOf(BASE.replace('structure: unstructured', "structure: ['2:4', '0:4', 2x4]")).issues).toEqual([
      { path: 'prune[0].structure[1]', message: 'N:M needs N >= 1, got 0:4' },
      { path: 'prune[0].structure[2]', message: "must be 'unstructured' or 'N:M' like '2:4', got '2x4'" },
    ]);
    expect(errorOf(BASE.replace('structure: unstructured', "structure: '2:8'")).issues).toEqual([
      { path: 'prune[0].sparsity', message: 'structure 2:8 fixes sparsity at 0.25, got 0.5 (leave sparsity out for N:M, or use a separate entry)' },
    ]);
  });

  test('enums list what is allowed', () => {
    const e = errorOf(BASE.replace('method: wanda', 'method: [wanda, obs]') + 'backend: gpu\n');
    expect(e.issues).toEqual([
      { path: 'backend', message: "must be one of auto, tensorflow, webgpu, wasm, cpu, got 'gpu'" },
      { path: 'prune[0].method[1]', message: "must be one of magnitude, wanda, sparsegpt, ria, got 'obs'" },
    ]);
  });

  test('threads: a whole number >= 1, absent by default', () => {
    expect(loadExperiment(write('ok.yaml', BASE)).threads).toBeUndefined();
    expect(loadExperiment(write('t.yaml', BASE + 'threads: 4\n')).threads).toBe(4);
    expect(errorOf(BASE + 'threads: 0\n').issues.map((i) => i.path)).toEqual(['threads']);
    expect(errorOf(BASE + 'threads: 1.5\n').issues.map((i) => i.path)).toEqual(['threads']);
  });

  test('missing model folder, a folder without config.json, missing data files', () => {
    expect(errorOf(BASE.replace('../models/tiny', '../models/absent')).issues).toEqual([
      { path: 'model', message: `folder '../models/absent' does not exist (resolved to ${join(root, 'models', 'absent')})` },
    ]);
    expect(errorOf(BASE.replace('../models/tiny', '../models/no-config')).issues).toEqual([
      { path: 'model', message: `folder '../models/no-config' has no config.json, so it is not a checkpoint (resolved to ${join(root, 'models', 'no-config')})` },
    ]);
    expect(errorOf(BASE.replace('../models/tiny', 'not a hub id')).issues).toEqual([
      { path: 'model', message: "'not a hub id' is neither an existing folder nor a hub id like 'owner/name'" },
    ]);
    const e = errorOf(BASE.replace('../data/calib.jsonl', '../data/none.jsonl') + 'eval:\n  tasks: [../data/none.jsonl]\n  dataDir: ../nodata\n');
    expect(e.issues.map((i) => i.path)).toEqual(['calibration.source', 'eval.tasks[0]', 'eval.dataDir']);
    expect(e.issues[0]!.message).toBe(`calibration file '../data/none.jsonl' does not exist (resolved to ${join(root, 'data', 'none.jsonl')})`);
  });

  test('tasks: a registered name or an existing file', () => {
    const e = errorOf(BASE + 'eval:\n  tasks: [boolq, bolq, ./mine.jsonl]\n  meanMetric: f1\n');
    expect(e.issues).toEqual([
      {
        path: 'eval.tasks[1]',
        message: "must be one of boolq, rte, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa, piqa, copa or a task file, got 'bolq'",
      },
      { path: 'eval.tasks[2]', message: `task file './mine.jsonl' does not exist (resolved to ${join(root, 'configs', 'mine.jsonl')})` },
      { path: 'eval.meanMetric', message: "must be one of acc, acc_norm, got 'f1'" },
    ]);
  });

  test('wanda variant only with wanda, unstructured', () => {
    const e = errorOf(
      BASE.replace('method: wanda', 'method: [wanda, sparsegpt]').replace('structure: unstructured', "structure: [unstructured, '2:4']") +
        '    useVariant: true\n',
    );
    expect(e.issues).toEqual([
      { path: 'prune[0].useVariant', message: 'only wanda has a variant, got method sparsegpt' },
      { path: 'prune[0].useVariant', message: 'the wanda variant is unstructured only, got an N:M structure' },
    ]);
  });

  test('duplicate settings across entries', () => {
    const e = errorOf(BASE + "  - method: [magnitude, wanda]\n    sparsity: 0.5\n");
    expect(e.issues).toEqual([{ path: 'prune[1]', message: "setting 'wanda-unstructured-0.5' appears twice (first in prune[0])" }]);
  });

  test('an error caused by an override says so', () => {
    const e = errorOf(BASE, { 'calibration.nsampels': 8 });
    expect(e.issues).toEqual([
      {
        path: 'calibration.nsampels',
        message: "unknown key 'nsampels' (did you mean 'nsamples'?); allowed: source, nsamples, seqlen, seed, batchSize (set by a command-line override)",
      },
    ]);
  });

  test('a single prune object reports paths without an index', () => {
    const e = errorOf(BASE.replace(/prune:[\s\S]*$/, 'prune:\n  method: wanda\n  sparsity: 2\n'));
    expect(e.issues).toEqual([{ path: 'prune.sparsity', message: 'must be >= 0 and < 1, got 2' }]);
  });

  test('unreadable files, bad YAML, wrong extension, non-mapping', () => {
    expect(() => loadExperiment(join(root, 'configs', 'absent.yaml'))).toThrow(`${join(root, 'configs', 'absent.yaml')}: cannot read experiment file (ENOENT)`);
    expect(() => loadExperiment(write('bad2.yaml', 'model: [\n'))).toThrow(/bad2\.yaml:\d+:\d+: invalid YAML/);
    expect(() => loadExperiment(write('dup.yaml', BASE + 'model: x\n'))).toThrow(/dup\.yaml:\d+:\d+: invalid YAML \(Map keys must be unique/);
    expect(() => loadExperiment(write('x.toml', BASE))).toThrow("x.toml: experiment files must end in .yaml, .yml or .json, got '.toml'");
    expect(() => loadExperiment(write('list.yaml', '- a\n'))).toThrow('list.yaml: an experiment file must be a mapping of keys');
  });
});

describe('expandSettings', () => {
  test('cartesian sweep: counts, order and ids', () => {
    const exp = loadExperiment(write('grid.yaml', BASE.replace(/prune:[\s\S]*$/, `prune:
  - method: [magnitude, sparsegpt, wanda]
    structure: [unstructured, '4:8', '2:4']
    sparsity: 0.5
  - method: wanda
    sparsity: [0.5, 0.6]
    useVariant: true
`)));
    const settings = expandSettings(exp);
    expect(settings.map((s) => s.id)).toEqual([
      'magnitude-unstructured-0.5', 'magnitude-4of8', 'magnitude-2of4',
      'sparsegpt-unstructured-0.5', 'sparsegpt-4of8', 'sparsegpt-2of4',
      'wanda-unstructured-0.5', 'wanda-4of8', 'wanda-2of4',
      'wanda-variant-unstructured-0.5', 'wanda-variant-unstructured-0.6',
    ]);
    expect(settings[1]).toEqual({ id: 'magnitude-4of8', method: 'magnitude', structure: { kind: 'nm', n: 4, m: 8 }, sparsity: 0.5, useVariant: false, methodOptions: {}, layerwise: null, refine: null, targets: [], ignore: [] });
    expect(settings[10]).toEqual({ id: 'wanda-variant-unstructured-0.6', method: 'wanda', structure: { kind: 'unstructured' }, sparsity: 0.6, useVariant: true, methodOptions: { variant: true }, layerwise: null, refine: null, targets: [], ignore: [] });
  });

  test('plan keys: layerwise, refine, targets, ignore and options under the owner name; ids name what differs from defaults', () => {
    const exp = loadExperiment(write('plan.yaml', BASE.replace(/prune:[\s\S]*$/, `prune:
  - method: wanda
    sparsity: [0.5, 0.7]
    layerwise: owl
    owl: { lambda: 0.1, m: 5 }
  - method: [wanda, ria]
    sparsity: 0.6
    refine: dsnot
    ignore: ['re:.*down_proj']
  - method: ria
    structure: '2:4'
    ria: { permute: true, alpha: 0.5 }
  - method: sparsegpt
    sparsity: 0.5
    sparsegpt: { damp: 0.05 }
`)));
    const settings = expandSettings(exp);
    expect(settings.map((s) => s.id)).toEqual([
      'wanda+owl-lambda0.1-unstructured-0.5',
      'wanda+owl-lambda0.1-unstructured-0.7',
      expect.stringMatching(/^wanda\+dsnot-sel[0-9a-f]{8}-unstructured-0\.6$/),
      expect.stringMatching(/^ria\+dsnot-sel[0-9a-f]{8}-unstructured-0\.6$/),
      'ria-permute-2of4',
      'sparsegpt-damp0.05-unstructured-0.5',
    ]);
    expect(settings[0]).toMatchObject({ layerwise: { name: 'owl', options: { lambda: 0.1 } }, refine: null, methodOptions: {} });
    expect(settings[2]).toMatchObject({ refine: { name: 'dsnot', options: {} }, ignore: ['re:.*down_proj'], targets: [] });
    expect(settings[4]).toMatchObject({ methodOptions: { permute: true } }); // alpha 0.5 is the default: not in the id
  });

  test('plan keys: options of an owner the entry does not use, OWL or DSnoT with N:M, DSnoT after SparseGPT, bad option values', () => {
    const e = errorOf(BASE.replace(/prune:[\s\S]*$/, `prune:
  - method: wanda
    structure: '2:4'
    layerwise: owl
    refine: dsnot
    ria: { permute: true }
  - method: sparsegpt
    sparsity: 0.5
    refine: dsnot
  - method: ria
    sparsity: 0.5
    ria: { permute: true, alpha: -1 }
`));
    const paths = e.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['prune[0].ria', 'prune[0].layerwise', 'prune[0].refine', 'prune[1].refine', 'prune[2].ria.alpha']));
    expect(e.issues.find((i) => i.path === 'prune[0].ria')?.message).toBe('options for ria, which this entry does not use');
  });

  test("a method option that does not fit the structure is named by its key under the method's key path, not by its CLI flag", () => {
    const e = errorOf(BASE.replace(/prune:[\s\S]*$/, `prune:
  - method: ria
    sparsity: 0.5
    ria: { permute: true }
`));
    expect(e.issues).toEqual([{ path: 'prune[0].ria', message: 'permute applies to N:M structures only' }]);
  });

  test('N:M without sparsity takes N/M; unquoted 2:4 in YAML is the string 2:4', () => {
    const exp = loadExperiment(write('nm.yaml', BASE.replace('structure: unstructured', 'structure: 2:4').replace('    sparsity: 0.5\n', '')));
    expect(expandSettings(exp)).toEqual([{ id: 'wanda-2of4', method: 'wanda', structure: { kind: 'nm', n: 2, m: 4 }, sparsity: 0.5, useVariant: false, methodOptions: {}, layerwise: null, refine: null, targets: [], ignore: [] }]);
  });

  test('settingId and parseStructure', () => {
    expect(settingId({ method: 'sparsegpt', structure: { kind: 'unstructured' }, sparsity: 0.5, useVariant: false, methodOptions: {}, layerwise: null, refine: null, targets: [], ignore: [] })).toBe('sparsegpt-unstructured-0.5');
    expect(parseStructure('16:32')).toEqual({ kind: 'nm', n: 16, m: 32 });
    expect(() => parseStructure('4:2')).toThrow('structure: N:M needs N < M, got 4:2');
  });
});

describe('shipped configs', () => {
  const dir = resolve('configs');
  const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  const expected: Record<string, number> = {
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

  test.each(files)('%s validates against a stand-in shared folder (tiny checkpoints, seeded data)', (f) => {
    const shared = writeStandInShared(mkdtempSync(join(tmpdir(), 'llm-prune-stand-in-shared-')), ['c4-llama-7m', 'TinyStories-656K'], (d) => void writeTinyCheckpoint(d, { hiddenSize: 16, intermediateSize: 32, numHeads: 2, numLayers: 1 }));
    try {
      const exp = loadExperiment(join(dir, f), {}, { shared });
      expect(expandSettings(exp)).toHaveLength(expected[f]!);
      expect(exp.model.startsWith(join(shared, 'models'))).toBe(true);
      expect(exp.calibration.source).toBe(join(shared, 'data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'));
      expect(exp.eval.dataDir).toBe(join(shared, 'data'));
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });
});
