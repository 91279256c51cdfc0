import { existsSync, readFileSync } from '../platform/fs.js';
import { join } from '../platform/path.js';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError } from '../errors.js';
import { sha256Hex } from '../platform/index.js';
import type { TextTokenizer } from './tokenizer-types.js';

export type { TextTokenizer } from './tokenizer-types.js';

/** Special-token facts shown by `inspect`. */
export interface TokenizerInfo {
  model: string; // tokenizer.json model type (BPE, Unigram, ...)
  vocabSize: number;
  bos: string | null;
  eos: string | null;
  unk: string | null;
  pad: string | null;
  addBosToken: boolean;
}

function tokenName(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read (${(e as Error).message})`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

/** A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) through @huggingface/tokenizers. */
export class HfTokenizer implements TextTokenizer {
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly info: TokenizerInfo;
  /** sha256 of tokenizer.json + tokenizer_config.json: equal fingerprints tokenize identically (cache key). */
  readonly fingerprint: string;
  /** The JSON it was built from (a worker thread builds the same tokenizer from it: lib/eval/token-cache.ts). */
  readonly source: { json: Record<string, unknown>; config: Record<string, unknown> };
  private readonly inner: Tokenizer;

  /** Build from the two JSON objects; `fingerprint` is theirs (HfTokenizer.fromJson computes it). */
  private constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>, fingerprint: string) {
    this.inner = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.source = { json: tokenizerJson, config: tokenizerConfig };
    this.fingerprint = fingerprint;
    const bos = tokenName(tokenizerConfig['bos_token']);
    const eos = tokenName(tokenizerConfig['eos_token']);
    this.bosId = bos === null ? null : (this.inner.token_to_id(bos) ?? null);
    this.eosId = eos === null ? null : (this.inner.token_to_id(eos) ?? null);
    const model = tokenizerJson['model'] as { type?: unknown } | undefined;
    this.info = {
      model: typeof model?.type === 'string' ? model.type : 'unknown',
      vocabSize: this.inner.get_vocab(true).size,
      bos,
      eos,
      unk: tokenName(tokenizerConfig['unk_token']),
      pad: tokenName(tokenizerConfig['pad_token']),
      addBosToken: tokenizerConfig['add_bos_token'] !== false,
    };
  }

  /** A tokenizer from tokenizer.json and tokenizer_config.json as parsed objects. */
  static async fromJson(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>): Promise<HfTokenizer> {
    const fingerprint = await sha256Hex(JSON.stringify(tokenizerJson), JSON.stringify(tokenizerConfig));
    return new HfTokenizer(tokenizerJson, tokenizerConfig, fingerprint);
  }

  /** Load `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a checkpoint folder. */
  static async fromFolder(dir: string): Promise<HfTokenizer> {
    const tj = join(dir, 'tokenizer.json');
    if (!existsSync(tj)) {
      throw new CheckpointError(`${tj}: missing; a checkpoint needs tokenizer.json (the fast-tokenizer file)`);
    }
    const tc = join(dir, 'tokenizer_config.json');
    const config = existsSync(tc) ? readJson(tc) : {};
    try {
      return await HfTokenizer.fromJson(readJson(tj), config);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(`${tj}: cannot build a tokenizer (${(e as Error).message})`);
    }
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.inner.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }
}
