/**
 * Token ids of evaluation sets, cached on disk. The reference tokenizes WikiText-2 test (1.3 M characters) as one
 * text, which takes @huggingface/tokenizers 40-50 s; it is done once per (tokenizer, file content) and stored under
 * <cache folder>/tokens/<key>.bin (int32 little-endian) with <key>.json beside it; the cache folder is the caller's
 * (default tokenCacheDir(), which reads no environment). The key is the sha256 of the
 * set name, the data file's sha256 and the tokenizer's fingerprint (tokenizer.json + tokenizer_config.json), so a
 * changed file or tokenizer never reads stale ids. Uncached tokenization runs in a worker thread while the caller
 * gets a heartbeat (elapsed time; an ETA once a previous tokenization on this machine measured the speed).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { TextTokenizer } from '../model/tokenizer-types.js';

const FORMAT = 1;

/** The environment variables that choose the cache folder (the library reads none itself). */
export interface TokenCacheEnv {
  LLM_PRUNE_CACHE?: string | undefined;
  XDG_CACHE_HOME?: string | undefined;
}

/**
 * The cache folder of an environment: `env.LLM_PRUNE_CACHE`, else `env.XDG_CACHE_HOME`/llm-prune, else
 * ~/.cache/llm-prune. The library never reads process.env: the CLI passes it (`tokenCacheDir(process.env)`).
 */
export function tokenCacheDir(env: TokenCacheEnv = {}): string {
  if (env.LLM_PRUNE_CACHE) return env.LLM_PRUNE_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'llm-prune');
}

const hashes = new Map<string, string>();

/** sha256 of a file's content (memoized per path, size and mtime). */
export function fileSha256(file: string): string {
  const st = statSync(file);
  const k = `${file}|${st.size}|${st.mtimeMs}`;
  let h = hashes.get(k);
  if (!h) {
    h = createHash('sha256').update(readFileSync(file)).digest('hex');
    hashes.set(k, h);
  }
  return h;
}

function entry(cacheDir: string, set: string, file: string, fingerprint: string): string {
  const key = createHash('sha256').update(`${FORMAT}|${set}|${fileSha256(file)}|${fingerprint}`).digest('hex');
  return join(cacheDir, 'tokens', key);
}

/** Number of cached tokens of `set` read from `file` with this tokenizer in `cacheDir`, or null when not cached. */
export function cachedTokenCount(set: string, file: string, fingerprint: string, cacheDir: string = tokenCacheDir()): number | null {
  try {
    const meta = JSON.parse(readFileSync(`${entry(cacheDir, set, file, fingerprint)}.json`, 'utf8')) as { tokens?: number };
    return typeof meta.tokens === 'number' ? meta.tokens : null;
  } catch {
    return null;
  }
}

function readCached(base: string): number[] | null {
  try {
    const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as { tokens: number };
    const buf = readFileSync(`${base}.bin`);
    if (buf.byteLength !== meta.tokens * 4) return null; // torn or foreign file: tokenize again
    return Array.from(new Int32Array(buf.buffer, buf.byteOffset, meta.tokens));
  } catch {
    return null;
  }
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

function writeCached(base: string, ids: number[], meta: Record<string, unknown>): void {
  try {
    mkdirSync(join(base, '..'), { recursive: true });
    const arr = Int32Array.from(ids);
    writeAtomic(`${base}.bin`, new Uint8Array(arr.buffer));
    writeAtomic(`${base}.json`, JSON.stringify({ ...meta, tokens: ids.length }, null, 2) + '\n');
  } catch {
    rmSync(`${base}.bin`, { force: true }); // a read-only cache folder only costs speed
  }
}

/** Characters per second of the last tokenization on this machine (for an ETA), or null. */
function lastRate(cacheDir: string): number | null {
  try {
    const r = JSON.parse(readFileSync(join(cacheDir, 'tokens', 'rate.json'), 'utf8')) as { charsPerSecond?: number };
    return typeof r.charsPerSecond === 'number' && r.charsPerSecond > 0 ? r.charsPerSecond : null;
  } catch {
    return null;
  }
}

// The worker: builds the same tokenizer from the same JSON and encodes the text (CommonJS, evaluated code).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Tokenizer } = require(workerData.module);
const t = new Tokenizer(workerData.json, workerData.config);
const ids = Int32Array.from(t.encode(workerData.text, { add_special_tokens: true }).ids);
parentPort.postMessage(ids, [ids.buffer]);
`;

/** A tokenizer whose JSON can be handed to a worker (HfTokenizer). */
export interface PortableTokenizer extends TextTokenizer {
  readonly fingerprint: string;
  readonly source?: { json: Record<string, unknown>; config: Record<string, unknown> };
}

/** Encode `text` (with special tokens) off the main thread; falls back to the caller's thread if no worker starts. */
async function encodeInWorker(tokenizer: PortableTokenizer, text: string): Promise<number[]> {
  if (!tokenizer.source) return tokenizer.encode(text, { addSpecialTokens: true });
  let module: string;
  try {
    module = createRequire(import.meta.url).resolve('@huggingface/tokenizers');
  } catch {
    return tokenizer.encode(text, { addSpecialTokens: true });
  }
  return new Promise<number[]>((resolvePromise, reject) => {
    const w = new Worker(WORKER, { eval: true, workerData: { module, json: tokenizer.source!.json, config: tokenizer.source!.config, text } });
    w.once('message', (ids: Int32Array) => {
      resolvePromise(Array.from(ids));
      void w.terminate();
    });
    w.once('error', reject);
  });
}

/**
 * Token ids of `text` (the evaluation text of `set` built from `file`), from the disk cache or tokenized now
 * (then cached). `onProgress(label, 0, 0, extra)` beats every second while tokenizing (total unknown: the
 * reporter shows the elapsed time); `extra` carries an ETA when an earlier tokenization measured the speed. The
 * last call is `(label, 1, 1, '<n> tokens')`. `cacheDir`: the cache folder (default tokenCacheDir(), no environment).
 */
export async function cachedTextIds(
  set: string,
  file: string,
  tokenizer: PortableTokenizer,
  text: () => Promise<string>,
  onProgress?: (label: string, done: number, total: number, extra?: string) => void,
  cacheDir: string = tokenCacheDir(),
): Promise<number[]> {
  const base = entry(cacheDir, set, file, tokenizer.fingerprint);
  const hit = readCached(base);
  if (hit) return hit;
  const t = await text();
  const rate = lastRate(cacheDir);
  const label = `${set}: tokenizing ${(t.length / 1e6).toFixed(2)} M characters (once; cached on disk)`;
  const t0 = performance.now();
  const beat = (): void => {
    const left = rate ? t.length / rate - (performance.now() - t0) / 1000 : NaN;
    onProgress?.(label, 0, 0, left > 0 ? `eta ~${Math.ceil(left)}s (speed of the last tokenization here)` : undefined);
  };
  beat();
  const timer = setInterval(beat, 1000);
  let ids: number[];
  try {
    ids = await encodeInWorker(tokenizer, t);
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - t0) / 1000;
  onProgress?.(label, 1, 1, `${ids.length} tokens`); // 1/1: the reporter always prints a finished task
  writeCached(base, ids, { format: FORMAT, set, file, fileSha256: fileSha256(file), tokenizer: tokenizer.fingerprint, characters: t.length, seconds });
  if (seconds > 1) writeAtomicQuiet(join(cacheDir, 'tokens', 'rate.json'), { charsPerSecond: t.length / seconds });
  return ids;
}

function writeAtomicQuiet(file: string, value: unknown): void {
  try {
    if (existsSync(join(file, '..'))) writeAtomic(file, JSON.stringify(value) + '\n');
  } catch {
    // speed hint only
  }
}
