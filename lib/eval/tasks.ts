/**
 * Zero-shot multiple-choice tasks as data (docs/methods.md section 5): one adapter per task turns a row in the Hugging
 * Face column schema into an item of candidate (context, continuation) pairs, exactly as lm-evaluation-harness
 * builds its requests. Nothing here needs a model or a tokenizer; see harness.ts for tokenization and scoring.
 *
 * Conventions copied from lm-evaluation-harness (checked against its sources):
 * - the target delimiter is one space: a choice `c` is scored as the continuation `" " + c`;
 * - `acc_norm` divides the log-likelihood by `len(c)`, the choice text WITHOUT that leading space
 *   (`completion_len = [len(i) for i in choices]`), counted in Unicode code points like Python's `len`;
 * - HellaSwag's `preprocess` and WinoGrande's partial evaluation (the blank filled with each option, the rest of the
 *   sentence scored as the shared continuation) are reproduced with Python's string semantics (`strip`,
 *   `capitalize`, `re.sub`).
 */
import { join } from 'node:path';
import { readRows } from '../data/sources.js';
import { ConfigError, DataError } from '../errors.js';

/** One multiple-choice question, ready for tokenization. */
export interface TaskItem {
  /** One context shared by every choice, or one per choice (WinoGrande style). */
  contexts: string[];
  /** One continuation per choice, or one shared by every context (WinoGrande style). */
  continuations: string[];
  /** Index of the correct choice. */
  gold: number;
  /**
   * Divisor of each choice's log-likelihood for `acc_norm`: the choice text's length in code points, without the
   * leading target delimiter (lm-eval's `completion_len`). `null` for items whose task does not report acc_norm.
   */
  normLengths: number[] | null;
}

/** Where a row came from, for error messages: the file and the 1-based row number. */
export interface RowRef {
  file: string;
  row: number;
}

/** A task adapter: how one row of a data file becomes an item. */
export interface TaskSpec {
  /** Registry key, as given on the command line (`arc_easy`). */
  name: string;
  /** Column header in result tables (`ARC-e`), as in the paper. */
  displayName: string;
  /** Default data file, relative to a data folder laid out like shared/data (`tasks/arc_easy/test.jsonl`). */
  defaultFile: string;
  /** The prompt in words: template and continuations, for `--help` and docs. */
  template: string;
  /** Whether lm-eval reports `acc_norm` for this task (it always reports `acc`). */
  reportsAccNorm: boolean;
  /** Build the item of one row; throws DataError naming the file, row and field when the row is malformed. */
  toItem(row: Record<string, unknown>, at: RowRef): TaskItem;
}

/** A task's items read from its file. */
export interface LoadedTask {
  name: string;
  displayName: string;
  file: string;
  reportsAccNorm: boolean;
  items: TaskItem[];
}

/** Reads the rows of a data file (jsonl, json, jsonl.gz, parquet in lib/data/sources.ts). */
export type RowReader = (file: string) => Promise<Record<string, unknown>[]>;

// ---------------------------------------------------------------------------------------------------------------
// Python string semantics the reference relies on.

/** Python's `str.isspace` characters (what `strip()` / `rstrip()` remove); differs from JS `\s` in \x1c-\x1f, \x85, \ufeff. */
const PY_WHITESPACE = new Set(
  [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f]
    .concat([0x3000], Array.from({ length: 11 }, (_, i) => 0x2000 + i))
    .map((c) => String.fromCharCode(c)),
);

/** Python `s.rstrip()`. (Every Python whitespace character is a single UTF-16 unit.) */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_WHITESPACE.has(s.charAt(end - 1))) end--;
  return s.slice(0, end);
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  let start = 0;
  while (start < s.length && PY_WHITESPACE.has(s.charAt(start))) start++;
  return s.slice(start);
}

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return pyLstrip(pyRstrip(s));
}

/**
 * Python `s.capitalize()`: first character upper-cased, the rest lower-cased. (Python title-cases the first
 * character; the two differ only for a few digraphs such as U+01C6, which upper-case to U+01C4 instead of U+01C5.)
 */
export function pyCapitalize(s: string): string {
  const chars = [...s];
  if (chars.length === 0) return s;
  return (chars[0] as string).toUpperCase() + chars.slice(1).join('').toLowerCase();
}

/** Python `len(s)`: Unicode code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * HellaSwag's cleanup (lm-eval `preprocess`): strip; `" [title]"` -> `". "`; drop `[...]` spans (non-greedy, not
 * across newlines); one pass of `"  "` -> `" "` (Python `str.replace`, non-overlapping, so three spaces become two).
 */
export function hellaswagPreprocess(text: string): string {
  let t = pyStrip(text);
  t = t.split(' [title]').join('. ');
  t = t.replace(/\[.*?\]/g, '');
  t = t.split('  ').join(' ');
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Row field access with errors that name file, row and field.

function at(ref: RowRef, field?: string): string {
  return field === undefined ? `${ref.file}: row ${ref.row}` : `${ref.file}: row ${ref.row}, field "${field}"`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '...' : value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a value of type ${typeof value}`;
}

function need(row: Record<string, unknown>, ref: RowRef, field: string, expected: string): unknown {
  if (!(field in row) || row[field] === undefined) {
    const has = Object.keys(row).join(', ') || 'none';
    throw new DataError(`${at(ref)}: missing field "${field}" (expected ${expected}; the row has: ${has})`);
  }
  return row[field];
}

function str(row: Record<string, unknown>, ref: RowRef, field: string): string {
  const v = need(row, ref, field, 'a string');
  if (typeof v !== 'string') throw new DataError(`${at(ref, field)}: expected a string, found ${describe(v)}`);
  return v;
}

function strArray(value: unknown, ref: RowRef, field: string, minLength: number): string[] {
  if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) {
    throw new DataError(`${at(ref, field)}: expected an array of strings, found ${describe(value)}`);
  }
  if (value.length < minLength) {
    throw new DataError(`${at(ref, field)}: expected at least ${minLength} entries, found ${value.length}`);
  }
  return value as string[];
}

/** An integer label in [0, n): a number, or a string of digits (Hugging Face stores HellaSwag's label as "0".."3"). */
function label(value: unknown, ref: RowRef, field: string, n: number, meaning: string): number {
  const k = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (typeof value !== 'number' && typeof value !== 'string') {
    throw new DataError(`${at(ref, field)}: expected an integer label (${meaning}), found ${describe(value)}`);
  }
  if (!Number.isInteger(k) || k < 0 || k >= n) {
    throw new DataError(`${at(ref, field)}: label ${JSON.stringify(value)} is out of range, expected ${meaning}`);
  }
  return k;
}

/** Fill `{field}` placeholders of a template with string columns of the row. */
function fill(template: string, row: Record<string, unknown>, ref: RowRef): string {
  return template.replace(/\{(\w+)\}/g, (_, field: string) => str(row, ref, field));
}

/** `{choices: {text: [...], label: [...]}, answerKey}` (ARC, OpenBookQA): the texts and the gold index. */
function labelledChoices(row: Record<string, unknown>, ref: RowRef): { texts: string[]; gold: number } {
  const choices = need(row, ref, 'choices', 'an object {text, label}');
  if (choices === null || typeof choices !== 'object' || Array.isArray(choices)) {
    throw new DataError(`${at(ref, 'choices')}: expected an object {text, label}, found ${describe(choices)}`);
  }
  const c = choices as Record<string, unknown>;
  const texts = strArray(c['text'], ref, 'choices.text', 2);
  const labels = strArray(c['label'], ref, 'choices.label', 2);
  if (labels.length !== texts.length) {
    throw new DataError(`${at(ref, 'choices')}: ${texts.length} texts but ${labels.length} labels`);
  }
  // lm-eval: gold = choices.label.index(answerKey.lstrip()) (OpenBookQA keys may carry spaces).
  const key = str(row, ref, 'answerKey');
  const gold = labels.indexOf(pyLstrip(key));
  if (gold < 0) {
    throw new DataError(
      `${at(ref, 'answerKey')}: label ${JSON.stringify(key)} is out of range, expected one of ${labels.join(', ')}`,
    );
  }
  return { texts, gold };
}

/** Continuations `" " + choice` and their acc_norm lengths (the choice without the space). */
function spaced(choices: string[]): { continuations: string[]; normLengths: number[] } {
  return { continuations: choices.map((c) => ' ' + c), normLengths: choices.map(pyLen) };
}

// ---------------------------------------------------------------------------------------------------------------
// Custom multiple-choice rows.

/**
 * A custom row: `{query, choices, gold}` (context `query`, continuations `" " + choice`, acc_norm lengths as
 * lm-eval's MultipleChoiceTask) or `{context_options, continuation, gold}` (WinoGrande style: each option is a
 * context, `" " + continuation` is scored under each; no acc_norm).
 */
export function genericItem(row: Record<string, unknown>, ref: RowRef): TaskItem {
  if ('context_options' in row) {
    const contexts = strArray(row['context_options'], ref, 'context_options', 2);
    const continuation = str(row, ref, 'continuation');
    const gold = label(need(row, ref, 'gold', 'an integer'), ref, 'gold', contexts.length, `0..${contexts.length - 1}`);
    return { contexts, continuations: [' ' + continuation], gold, normLengths: null };
  }
  if (!('query' in row) && !('choices' in row)) {
    throw new DataError(
      `${at(ref)}: not a multiple-choice row; expected fields {query, choices, gold} or ` +
        `{context_options, continuation, gold}, the row has: ${Object.keys(row).join(', ') || 'none'}`,
    );
  }
  const query = str(row, ref, 'query');
  const choices = strArray(need(row, ref, 'choices', 'an array of strings'), ref, 'choices', 2);
  const gold = label(need(row, ref, 'gold', 'an integer'), ref, 'gold', choices.length, `0..${choices.length - 1}`);
  return { contexts: [query], ...spaced(choices), gold };
}

/** The two custom-row layouts; a file must use one of them throughout. */
function genericLayout(row: Record<string, unknown>): 'choices' | 'context_options' {
  return 'context_options' in row ? 'context_options' : 'choices';
}

// ---------------------------------------------------------------------------------------------------------------
// The registry: the seven tasks of the paper, then the two generic examples shipped in shared/data.

const BOOLQ_TEMPLATE = '{passage}\nQuestion: {question}?\nAnswer:';
const RTE_TEMPLATE = '{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:';
const ARC_TEMPLATE = 'Question: {question}\nAnswer:';

function arcSpec(name: string, displayName: string): TaskSpec {
  return {
    name,
    displayName,
    defaultFile: `tasks/${name}/test.jsonl`,
    template: `"${ARC_TEMPLATE}" -> " " + choices.text[i]; gold = choices.label.index(answerKey)`,
    reportsAccNorm: true,
    toItem(row, ref) {
      const { texts, gold } = labelledChoices(row, ref);
      return { contexts: [fill(ARC_TEMPLATE, row, ref)], ...spaced(texts), gold };
    },
  };
}

/** Every named task. The paper's seven come first, in the paper's column order. */
export const TASKS: Readonly<Record<string, TaskSpec>> = {
  boolq: {
    name: 'boolq',
    displayName: 'BoolQ',
    defaultFile: 'tasks/boolq/validation.jsonl',
    template: `"${BOOLQ_TEMPLATE}" -> " no" | " yes"; label 1 = yes`,
    reportsAccNorm: false,
    toItem(row, ref) {
      const context = fill(BOOLQ_TEMPLATE, row, ref);
      const gold = label(need(row, ref, 'label', 'an integer'), ref, 'label', 2, '0 (no) or 1 (yes)');
      return { contexts: [context], ...spaced(['no', 'yes']), gold };
    },
  },
  rte: {
    name: 'rte',
    displayName: 'RTE',
    defaultFile: 'tasks/rte/validation.jsonl',
    template: `"${RTE_TEMPLATE}" -> " True" | " False"; label 0 (entailment) = True`,
    reportsAccNorm: false,
    toItem(row, ref) {
      const context = fill(RTE_TEMPLATE, row, ref);
      const gold = label(need(row, ref, 'label', 'an integer'), ref, 'label', 2, '0 (entailment) or 1 (not entailment)');
      return { contexts: [context], ...spaced(['True', 'False']), gold };
    },
  },
  hellaswag: {
    name: 'hellaswag',
    displayName: 'HellaSwag',
    defaultFile: 'tasks/hellaswag/validation.jsonl',
    template:
      'clean(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)) -> " " + clean(endings[i]); ' +
      'clean = strip, " [title]" -> ". ", drop [...], "  " -> " "',
    reportsAccNorm: true,
    toItem(row, ref) {
      const ctx = str(row, ref, 'ctx_a') + ' ' + pyCapitalize(str(row, ref, 'ctx_b'));
      const context = hellaswagPreprocess(str(row, ref, 'activity_label') + ': ' + ctx);
      const endings = strArray(need(row, ref, 'endings', 'an array of strings'), ref, 'endings', 2);
      const gold = label(need(row, ref, 'label', 'an integer'), ref, 'label', endings.length, `0..${endings.length - 1}`);
      return { contexts: [context], ...spaced(endings.map(hellaswagPreprocess)), gold };
    },
  },
  winogrande: {
    name: 'winogrande',
    displayName: 'WinoGrande',
    defaultFile: 'tasks/winogrande/validation.jsonl',
    template:
      'sentence[:i] + option{1,2} -> " " + sentence[i+1:].strip() (i = index of "_"), scored under both contexts; ' +
      'answer "1" | "2"',
    reportsAccNorm: false,
    toItem(row, ref) {
      const sentence = str(row, ref, 'sentence');
      const blank = sentence.indexOf('_');
      if (blank < 0) {
        throw new DataError(`${at(ref, 'sentence')}: no "_" blank in ${JSON.stringify(sentence)}`);
      }
      const options = [str(row, ref, 'option1'), str(row, ref, 'option2')];
      const answer = need(row, ref, 'answer', 'a string');
      if (typeof answer !== 'string' && typeof answer !== 'number') {
        throw new DataError(`${at(ref, 'answer')}: expected "1" or "2", found ${describe(answer)}`);
      }
      const gold = ['1', '2'].indexOf(String(answer));
      if (gold < 0) {
        throw new DataError(`${at(ref, 'answer')}: label ${JSON.stringify(answer)} is out of range, expected "1" or "2"`);
      }
      return {
        contexts: options.map((o) => sentence.slice(0, blank) + o),
        continuations: [' ' + pyStrip(sentence.slice(blank + 1))],
        gold,
        normLengths: null,
      };
    },
  },
  arc_easy: arcSpec('arc_easy', 'ARC-e'),
  arc_challenge: arcSpec('arc_challenge', 'ARC-c'),
  openbookqa: {
    name: 'openbookqa',
    displayName: 'OBQA',
    defaultFile: 'tasks/openbookqa/test.jsonl',
    template: 'question_stem -> " " + choices.text[i]; gold = choices.label.index(answerKey.lstrip())',
    reportsAccNorm: true,
    toItem(row, ref) {
      const { texts, gold } = labelledChoices(row, ref);
      return { contexts: [str(row, ref, 'question_stem')], ...spaced(texts), gold };
    },
  },
  piqa: {
    name: 'piqa',
    displayName: 'PIQA',
    defaultFile: 'tasks/generic/piqa.jsonl',
    template: 'query -> " " + choices[i] (generic rows)',
    reportsAccNorm: true,
    toItem: genericItem,
  },
  copa: {
    name: 'copa',
    displayName: 'COPA',
    defaultFile: 'tasks/generic/copa.jsonl',
    template: 'query -> " " + choices[i] (generic rows)',
    reportsAccNorm: false,
    toItem: genericItem,
  },
};

/** The seven tasks of the paper's zero-shot table, in its column order. */
export const PAPER_TASKS = ['boolq', 'rte', 'hellaswag', 'winogrande', 'arc_easy', 'arc_challenge', 'openbookqa'] as const;

// ---------------------------------------------------------------------------------------------------------------
// Loading.

/**
 * Items of rows through an adapter; row numbers in errors are 1-based. Throws DataError for an empty file.
 * Every row must be an object.
 */
export function itemsOf(spec: Pick<TaskSpec, 'name' | 'toItem'>, rows: unknown[], file: string): TaskItem[] {
  if (rows.length === 0) throw new DataError(`${file}: no rows; a ${spec.name} file needs at least one item`);
  return rows.map((row, i) => {
    const ref = { file, row: i + 1 };
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new DataError(`${at(ref)}: expected an object, found ${describe(row)}`);
    }
    return spec.toItem(row as Record<string, unknown>, ref);
  });
}

export interface LoadTaskOptions {
  /** Folder laid out like shared/data; the task's default file is looked up under it. */
  dataDir?: string;
  /** Explicit file, overriding the default one. */
  file?: string;
  /** Read only the first N rows (a positive integer) of the file; default all. */
  limit?: number;
  /** Row reader; default lib/data/sources.ts `readRows` (jsonl, json, gz, parquet, by extension). */
  readRows?: RowReader;
}

/**
 * Load a task by name: one of TASKS from `file` or `dataDir/defaultFile`, or any other name with `file`, read as a
 * custom multiple-choice file (see genericItem; acc_norm is reported for the `{query, choices, gold}` layout).
 */
export async function loadTask(name: string, options: LoadTaskOptions = {}): Promise<LoadedTask> {
  const spec = TASKS[name];
  if (spec === undefined && options.file === undefined) {
    throw new ConfigError(
      `task "${name}": unknown; known tasks are ${Object.keys(TASKS).join(', ')}, ` +
        'or give a file of {query, choices, gold} or {context_options, continuation, gold} rows',
    );
  }
  let file = options.file;
  if (file === undefined) {
    if (options.dataDir === undefined) {
      throw new ConfigError(`task "${name}": no file and no data folder given (need dataDir or file)`);
    }
    file = join(options.dataDir, (spec as TaskSpec).defaultFile);
  }
  const { limit } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new ConfigError(`task "${name}": limit ${limit} is not a positive integer`);
  }
  const read = options.readRows ?? ((f: string) => readRows(f, limit === undefined ? {} : { limit }));
  const rows = (await read(file)).slice(0, limit);
  if (spec !== undefined) {
    return { name, displayName: spec.displayName, file, reportsAccNorm: spec.reportsAccNorm, items: itemsOf(spec, rows, file) };
  }
  return customTask(name, rows, file);
}

/** A custom task from rows already read: the layout of row 1 must hold for every row. */
export function customTask(name: string, rows: unknown[], file: string): LoadedTask {
  const first = rows[0];
  const layout = first !== null && typeof first === 'object' ? genericLayout(first as Record<string, unknown>) : 'choices';
  const items = itemsOf(
    {
      name,
      toItem(row, ref) {
        if (genericLayout(row) !== layout) {
          throw new DataError(
            `${at(ref)}: mixes layouts; row 1 has ${layout === 'choices' ? '{query, choices, gold}' : '{context_options, continuation, gold}'} ` +
              `but this row has ${layout === 'choices' ? '"context_options"' : 'no "context_options"'}`,
          );
        }
        return genericItem(row, ref);
      },
    },
    rows,
    file,
  );
  return { name, displayName: name, file, reportsAccNorm: layout === 'choices', items };
}
