/**
 * Seeded English-like text and data files laid out like shared/data, for tests that must not need the shared data.
 *
 *   writeSyntheticData(join(tmp, 'data'));   // c4/, wikitext-2-raw-v1/, tasks/<name>/ with the real files' names
 *   syntheticDocs(100, 3)                     // C4-like rows {text, timestamp, url}
 *
 * Words come from a small list of common English words (Zipf-like frequencies) mixed with pseudo-words built from
 * syllables, so BPE has something to learn and documents differ. The same arguments always give the same values.
 * The task rows use the Hugging Face column schemas of the shared files (see shared/README.md).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TinyRandom } from './tiny-random.js';

const COMMON = (
  'the of and to a in is it you that he was for on are with as I his they be at one have this from or had by hot ' +
  'word but what some we can out other were all there when up use your how said an each she which do their time if ' +
  'will way about many then them write would like so these her long make thing see him two has look more day could ' +
  'go come did number sound no most people my over know water than call first who may down side been now find any ' +
  'new work part take get place made live where after back little only round man year came show every good me give ' +
  'our under name very through just form sentence great think say help low line differ turn cause much mean before ' +
  'move right boy old too same tell does set three want air well also play small end put home read hand port large ' +
  'spell add even land here must big high such follow act why ask men change went light kind off need house picture'
).split(' ');
const ONSETS = ['b', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'br', 'st', 'tr', 'ch', 'sh', 'pl', 'gr', ''];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ea', 'ou', 'ai', 'y'];
const CODAS = ['', '', '', 'n', 'r', 's', 't', 'l', 'nd', 'ng', 'st', 'ck', 'm'];

function pick<T>(rng: TinyRandom, xs: readonly T[]): T {
  return xs[Math.floor(rng.uniform() * xs.length)]!;
}

/** One word: a common word (Zipf-like: rank r with weight ~1/(r+1)) or a pseudo-word of 1-4 syllables. */
function word(rng: TinyRandom): string {
  if (rng.uniform() < 0.6) return COMMON[Math.min(COMMON.length - 1, Math.floor(Math.exp(rng.uniform() * Math.log(COMMON.length + 1)) - 1))]!;
  const syllables = 1 + Math.floor(rng.uniform() * 4);
  let w = '';
  for (let s = 0; s < syllables; s++) w += pick(rng, ONSETS) + pick(rng, VOWELS) + pick(rng, CODAS);
  return w;
}

/** `n` words (lower case, no punctuation). */
export function syntheticWords(n: number, seed: number): string[] {
  const rng = new TinyRandom(seed);
  return Array.from({ length: n }, () => word(rng));
}

/** A sentence of 4-16 words: capitalized, sometimes a comma or a number, ending with `.`, `?` or `!`. */
function sentence(rng: TinyRandom): string {
  const n = 4 + Math.floor(rng.uniform() * 13);
  const ws: string[] = [];
  for (let i = 0; i < n; i++) {
    let w = rng.uniform() < 0.04 ? String(Math.floor(rng.uniform() * 2000)) : word(rng);
    if (i + 1 < n && rng.uniform() < 0.08) w += ',';
    ws.push(w);
  }
  const first = ws[0]!;
  ws[0] = first.charAt(0).toUpperCase() + first.slice(1);
  const u = rng.uniform();
  return ws.join(' ') + (u < 0.85 ? '.' : u < 0.93 ? '?' : '!');
}

/** `n` sentences joined by spaces. */
export function syntheticParagraph(rng: TinyRandom, n: number): string {
  return Array.from({ length: n }, () => sentence(rng)).join(' ');
}

/** C4-like documents: {text, timestamp, url}, 1-4 paragraphs of 2-8 sentences separated by newlines. */
export function syntheticDocs(n: number, seed: number): { text: string; timestamp: string; url: string }[] {
  const rng = new TinyRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const paras = 1 + Math.floor(rng.uniform() * 4);
    const text = Array.from({ length: paras }, () => syntheticParagraph(rng, 2 + Math.floor(rng.uniform() * 7))).join('\n');
    const day = String(1 + (i % 28)).padStart(2, '0');
    return { text, timestamp: `2019-04-${day}T12:00:00Z`, url: `https://example.com/${word(rng)}/${i}` };
  });
}

/**
 * WikiText-2-raw-like rows {text}: articles of ` = Title = ` headings, ` = = Section = = ` subheadings and
 * paragraphs, each line followed by an empty row and ending with `\n`, as the real test split.
 */
export function syntheticWikiRows(articles: number, seed: number): { text: string }[] {
  const rng = new TinyRandom(seed);
  const rows: { text: string }[] = [];
  const line = (s: string) => rows.push({ text: '' }, { text: ` ${s} \n` });
  const title = () => word(rng).replace(/^./, (c) => c.toUpperCase()) + ' ' + word(rng);
  for (let a = 0; a < articles; a++) {
    line(`= ${title()} =`);
    for (let s = 0; s < 2 + Math.floor(rng.uniform() * 3); s++) {
      if (s > 0) line(`= = ${title()} = =`);
      for (let p = 0; p < 1 + Math.floor(rng.uniform() * 3); p++) line(syntheticParagraph(rng, 3 + Math.floor(rng.uniform() * 6)));
    }
  }
  return rows;
}

type Row = Record<string, unknown>;

const LABELS = ['A', 'B', 'C', 'D'];

/** Task rows in the Hugging Face column schemas of the shared task files, by file name under data/. */
export function syntheticTaskRows(n: number, seed: number): Record<string, Row[]> {
  const rng = new TinyRandom(seed);
  const s = () => sentence(rng);
  const short = () => Array.from({ length: 1 + Math.floor(rng.uniform() * 4) }, () => word(rng)).join(' ');
  const rows = (f: (i: number) => Row): Row[] => Array.from({ length: n }, (_, i) => f(i));
  const arc = () =>
    rows((i) => {
      const k = 3 + Math.floor(rng.uniform() * 2);
      return { id: `arc-${i}`, question: s().replace(/.$/, '?'), choices: { text: Array.from({ length: k }, short), label: LABELS.slice(0, k) }, answerKey: pick(rng, LABELS.slice(0, k)) };
    });
  return {
    'tasks/boolq/validation.jsonl': rows((i) => ({ question: s().replace(/.$/, '').toLowerCase(), passage: syntheticParagraph(rng, 3), idx: i, label: rng.uniform() < 0.6 ? 1 : 0 })),
    'tasks/rte/validation.jsonl': rows((i) => ({ sentence1: syntheticParagraph(rng, 2), sentence2: s(), label: rng.uniform() < 0.5 ? 0 : 1, idx: i })),
    'tasks/hellaswag/validation.jsonl': rows((i) => ({
      ind: i,
      activity_label: short(),
      ctx_a: s(),
      ctx_b: '',
      ctx: '',
      endings: Array.from({ length: 4 }, s),
      source_id: `synthetic~${i}`,
      split: 'val',
      split_type: 'indomain',
      label: String(Math.floor(rng.uniform() * 4)),
    })),
    'tasks/winogrande/validation.jsonl': rows(() => {
      const w = s().split(' ');
      w[Math.floor(w.length / 2)] = '_';
      return { sentence: w.join(' '), option1: word(rng), option2: word(rng), answer: rng.uniform() < 0.5 ? '1' : '2' };
    }),
    'tasks/arc_easy/test.jsonl': arc(),
    'tasks/arc_challenge/test.jsonl': arc(),
    'tasks/openbookqa/test.jsonl': rows(() => ({ question_stem: s(), choices: { text: Array.from({ length: 4 }, short), label: LABELS }, answerKey: pick(rng, LABELS) })),
    'tasks/generic/piqa.jsonl': rows(() => ({ query: `Question: ${s()}\nAnswer:`, choices: [s(), s()], gold: rng.uniform() < 0.5 ? 0 : 1 })),
    'tasks/generic/copa.jsonl': rows(() => ({ query: s().replace(/.$/, ' because'), choices: [short(), short()], gold: rng.uniform() < 0.5 ? 0 : 1 })),
  };
}

/** Rows as JSON lines, each ending with a newline. */
export function jsonl(rows: readonly unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** File names of writeSyntheticData, relative to the data folder (the shared files' names). */
export const SYNTHETIC_C4 = 'c4/c4-train.00000-of-01024.head1000.jsonl';
export const SYNTHETIC_WIKI = 'wikitext-2-raw-v1/test.jsonl';

/**
 * A data folder laid out like shared/data (JSON lines): `docs` C4-like documents, `articles` WikiText articles and
 * `items` rows of each task file. Returns `dir`.
 */
export function writeSyntheticData(dir: string, options: { docs?: number; articles?: number; items?: number; seed?: number } = {}): string {
  const seed = options.seed ?? 1;
  const files: Record<string, string> = {
    [SYNTHETIC_C4]: jsonl(syntheticDocs(options.docs ?? 200, seed)),
    [SYNTHETIC_WIKI]: jsonl(syntheticWikiRows(options.articles ?? 12, seed + 1)),
  };
  for (const [f, rows] of Object.entries(syntheticTaskRows(options.items ?? 40, seed + 2))) files[f] = jsonl(rows);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

/**
 * A stand-in for the shared folder in `dir`: models/<name>/ for each name (written by `writeModel`, e.g. a tiny
 * checkpoint) and data/ from writeSyntheticData. Returns `dir`.
 */
export function writeStandInShared(dir: string, models: string[], writeModel: (dir: string) => void): string {
  for (const m of models) writeModel(join(dir, 'models', m));
  writeSyntheticData(join(dir, 'data'), { docs: 20, articles: 2, items: 5 });
  return dir;
}
