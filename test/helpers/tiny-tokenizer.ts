/**
 * A small real BPE tokenizer written by code, for tests that must not need the shared models.
 *
 *   writeTinyTokenizer(dir);                    // dir/tokenizer.json, tokenizer_config.json, special_tokens_map.json
 *   const tok = await HfTokenizer.fromFolder(dir);    // read by @huggingface/tokenizers exactly like a real checkpoint's
 *
 * The layout of a LLaMA-2 SentencePiece BPE exported as tokenizer.json (as both shared checkpoints): a `▁` prepended
 * and spaces replaced by `▁` (normalizer), a BPE model with byte fallback (`<0x00>`..`<0xFF>`, so every string
 * encodes), `<unk>`/`<s>`/`</s>` as ids 0/1/2, a TemplateProcessing post-processor that adds `<s>`, and the matching
 * decoder. The merges are learned (plain BPE: the most frequent adjacent pair first, ties broken by the pair's text)
 * on seeded synthetic text (test/helpers/synthetic-text.ts) until the vocabulary holds `vocabSize` tokens (default
 * 2048, the tiny checkpoints' vocabulary). The same arguments always give the same files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticWords } from './synthetic-text.js';

const SPECIALS = ['<unk>', '<s>', '</s>'];
const SPACE = '\u2581'; // ▁

export interface TinyTokenizerFiles {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
}

/** Word (with its leading ▁) -> count, from `n` seeded synthetic words. */
function wordCounts(n: number, seed: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of syntheticWords(n, seed)) {
    const key = SPACE + w;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

type Word = { parts: string[]; c: number };

/** Add (sign 1) or remove (sign -1) the adjacent pairs of word `i` to the counts and the pair -> words index. */
function countPairs(words: Word[], i: number, sign: number, pairs: Map<string, number>, where: Map<string, Set<number>>): void {
  const { parts, c } = words[i]!;
  for (let j = 0; j + 1 < parts.length; j++) {
    const k = parts[j] + '\u0000' + parts[j + 1];
    pairs.set(k, (pairs.get(k) ?? 0) + sign * c);
    if (sign > 0) {
      let set = where.get(k);
      if (!set) where.set(k, (set = new Set()));
      set.add(i);
    }
  }
}

/** The most frequent pair; ties go to the smaller pair text. */
function bestPair(pairs: Map<string, number>): string | null {
  let best: string | null = null;
  let bestCount = 0;
  for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== null && k < best)) [best, bestCount] = [k, c];
  return best;
}

/** Learn merges until `room` new tokens were added (or no pair is left); pair counts are updated incrementally. */
function learnMerges(counts: Map<string, number>, room: number, vocab: Map<string, number>): [string, string][] {
  const words: Word[] = [...counts].map(([w, c]) => ({ parts: [...w], c }));
  const pairs = new Map<string, number>();
  const where = new Map<string, Set<number>>();
  for (let i = 0; i < words.length; i++) countPairs(words, i, 1, pairs, where);
  const merges: [string, string][] = [];
  while (merges.length < room) {
    const best = bestPair(pairs);
    if (best === null) break;
    const [a, b] = best.split('\u0000') as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const i of where.get(best) ?? []) {
      const w = words[i]!;
      countPairs(words, i, -1, pairs, where);
      const out: string[] = [];
      for (let j = 0; j < w.parts.length; j++) {
        if (w.parts[j] === a && w.parts[j + 1] === b) {
          out.push(merged);
          j++;
        } else out.push(w.parts[j]!);
      }
      w.parts = out;
      countPairs(words, i, 1, pairs, where);
    }
    where.delete(best);
    for (const [k, c] of pairs) if (c === 0) pairs.delete(k);
  }
  return merges;
}

/** The tokenizer.json and tokenizer_config.json objects (not written). */
export function tinyTokenizer(options: { vocabSize?: number; seed?: number } = {}): TinyTokenizerFiles {
  const vocabSize = options.vocabSize ?? 2048;
  const vocab = new Map<string, number>();
  for (const s of SPECIALS) vocab.set(s, vocab.size);
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  const counts = wordCounts(20000, options.seed ?? 1);
  const chars = new Set<string>([SPACE]);
  for (const w of counts.keys()) for (const ch of w) chars.add(ch);
  for (const ch of [...chars].sort()) vocab.set(ch, vocab.size);
  if (vocab.size > vocabSize) throw new Error(`tinyTokenizer: vocabSize ${vocabSize} is below the ${vocab.size} base tokens`);
  const merges = learnMerges(counts, vocabSize - vocab.size, vocab);
  if (vocab.size !== vocabSize) throw new Error(`tinyTokenizer: the text gave only ${vocab.size} of ${vocabSize} tokens`);
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, i) => special(i, s)),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: 1024,
    tokenizer_class: 'LlamaTokenizer',
  };
  return { json, config };
}

const cache = new Map<string, TinyTokenizerFiles>();

/** Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir` (created if needed). */
export function writeTinyTokenizer(dir: string, options: { vocabSize?: number; seed?: number } = {}): void {
  const key = `${options.vocabSize ?? 2048}/${options.seed ?? 1}`;
  let files = cache.get(key);
  if (!files) cache.set(key, (files = tinyTokenizer(options)));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.json, null, 2));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.config, null, 2));
  writeFileSync(join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }, null, 2));
}
