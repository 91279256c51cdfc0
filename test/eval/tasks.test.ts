import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DataError } from '../../lib/errors.js';
import {
  PAPER_TASKS,
  TASKS,
  customTask,
  hellaswagPreprocess,
  loadTask,
  pyCapitalize,
  pyLen,
  pyRstrip,
  pyStrip,
  type TaskItem,
} from '../../lib/eval/tasks.js';
import { parquetOf } from '../helpers/parquet.js';
import { syntheticTaskRows, writeSyntheticData } from '../helpers/synthetic-text.js';

// a data folder laid out like shared/data with seeded rows (test/helpers/synthetic-text.ts)
const ITEMS = 30;
const dataDir = writeSyntheticData(join(mkdtempSync(join(tmpdir(), 'llm-prune-tasks-data-')), 'data'), { items: ITEMS, docs: 2, articles: 1, seed: 9 });
const rows = syntheticTaskRows(ITEMS, 11);

async function firstItem(name: string): Promise<TaskItem> {
  const task = await loadTask(name, { dataDir });
  return task.items[0] as TaskItem;
}

describe('task adapters on seeded rows of each task file (expected items built here from the rows)', () => {
  const row = (file: string, n = 1): Record<string, unknown> => rows[file]![n - 1]!;
  const lens = (xs: string[]): number[] => xs.map((x) => x.length);
  const choicesOf = (r: Record<string, unknown>) => r['choices'] as { text: string[]; label: string[] };

  test('boolq: "{passage}\\nQuestion: {question}?\\nAnswer:" -> " no" | " yes"', async () => {
    const task = await loadTask('boolq', { dataDir });
    expect(task.items).toHaveLength(ITEMS);
    expect(task.file).toBe(join(dataDir, 'tasks/boolq/validation.jsonl'));
    for (const [i, item] of task.items.entries()) {
      const r = row('tasks/boolq/validation.jsonl', i + 1);
      expect(item).toEqual({ contexts: [`${r['passage'] as string}\nQuestion: ${r['question'] as string}?\nAnswer:`], continuations: [' no', ' yes'], gold: r['label'], normLengths: [2, 3] });
    }
    expect(task.reportsAccNorm).toBe(false);
  });

  test('rte: "{s1}\\nQuestion: {s2} True or False?\\nAnswer:" -> " True" | " False", label 1 -> False', async () => {
    const r = row('tasks/rte/validation.jsonl');
    expect(await firstItem('rte')).toEqual({
      contexts: [`${r['sentence1'] as string}\nQuestion: ${r['sentence2'] as string} True or False?\nAnswer:`],
      continuations: [' True', ' False'],
      gold: r['label'],
      normLengths: [4, 5],
    });
  });

  test('hellaswag: "{activity_label}: {ctx_a} {Ctx_b}" -> " " + ending', async () => {
    const task = await loadTask('hellaswag', { dataDir });
    expect(task.items).toHaveLength(ITEMS);
    const r = row('tasks/hellaswag/validation.jsonl');
    const endings = r['endings'] as string[];
    expect(task.items[0]).toEqual({
      contexts: [`${r['activity_label'] as string}: ${r['ctx_a'] as string}`], // ctx_b is empty
      continuations: endings.map((e) => ` ${e}`),
      gold: Number(r['label']),
      normLengths: lens(endings),
    });
  });

  test('winogrande: partial contexts with each option, shared continuation after the blank', async () => {
    const r = row('tasks/winogrande/validation.jsonl');
    const s = r['sentence'] as string;
    const blank = s.indexOf('_');
    expect(await firstItem('winogrande')).toEqual({
      contexts: [s.slice(0, blank) + (r['option1'] as string), s.slice(0, blank) + (r['option2'] as string)],
      continuations: [' ' + s.slice(blank + 1).trim()],
      gold: Number(r['answer']) - 1,
      normLengths: null,
    });
  });

  test('arc_easy: "Question: {question}\\nAnswer:" -> " " + choice', async () => {
    const task = await loadTask('arc_easy', { dataDir });
    expect(task.file).toBe(join(dataDir, 'tasks/arc_easy/test.jsonl'));
    expect(task.items).toHaveLength(ITEMS);
    const r = row('tasks/arc_easy/test.jsonl');
    const c = choicesOf(r);
    expect(task.items[0]).toEqual({
      contexts: [`Question: ${r['question'] as string}\nAnswer:`],
      continuations: c.text.map((t) => ` ${t}`),
      gold: c.label.indexOf(r['answerKey'] as string),
      normLengths: lens(c.text),
    });
  });

  test('arc_challenge: same template, answerKey letter -> index', async () => {
    const r = row('tasks/arc_challenge/test.jsonl');
    const c = choicesOf(r);
    expect(await firstItem('arc_challenge')).toEqual({
      contexts: [`Question: ${r['question'] as string}\nAnswer:`],
      continuations: c.text.map((t) => ` ${t}`),
      gold: c.label.indexOf(r['answerKey'] as string),
      normLengths: lens(c.text),
    });
  });

  test('openbookqa: question_stem -> " " + choice', async () => {
    const r = row('tasks/openbookqa/test.jsonl');
    const c = choicesOf(r);
    expect(await firstItem('openbookqa')).toEqual({
      contexts: [r['question_stem']],
      continuations: c.text.map((t) => ` ${t}`),
      gold: c.label.indexOf(r['answerKey'] as string),
      normLengths: lens(c.text),
    });
  });

  test('generic rows: copa by name, piqa as a custom file', async () => {
    const copa = await loadTask('copa', { dataDir });
    expect(copa.file).toBe(join(dataDir, 'tasks/generic/copa.jsonl'));
    const r = row('tasks/generic/copa.jsonl');
    const choices = r['choices'] as string[];
    expect(copa.items[0]).toEqual({ contexts: [r['query']], continuations: choices.map((c) => ` ${c}`), gold: r['gold'], normLengths: lens(choices) });
    const piqa = await loadTask('my_piqa', { file: join(dataDir, 'tasks/generic/piqa.jsonl') });
    expect(piqa).toMatchObject({ name: 'my_piqa', displayName: 'my_piqa', reportsAccNorm: true });
    expect(piqa.items).toHaveLength(ITEMS);
    expect((piqa.items[0] as TaskItem).contexts).toEqual([row('tasks/generic/piqa.jsonl')['query']]);
    expect((piqa.items[0] as TaskItem).gold).toBe(row('tasks/generic/piqa.jsonl')['gold']);
  });

  test('registry: the paper tasks in order, acc_norm exactly for hellaswag, arc_easy, arc_challenge, openbookqa', () => {
    expect(PAPER_TASKS).toEqual(['boolq', 'rte', 'hellaswag', 'winogrande', 'arc_easy', 'arc_challenge', 'openbookqa']);
    expect(PAPER_TASKS.filter((t) => TASKS[t]?.reportsAccNorm)).toEqual(['hellaswag', 'arc_easy', 'arc_challenge', 'openbookqa']);
    expect(PAPER_TASKS.map((t) => TASKS[t]?.displayName)).toEqual([
      'BoolQ', 'RTE', 'HellaSwag', 'WinoGrande', 'ARC-e', 'ARC-c', 'OBQA',
    ]);
  });
});

describe('Python string semantics', () => {
  test('hellaswag preprocess matches Python (values computed with python3)', () => {
    expect(hellaswagPreprocess(' How to cook [title] Boil water.  [step] Add   salt [x]\n')).toBe('How to cook. Boil water.  Add  salt ');
    expect(hellaswagPreprocess('a [b\n c] d')).toBe('a [b\n c] d'); // `.` does not cross newlines
  });

  test('strip, rstrip, capitalize, len', () => {
    expect(pyStrip('\x1c a \x85')).toBe('a'); // Python whitespace, not JS \s
    expect(pyRstrip('Answer:\n \t')).toBe('Answer:');
    expect(pyStrip('\ufeffa')).toBe('\ufeffa'); // BOM is not whitespace in Python
    expect(pyCapitalize('the LADY')).toBe('The lady');
    expect(pyCapitalize('')).toBe('');
    expect(pyLen('a😀b')).toBe(3);
  });

  test('hellaswag capitalizes ctx_b Python-style', () => {
    const item = TASKS['hellaswag']!.toItem(
      { activity_label: 'Clean', ctx_a: 'A lady walks.', ctx_b: 'the LADY', endings: ['a', 'b'], label: 0 },
      { file: 'f', row: 1 },
    );
    expect(item.contexts).toEqual(['Clean: A lady walks. The lady']);
  });
});

describe('validation errors name file, row and field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tasks-test-'));
  function file(name: string, rows: unknown[]): string {
    const path = join(dir, name);
    writeFileSync(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    return path;
  }
  const boolqRow = { question: 'is it', passage: 'P', idx: 0, label: 1 };

  test('missing column', async () => {
    const f = file('boolq-missing.jsonl', [boolqRow, { question: 'q', idx: 1, label: 0 }]);
    await expect(loadTask('boolq', { file: f })).rejects.toThrow(
      new DataError(`${f}: row 2: missing field "passage" (expected a string; the row has: question, idx, label)`),
    );
  });

  test('wrong type', async () => {
    const f = file('boolq-type.jsonl', [{ ...boolqRow, question: 7 }]);
    await expect(loadTask('boolq', { file: f })).rejects.toThrow(
      new DataError(`${f}: row 1, field "question": expected a string, found the number 7`),
    );
  });

  test('label out of range', async () => {
    const f = file('boolq-label.jsonl', [boolqRow, boolqRow, { ...boolqRow, label: 2 }]);
    await expect(loadTask('boolq', { file: f })).rejects.toThrow(
      new DataError(`${f}: row 3, field "label": label 2 is out of range, expected 0 (no) or 1 (yes)`),
    );
    const arc = file('arc-key.jsonl', [{ question: 'q', choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'E' }]);
    await expect(loadTask('arc_easy', { file: arc })).rejects.toThrow(
      new DataError(`${arc}: row 1, field "answerKey": label "E" is out of range, expected one of A, B`),
    );
    const wino = file('wino-answer.jsonl', [{ sentence: 'a _ b', option1: 'x', option2: 'y', answer: '3' }]);
    await expect(loadTask('winogrande', { file: wino })).rejects.toThrow(
      new DataError(`${wino}: row 1, field "answer": label "3" is out of range, expected "1" or "2"`),
    );
    const generic = file('generic-gold.jsonl', [{ query: 'q', choices: ['a', 'b'], gold: -1 }]);
    await expect(loadTask('custom', { file: generic })).rejects.toThrow(
      new DataError(`${generic}: row 1, field "gold": label -1 is out of range, expected 0..1`),
    );
  });

  test('empty file', async () => {
    const f = file('empty.jsonl', []);
    // The file-level message comes from lib/data/sources.ts readRows: it names the file and says it is empty.
    await expect(loadTask('rte', { file: f })).rejects.toThrow(DataError);
    await expect(loadTask('rte', { file: f })).rejects.toThrow(new RegExp(`^${f}: .*empty`));
    // A row reader that returns nothing gets the adapter's own message.
    await expect(loadTask('rte', { file: 'x.jsonl', readRows: async () => [] })).rejects.toThrow(
      new DataError('x.jsonl: no rows; a rte file needs at least one item'),
    );
  });

  test('winogrande sentence without a blank', async () => {
    const f = file('wino-blank.jsonl', [{ sentence: 'no blank here', option1: 'x', option2: 'y', answer: '1' }]);
    await expect(loadTask('winogrande', { file: f })).rejects.toThrow(
      new DataError(`${f}: row 1, field "sentence": no "_" blank in "no blank here"`),
    );
  });

  test('custom files: WinoGrande layout, mixed layouts, unknown layout', () => {
    const wino = customTask('wsc', [{ context_options: ['A x', 'A y'], continuation: 'rest.', gold: 1 }], 'w.jsonl');
    expect(wino).toEqual({
      name: 'wsc',
      displayName: 'wsc',
      file: 'w.jsonl',
      reportsAccNorm: false,
      items: [{ contexts: ['A x', 'A y'], continuations: [' rest.'], gold: 1, normLengths: null }],
    });
    expect(() =>
      customTask('mixed', [{ query: 'q', choices: ['a', 'b'], gold: 0 }, { context_options: ['a', 'b'], continuation: 'c', gold: 0 }], 'm.jsonl'),
    ).toThrow(new DataError('m.jsonl: row 2: mixes layouts; row 1 has {query, choices, gold} but this row has "context_options"'));
    expect(() => customTask('odd', [{ text: 'x' }], 'o.jsonl')).toThrow(
      new DataError(
        'o.jsonl: row 1: not a multiple-choice row; expected fields {query, choices, gold} or ' +
          '{context_options, continuation, gold}, the row has: text',
      ),
    );
  });

  test('unknown task without a file, known task without a data folder, invalid JSON line', async () => {
    await expect(loadTask('squad')).rejects.toThrow(ConfigError);
    await expect(loadTask('boolq')).rejects.toThrow(
      new ConfigError('task "boolq": no file and no data folder given (need dataDir or file)'),
    );
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, JSON.stringify(boolqRow) + '\n{oops\n');
    await expect(loadTask('boolq', { file: f })).rejects.toThrow(DataError);
    await expect(loadTask('boolq', { file: f })).rejects.toThrow(`${f}:2: invalid JSON`);
  });

  test('rte from parquet gives the same items as from jsonl; limit reads the first rows', async () => {
    const parquet = join(dir, 'rte.parquet');
    writeFileSync(parquet, parquetOf(rows['tasks/rte/validation.jsonl']!));
    const fromParquet = await loadTask('rte', { file: parquet });
    const fromJsonl = await loadTask('rte', { dataDir });
    expect(fromParquet.items).toHaveLength(ITEMS);
    expect(fromParquet.items).toEqual(fromJsonl.items);
    const first = await loadTask('hellaswag', { dataDir, limit: 3 });
    expect(first.items).toHaveLength(3);
    expect((first.items[2] as TaskItem).gold).toBe(Number(rows['tasks/hellaswag/validation.jsonl']![2]!['label']));
    await expect(loadTask('rte', { dataDir, limit: 0 })).rejects.toThrow(
      new ConfigError('task "rte": limit 0 is not a positive integer'),
    );
  });

  test('a row reader can be injected', async () => {
    const task = await loadTask('rte', {
      file: 'virtual.parquet',
      readRows: async () => [{ sentence1: 'A.', sentence2: 'B.', label: 0, idx: 0 }],
    });
    expect(task.items).toEqual([
      { contexts: ['A.\nQuestion: B. True or False?\nAnswer:'], continuations: [' True', ' False'], gold: 0, normLengths: [4, 5] },
    ]);
  });
});
