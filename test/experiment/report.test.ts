import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../../lib/errors.js';
import { blockSparsitySpec, FEW_POINTS, pplLabel, pplVsSparsitySpec, renderSvg, sparsityDomain, targetLabel, zerosDomain } from '../../lib/experiment/charts.js';
import {
  csvField,
  csvReport,
  loadResults,
  markdownReport,
  markdownTable,
  writeReport,
  type ResultsInput,
  type SettingResult,
} from '../../lib/experiment/report.js';
import { TEMP_FILE, writeFileAtomic } from '../../lib/model/save.js';

const MY_TASK = '../data/my,task.jsonl'; // a task file key: its label is 'my,task', its CSV headers need quoting

const dense: SettingResult = {
  id: 'dense', method: 'dense', structure: null, sparsity: 0, useVariant: false, actualSparsity: 0,
  perplexity: { wikitext2: { ppl: 25.3149, windows: 4, tokens: 4096 } },
  tasks: { boolq: { acc: 0.625, n: 40 }, hellaswag: { acc: 0.3, acc_norm: 0.35, n: 40 }, [MY_TASK]: { acc: 0.5, n: 10 } },
  mean: 0.475, blockSparsity: [], timings: { ppl: 12.34, tasks: 56.78 },
};
const wanda: SettingResult = {
  id: 'wanda-unstructured-0.5', method: 'wanda', structure: 'unstructured', sparsity: 0.5, useVariant: false, actualSparsity: 0.5,
  perplexity: { wikitext2: { ppl: 31.0049, windows: 4, tokens: 4096 } },
  tasks: { boolq: { acc: 0.6, n: 40 }, hellaswag: { acc: 0.275, acc_norm: 0.3125, n: 40 }, [MY_TASK]: { acc: 0.4, n: 10 } },
  mean: 0.425, blockSparsity: [0.5, 0.5], timings: { prune: 3.21, ppl: 12, tasks: 50 },
};
const magnitude: SettingResult = {
  id: 'magnitude-2of4', method: 'magnitude', structure: '2:4', sparsity: 0.5, useVariant: false, actualSparsity: 0.5,
  perplexity: { wikitext2: { ppl: 1234.5678, windows: 4, tokens: 4096 } },
  tasks: { boolq: { acc: 0.55, n: 40 } },
  mean: null, blockSparsity: [0.52, 0.48], timings: { prune: 0.5 },
};

/** Dense is given last: the report puts it first. */
const INPUT: ResultsInput = {
  version: 1,
  title: 'demo',
  meta: { model: 'c4-llama-7m', calibration: { nsamples: 16 } },
  results: [wanda, magnitude, dense],
};

const MAIN_TABLE = `| Setting | Zeros (%) | WikiText-2 ppl | BoolQ | HellaSwag | my,task | Mean |
|---|---:|---:|---:|---:|---:|---:|
| dense | 0.00 | 25.31 | 62.50 | 30.00 | 50.00 | 47.50 |
| wanda-unstructured-0.5 | 50.00 | 31.00 | 60.00 | 27.50 | 40.00 | 42.50 |
| magnitude-2of4 | 50.00 | 1234.57 | 55.00 | - | - | - |
`;

const MARKDOWN = `# demo

- model: c4-llama-7m
- calibration: {"nsamples":16}

${MAIN_TABLE}
Zeros: share of the weights of the pruned layers (the seven linear layers of every decoder block) that are zero.
Perplexity: lower is better.
Tasks: zero-shot accuracy (acc) in %; Mean: unweighted mean of the task columns.
Evaluated on: WikiText-2 4 windows (4096 tokens); BoolQ 40 items; HellaSwag 40 items; my,task 10 items (per setting: results.csv).

## acc_norm (%)

| Setting | HellaSwag |
|---|---:|
| dense | 35.00 |
| wanda-unstructured-0.5 | 31.25 |
| magnitude-2of4 | - |

## Timings (s)

| Setting | ppl | tasks | prune |
|---|---:|---:|---:|
| dense | 12.3 | 56.8 | - |
| wanda-unstructured-0.5 | 12.0 | 50.0 | 3.2 |
| magnitude-2of4 | - | - | 0.5 |
`;

const CSV = [
  [
    'setting', 'method', 'structure', 'sparsity', 'use_variant', 'actual_sparsity',
    'wikitext2_ppl', 'wikitext2_windows', 'wikitext2_tokens',
    'boolq_acc', 'boolq_acc_norm', 'boolq_n', 'hellaswag_acc', 'hellaswag_acc_norm', 'hellaswag_n',
    '"../data/my,task.jsonl_acc"', '"../data/my,task.jsonl_acc_norm"', '"../data/my,task.jsonl_n"',
    'mean', 'time_ppl_s', 'time_tasks_s', 'time_prune_s', 'block0_zeros', 'block1_zeros',
  ],
  ['dense', 'dense', '', '0', 'false', '0', '25.3149', '4', '4096', '0.625', '', '40', '0.3', '0.35', '40', '0.5', '', '10',
    '0.475', '12.34', '56.78', '', '', ''],
  ['wanda-unstructured-0.5', 'wanda', 'unstructured', '0.5', 'false', '0.5', '31.0049', '4', '4096', '0.6', '', '40', '0.275',
    '0.3125', '40', '0.4', '', '10', '0.425', '12', '50', '3.21', '0.5', '0.5'],
  ['magnitude-2of4', 'magnitude', '2:4', '0.5', 'false', '0.5', '1234.5678', '4', '4096', '0.55', '', '40', '', '', '', '', '', '',
    '', '', '', '0.5', '0.52', '0.48'],
].map((row) => row.join(',')).join('\n') + '\n';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'report-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('report contents', () => {
  test('markdown table: dense first, ppl 2 decimals, accuracies in % with 2 decimals, missing as -', () => {
    expect(markdownTable(INPUT)).toBe(MAIN_TABLE);
  });

  test('the whole results.md', () => {
    expect(markdownReport(INPUT)).toBe(MARKDOWN);
  });

  test('meanMetric acc_norm shows acc_norm where a task has it, and no separate acc_norm table', () => {
    const md = markdownReport({ ...INPUT, meanMetric: 'acc_norm' });
    expect(md).toContain('| dense | 0.00 | 25.31 | 62.50 | 35.00 | 50.00 | 47.50 |');
    expect(md).toContain('Tasks: acc_norm in % for the tasks that report it, acc otherwise;');
    expect(md).not.toContain('## acc_norm');
  });

  test('a table without tasks has no Mean column; a non-finite perplexity shows as nan', () => {
    const r: SettingResult = { ...wanda, tasks: {}, mean: null, perplexity: { wikitext2: { ppl: null, windows: 4, tokens: 4096 }, c4: { ppl: 40, windows: 2, tokens: 2048 } } };
    expect(markdownTable({ version: 1, title: 't', results: [r] })).toBe(
      '| Setting | Zeros (%) | WikiText-2 ppl | C4 ppl |\n|---|---:|---:|---:|\n| wanda-unstructured-0.5 | 50.00 | nan | 40.00 |\n',
    );
  });

  test('CSV: one row per setting, raw numbers, RFC 4180 quoting', () => {
    expect(csvReport(INPUT)).toBe(CSV);
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(' padded')).toBe('" padded"');
    expect(csvField(null)).toBe('');
    expect(csvField(undefined)).toBe('');
    expect(csvField(0)).toBe('0');
  });

  test('invalid results are DataErrors naming the key path', () => {
    const bad = { ...wanda, tasks: { boolq: { acc: 1.5, n: 40 } } };
    expect(() => markdownTable({ version: 1, title: 't', results: [dense, bad] })).toThrow(DataError);
    expect(() => markdownTable({ version: 1, title: 't', results: [dense, bad] })).toThrow(/results: invalid results: results\[1\]\.tasks\.boolq\.acc: /);
    expect(() => csvReport({ version: 1, title: 't', results: [dense, dense] })).toThrow("results: invalid results: setting id 'dense' appears twice");
  });
});

describe('writeReport', () => {
  test('writes json, csv, md and charts atomically; results.json reloads to the same data', async () => {
    const out = join(dir, 'run1');
    const files = await writeReport(out, INPUT);
    expect(files.map((f) => f.slice(out.length + 1))).toEqual([
      'results.json', 'results.csv', 'ppl-vs-sparsity-wikitext2.svg', 'block-sparsity.svg', 'results.md',
    ]);
    expect(readdirSync(out).sort()).toEqual(['block-sparsity.svg', 'ppl-vs-sparsity-wikitext2.svg', 'results.csv', 'results.json', 'results.md']);
    expect(readFileSync(join(out, 'results.csv'), 'utf8')).toBe(CSV);
    expect(readFileSync(join(out, 'results.md'), 'utf8')).toBe(
      MARKDOWN +
        '\n## Charts\n\n![WikiText-2 perplexity vs sparsity](ppl-vs-sparsity-wikitext2.svg)\n\n' +
        '![Zero fraction per decoder block](block-sparsity.svg)\n',
    );
    const loaded = await loadResults(join(out, 'results.json'));
    expect(loaded).toEqual({ ...INPUT, meanMetric: 'acc' });
    expect(readFileSync(join(out, 'block-sparsity.svg'), 'utf8').startsWith('<svg')).toBe(true);

    // Rewriting replaces the files in place and leaves no temporary files.
    await writeReport(out, { ...INPUT, title: 'demo 2' }, { charts: false });
    expect(readFileSync(join(out, 'results.md'), 'utf8').startsWith('# demo 2\n')).toBe(true);
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('invalid results write nothing', async () => {
    const out = join(dir, 'bad');
    await expect(writeReport(out, { version: 1, title: 't', results: [dense, dense] })).rejects.toThrow(DataError);
    expect(existsSync(out)).toBe(false);
  });

  test('writeFileAtomic removes its temporary file when the rename fails', () => {
    const target = join(dir, 'is-a-dir');
    mkdirSync(join(target, 'child'), { recursive: true });
    expect(() => writeFileAtomic(target, 'x')).toThrow();
    expect(readdirSync(dir).filter((f) => TEMP_FILE.test(f))).toEqual([]);
    writeFileAtomic(join(dir, 'plain.txt'), 'y'); // and leaves only the file when it works
    expect(readdirSync(dir).filter((f) => f.startsWith('plain.txt'))).toEqual(['plain.txt']);
  });

  test('loadResults names the file on bad input', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{"version": 2}');
    await expect(loadResults(file)).rejects.toThrow(`${file}: invalid results: version: `);
    await expect(loadResults(join(dir, 'absent.json'))).rejects.toThrow(`${join(dir, 'absent.json')}: cannot read results (ENOENT)`);
  });
});

describe('charts', () => {
  test('perplexity vs sparsity: axis titles, legends of methods (with dense) and structures', async () => {
    const variant: SettingResult = { ...wanda, id: 'wanda-variant-unstructured-0.6', sparsity: 0.6, useVariant: true, perplexity: { wikitext2: { ppl: 50, windows: 4, tokens: 4096 } } };
    const spec = pplVsSparsitySpec([dense, wanda, magnitude, variant], 'wikitext2', { title: 'demo' });
    expect(spec).not.toBeNull();
    const svg = await renderSvg(spec!);
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of [
      'demo: WikiText-2 perplexity vs sparsity',
      'Sparsity (% of weights removed per pruned layer)',
      'WikiText-2 perplexity (log scale)',
      '>Method<',
      '>Wanda<',
      '>Magnitude<',
      '>Wanda (variant)<',
      '>Structure<',
      '>unstructured<',
      '>2:4<',
      '>Reference<',
      '>Dense (25.31)<',
      'dashed line: dense model (25.31)',
    ]) {
      expect(svg).toContain(text);
    }
    // The dense legend symbol is a dashed grey stroke, like its rule; the method legend has no dense entry.
    expect(svg).toMatch(/role-legend-symbol[^>]*><path [^>]*d="M-10,0L10,0" stroke="#555555" stroke-width="2" stroke-dasharray="6,4"/);
    expect(svg).toContain("Symbol legend titled 'Method' for fill color and stroke color with 3 values: Wanda, Magnitude, Wanda (variant)");
    // The x axis spans the sparsities shown (50%, 60%) with a margin: no point on the frame, not 0 to 100%.
    expect(svg).toContain("X-axis titled 'Sparsity (% of weights removed per pruned layer)' for a linear scale with values from 45 to 65");
  });

  test('log scale only when perplexities span a factor of 10 or more', async () => {
    const near = await renderSvg(pplVsSparsitySpec([dense, wanda], 'wikitext2')!); // 25.3 and 31.0
    expect(near).toContain("Y-axis titled 'WikiText-2 perplexity' for a linear scale");
    const far = await renderSvg(pplVsSparsitySpec([dense, wanda, magnitude], 'wikitext2')!); // up to 1234.6
    expect(far).toContain("Y-axis titled 'WikiText-2 perplexity (log scale)' for a log scale");
  });

  test('a structure legend only when structures differ', async () => {
    const svg = await renderSvg(pplVsSparsitySpec([dense, wanda], 'wikitext2')!);
    expect(svg).toContain('>Wanda<');
    expect(svg).not.toContain('>Structure<');
  });

  test('no perplexity chart without pruned results for the set', () => {
    expect(pplVsSparsitySpec([dense], 'wikitext2')).toBeNull();
    expect(pplVsSparsitySpec([wanda], 'c4')).toBeNull();
  });

  /** A pruned setting at `sparsity` with perplexity `ppl` and these block zero fractions. */
  const at = (method: 'wanda' | 'magnitude', sparsity: number, ppl: number, blocks = [sparsity, sparsity]): SettingResult => ({
    ...wanda, id: `${method}-unstructured-${sparsity}`, method, sparsity, actualSparsity: sparsity,
    perplexity: { wikitext2: { ppl, windows: 4, tokens: 4096 } }, blockSparsity: blocks,
  });
  type Layer = { mark: { type: string; xOffset?: number }; encoding: { x: { scale: { domain: [number, number] } } }; data: { values: { sparsity: number; label?: string }[] } };
  const layersOf = (results: SettingResult[]): Layer[] => (pplVsSparsitySpec(results, 'wikitext2') as unknown as { layer: Layer[] }).layer;

  test('sparsity axis: a margin on both sides of the levels shown, ends on multiples of 5, inside 0-100 unless a level is close', () => {
    expect(sparsityDomain([50])).toEqual([45, 55]);
    expect(sparsityDomain([50, 60])).toEqual([45, 65]);
    expect(sparsityDomain([10, 20, 30, 40, 50, 60, 70, 80])).toEqual([0, 90]);
    expect(sparsityDomain([2])).toEqual([0, 10]);
    expect(sparsityDomain([95])).toEqual([90, 100]);
    expect(sparsityDomain([99])).toEqual([90, 105]);
    expect(sparsityDomain([0])).toEqual([0, 5]);
  });

  test.each([
    ['one sparsity level', [0.5]],
    ['two levels', [0.5, 0.6]],
    ['ten levels', [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]],
  ])('perplexity chart with %s: every point at least 2.5 points of sparsity inside the x axis', (_name, levels) => {
    const results = [dense, ...levels.flatMap((s) => [at('wanda', s, 30 + 10 * s), at('magnitude', s, 32 + 20 * s)])];
    const points = layersOf(results).filter((l) => l.mark.type === 'point');
    expect(points).toHaveLength(2);
    for (const layer of points) {
      const [lo, hi] = layer.encoding.x.scale.domain;
      for (const p of layer.data.values) expect(Math.min(p.sparsity - lo, hi - p.sparsity)).toBeGreaterThanOrEqual(2.5);
    }
  });

  test(`value labels on the points up to ${FEW_POINTS} points, none beyond; one level keeps the method legend`, async () => {
    const few = [dense, at('wanda', 0.5, 269.69), at('magnitude', 0.5, 275.25)];
    const labels = layersOf(few).filter((l) => l.mark.type === 'text');
    expect(labels.map((l) => l.data.values.map((v) => v.label))).toEqual([['269.7'], ['275.3']]);
    // the two methods' labels on opposite sides of their points, at the points' offsets
    expect(labels.map((l) => (l.mark as unknown as { align: string }).align)).toEqual(['right', 'left']);
    const svg = await renderSvg(pplVsSparsitySpec(few, 'wikitext2')!);
    for (const text of ['>269.7<', '>275.3<', '>Method<', '>Wanda<', '>Magnitude<']) expect(svg).toContain(text);
    const levels = Array.from({ length: FEW_POINTS / 2 + 1 }, (_, i) => 0.1 + 0.05 * i);
    const many = [dense, ...levels.flatMap((s) => [at('wanda', s, 30 + s), at('magnitude', s, 31 + s)])];
    expect(layersOf(many).filter((l) => l.mark.type === 'text')).toEqual([]);
    expect(pplLabel(25.314)).toBe('25.31');
    expect(pplLabel(1234.56)).toBe('1234.6');
    expect(pplLabel(123456.7)).toBe('123457');
  });

  test('a single point without a dense model still has a y extent', async () => {
    const svg = await renderSvg(pplVsSparsitySpec([at('wanda', 0.5, 31.2)], 'wikitext2')!);
    expect(svg).toContain("Y-axis titled 'WikiText-2 perplexity' for a linear scale with values from 29.5 to 32.9");
  });

  test('block sparsity: the y axis around the data, so 50.0% and 50.1% are apart; all equal gives +-0.5 points', async () => {
    expect(zerosDomain([50, 50.1])).toEqual([expect.closeTo(49.985, 9), expect.closeTo(50.115, 9)]);
    expect(zerosDomain([50, 50])).toEqual([49.5, 50.5]);
    expect(zerosDomain([10, 95])).toEqual([0, 100]);
    const spec = blockSparsitySpec([dense, at('wanda', 0.5, 30, [0.5, 0.5]), at('magnitude', 0.5, 31, [0.501, 0.5])]);
    const y = (spec as unknown as { spec: { mark: { type: string }; encoding: { y: { scale: { domain: number[] } } } } }).spec;
    expect(y.mark.type).toBe('point');
    expect(y.encoding.y.scale.domain).toEqual([expect.closeTo(49.985, 9), expect.closeTo(50.115, 9)]);
    const svg = await renderSvg(spec!);
    expect(svg).toMatch(/Y-axis titled 'Zero fraction \(%\)' for a linear scale with values from 49\.9\d* to 50\.1\d*/);
  });

  test('block sparsity: axis titles, one row per method, legend per target', async () => {
    const spec = blockSparsitySpec([dense, wanda, magnitude]);
    expect(spec).not.toBeNull();
    const svg = await renderSvg(spec!);
    for (const text of ['Zero fraction per decoder block', 'Decoder block (index)', 'Zero fraction (%)', '>Target sparsity<', '>unstructured 50%<', '>2:4<', '>Wanda<', '>Magnitude<']) {
      expect(svg).toContain(text);
    }
    // Colour means the target here: none of the method colours of the perplexity chart.
    for (const methodColour of ['#4c78a8', '#f58518', '#54a24b']) expect(svg).not.toContain(`fill="${methodColour}"`);
    expect(blockSparsitySpec([dense])).toBeNull();
    expect(targetLabel({ structure: 'unstructured', sparsity: 0.35 })).toBe('unstructured 35%');
  });
});
