/**
 * The task adapters on the first rows of the shared task files (the real datasets in the Hugging Face column
 * schemas): pinned items, row counts, Parquet vs JSONL. test/eval/tasks.test.ts checks the adapters on seeded rows.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import { loadTask, type TaskItem } from '../../lib/eval/tasks.js';
import { sharedPath } from '../helpers/shared.js';

const dataDir = sharedPath('data');

/** Row `n` (1-based) of a shared task file, parsed independently of the loader. */
function rawRow(file: string, n: number): Record<string, unknown> {
  const line = readFileSync(sharedPath('data', file), 'utf8').split('\n')[n - 1] as string;
  return JSON.parse(line) as Record<string, unknown>;
}

async function firstItem(name: string): Promise<TaskItem> {
  const task = await loadTask(name, { dataDir });
  return task.items[0] as TaskItem;
}

describe('task adapters on the first row of each shared file', () => {
  test('boolq: "{passage}\\nQuestion: {question}?\\nAnswer:" -> " no" | " yes"', async () => {
    const task = await loadTask('boolq', { dataDir });
    expect(task.items).toHaveLength(3270);
    expect(task.file).toBe(join(dataDir, 'tasks/boolq/validation.jsonl'));
    const row = rawRow('tasks/boolq/validation.jsonl', 1);
    const item = task.items[0] as TaskItem;
    expect(item.contexts).toEqual([
      `${row['passage'] as string}\nQuestion: does ethanol take more energy make that produces?\nAnswer:`,
    ]);
    expect((item.contexts[0] as string).startsWith('All biomass goes through at least some of these steps')).toBe(true);
    expect(item.continuations).toEqual([' no', ' yes']);
    expect(item.gold).toBe(0); // label 0 = no
    expect(task.reportsAccNorm).toBe(false);
  });

  test('rte: "{s1}\\nQuestion: {s2} True or False?\\nAnswer:" -> " True" | " False", label 1 -> False', async () => {
    expect(await firstItem('rte')).toEqual({
      contexts: [
        'Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the ' +
          'Christopher Reeve Foundation.\nQuestion: Christopher Reeve had an accident. True or False?\nAnswer:',
      ],
      continuations: [' True', ' False'],
      gold: 1,
      normLengths: [4, 5],
    });
  });

  test('hellaswag: "{activity_label}: {ctx_a} {Ctx_b}" cleaned -> " " + ending', async () => {
    const task = await loadTask('hellaswag', { dataDir });
    expect(task.items).toHaveLength(10042);
    expect(task.items[0]).toEqual({
      contexts: ['Roof shingle removal: A man is sitting on a roof. he'],
      continuations: [
        ' is using wrap to wrap a pair of skis.',
        ' is ripping level tiles off.',
        " is holding a rubik's cube.",
        ' starts pulling up roofing on a roof.',
      ],
      gold: 3,
      normLengths: [37, 27, 26, 36],
    });
    // Row 3506 keeps a [www...] span in ctx_a: the harness cleanup drops it and the double space it leaves.
    expect((task.items[3505] as TaskItem).contexts).toEqual([
      'Family Life: How to entertain a toddler. Ask the toddler what he or she would like to do instead of doing ' +
        'what you would like to do.. Visit a site like to find loads of creative activities for toddlers and ' +
        'preschoolers.. Choose small, simple games like candy land or chutes and ladders.',
    ]);
    expect((task.items[3505] as TaskItem).gold).toBe(1);
  });

  test('winogrande: partial contexts with each option, shared continuation after the blank', async () => {
    expect(await firstItem('winogrande')).toEqual({
      contexts: [
        'Sarah was a much better surgeon than Maria so Sarah',
        'Sarah was a much better surgeon than Maria so Maria',
      ],
      continuations: [' always got the easier cases.'],
      gold: 1, // answer "2"
      normLengths: null,
    });
  });

  test('arc_easy: "Question: {question}\\nAnswer:" -> " " + choice', async () => {
    const task = await loadTask('arc_easy', { dataDir });
    expect(task.file).toBe(join(dataDir, 'tasks/arc_easy/test.jsonl'));
    expect(task.items).toHaveLength(2376);
    expect(task.items[0]).toEqual({
      contexts: ['Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:'],
      continuations: [
        ' Sunlight is the source of energy for nearly all ecosystems.',
        ' Most ecosystems are found on land instead of in water.',
        ' Carbon dioxide is more available than other gases.',
        ' The producers in all ecosystems are plants.',
      ],
      gold: 0,
      normLengths: [59, 54, 50, 43],
    });
  });

  test('arc_challenge: same template, answerKey C -> 2', async () => {
    expect(await firstItem('arc_challenge')).toEqual({
      contexts: [
        'Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most ' +
          'likely effect of this increase in rotation?\nAnswer:',
      ],
      continuations: [
        ' Planetary density will decrease.',
        ' Planetary years will become longer.',
        ' Planetary days will become shorter.',
        ' Planetary gravity will become stronger.',
      ],
      gold: 2,
      normLengths: [32, 35, 35, 39],
    });
  });

  test('openbookqa: question_stem -> " " + choice', async () => {
    expect(await firstItem('openbookqa')).toEqual({
      contexts: [
        'A person wants to start saving money so that they can afford a nice vacation at the end of the year. After ' +
          'looking over their budget and expenses, they decide the best way to save money is to',
      ],
      continuations: [' make more phone calls', ' quit eating lunch out', ' buy less with monopoly money', ' have lunch with friends'],
      gold: 1,
      normLengths: [21, 21, 28, 23],
    });
  });

  test('generic rows: copa by name, piqa as a custom file', async () => {
    const copa = await loadTask('copa', { dataDir });
    expect(copa.file).toBe(join(dataDir, 'tasks/generic/copa.jsonl'));
    expect(copa.items[0]).toEqual({
      contexts: ['The man turned on the faucet, therefore'],
      continuations: [' the toilet filled with water.', ' water flowed from the spout.'],
      gold: 1,
      normLengths: [29, 28],
    });
    const piqa = await loadTask('my_piqa', { file: sharedPath('data', 'tasks/generic/piqa.jsonl') });
    expect(piqa).toMatchObject({ name: 'my_piqa', displayName: 'my_piqa', reportsAccNorm: true });
    expect(piqa.items).toHaveLength(1838);
    expect((piqa.items[0] as TaskItem).contexts).toEqual(["Question: How do I ready a guinea pig cage for it's new occupants?\n"]);
    expect((piqa.items[0] as TaskItem).gold).toBe(0);
  });
});

describe('Parquet and limits on the shared files', () => {
  test('rte from parquet gives the same items as from jsonl; limit reads the first rows', async () => {
    const fromParquet = await loadTask('rte', { file: sharedPath('data', 'tasks/rte/validation.parquet') });
    const fromJsonl = await loadTask('rte', { dataDir });
    expect(fromParquet.items).toHaveLength(277);
    expect(fromParquet.items).toEqual(fromJsonl.items);
    const first = await loadTask('hellaswag', { dataDir, limit: 3 });
    expect(first.items).toHaveLength(3);
    expect((first.items[2] as TaskItem).gold).toBe(2); // row 3: label "2"
    await expect(loadTask('rte', { dataDir, limit: 0 })).rejects.toThrow(
      new ConfigError('task "rte": limit 0 is not a positive integer'),
    );
  });
});
