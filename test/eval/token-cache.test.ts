/**
 * Evaluation-text token cache (lib/eval/token-cache.ts): tokenized in a worker thread with a heartbeat, stored on
 * disk keyed by file content + tokenizer, read back on the next call; the hub token is sent and masked; progress
 * lines show an ETA only once one can be estimated; ${shared}/${cwd} in experiment paths.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedTextIds, cachedTokenCount, tokenCacheDir } from '../../lib/eval/token-cache.js';
import { HfTokenizer } from '../../lib/model/tokenizer.js';
import { hubToken, redactToken, resolveModelPath } from '../../lib/model/hub.js';
import { formatLine } from '../../lib/progress.js';
import { expandPathVars } from '../../lib/paths.js';
import { ConfigError } from '../../lib/errors.js';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

let tmp: string;
let cache: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-tokcache-'));
  cache = join(tmp, 'cache');
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('first call tokenizes in a worker (same ids as the tokenizer), with a heartbeat; the second reads the disk cache', async () => {
  writeTinyTokenizer(join(tmp, 'tok'));
  const tok = await HfTokenizer.fromFolder(join(tmp, 'tok'));
  const file = join(tmp, 'text.txt');
  const text = 'Once upon a time, there was a little girl named Lily.\n\n She liked to play outside. '.repeat(200);
  writeFileSync(file, text);
  const beats: string[] = [];
  let built = 0;
  const make = async (): Promise<string> => {
    built++;
    return text;
  };
  const first = await cachedTextIds('wikitext2', file, tok, make, (label, done, total, extra) => beats.push(`${label}|${done}|${total}|${extra ?? ''}`), cache);
  expect(first).toEqual(tok.encode(text, { addSpecialTokens: true }));
  expect(beats[0]).toMatch(/^wikitext2: tokenizing 0\.02 M characters \(once; cached on disk\)\|0\|0\|/);
  expect(beats[beats.length - 1]).toMatch(/\|1\|1\|\d+ tokens$/);
  expect(readdirSync(join(cache, 'tokens')).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
  expect(cachedTokenCount('wikitext2', file, tok.fingerprint, cache)).toBe(first.length);
  expect(cachedTokenCount('wikitext2', file, tok.fingerprint, join(tmp, 'another-cache'))).toBeNull();

  const second = await cachedTextIds('wikitext2', file, tok, make, () => beats.push('again'), cache);
  expect(second).toEqual(first);
  expect(built).toBe(1); // the text was not even built again
  expect(beats).not.toContain('again');

  // Another content (or another tokenizer) is another key: never stale ids.
  writeFileSync(file, text + ' The end.');
  expect(cachedTokenCount('wikitext2', file, tok.fingerprint, cache)).toBeNull();
  writeTinyTokenizer(join(tmp, 'tok-other'), { vocabSize: 1024 });
  const other = await HfTokenizer.fromFolder(join(tmp, 'tok-other'));
  expect(cachedTokenCount('wikitext2', file, other.fingerprint, cache)).toBeNull();
});

test('progress lines: no ETA on the first line of a task, an ETA once work was measured, elapsed only for unknown totals', () => {
  expect(formatLine('wikitext2 ppl', 1, 40, 0, 1)).toBe('wikitext2 ppl: 1/40 (3%) elapsed 0s');
  expect(formatLine('wikitext2 ppl', 0, 40, 0, 0)).toBe('wikitext2 ppl: 0/40 (0%) elapsed 0s');
  expect(formatLine('wikitext2 ppl', 11, 40, 10, 1)).toBe('wikitext2 ppl: 11/40 (28%) elapsed 10s eta 29s');
  expect(formatLine('wikitext2 ppl', 40, 40, 40, 0)).toBe('wikitext2 ppl: 40/40 (100%) elapsed 40s');
  expect(formatLine('tokenizing', 0, 0, 12, 0, 'eta ~30s')).toBe('tokenizing: elapsed 12s eta ~30s');
});

test('tokenCacheDir reads the environment it is given, never process.env', () => {
  const saved = process.env['LLM_PRUNE_CACHE'];
  process.env['LLM_PRUNE_CACHE'] = join(tmp, 'from-process-env');
  try {
    expect(tokenCacheDir({ LLM_PRUNE_CACHE: join(tmp, 'given') })).toBe(join(tmp, 'given'));
    expect(tokenCacheDir({ XDG_CACHE_HOME: join(tmp, 'xdg') })).toBe(join(tmp, 'xdg', 'llm-prune'));
    expect(tokenCacheDir()).toBe(join(homedir(), '.cache', 'llm-prune'));
  } finally {
    if (saved === undefined) delete process.env['LLM_PRUNE_CACHE'];
    else process.env['LLM_PRUNE_CACHE'] = saved;
  }
});

test('the hub token is sent to the hub as a bearer token and masked in messages; hubToken reads the env it is given', async () => {
  const token = 'hf_testTokenValue42';
  const seen: string[] = [];
  const fakeFetch = (async (_url: unknown, init?: RequestInit) => {
    seen.push(new Headers(init?.headers).get('Authorization') ?? '(none)');
    throw new Error('offline (request for hf_testTokenValue42)');
  }) as typeof fetch;
  const hub = { cacheDir: join(tmp, 'hub'), fetch: fakeFetch, token };
  await expect(resolveModelPath('meta-llama/Llama-3.2-1B', hub)).rejects.toThrow(/hf_\*\*\*/);
  await expect(resolveModelPath('meta-llama/Llama-3.2-1B', hub)).rejects.not.toThrow(/testTokenValue/);
  expect(seen[0]).toBe('Bearer hf_testTokenValue42');
  expect(redactToken('x hf_testTokenValue42 y', token)).toBe('x hf_*** y');
  // Without a token: no Authorization header, and the error says how to give one.
  await expect(resolveModelPath('meta-llama/Llama-3.2-1B', { ...hub, token: undefined })).rejects.toThrow(/set HF_TOKEN or pass --hf-token/);
  expect(seen[seen.length - 1]).toBe('(none)');

  expect(hubToken({ HF_TOKEN: 'a1', HUGGING_FACE_HUB_TOKEN: 'b2' })).toBe('a1');
  expect(hubToken({ HUGGING_FACE_HUB_TOKEN: 'b2' })).toBe('b2');
  expect(hubToken({ HF_TOKEN: '' })).toBeUndefined();
  const saved = process.env['HF_TOKEN'];
  process.env['HF_TOKEN'] = 'hf_fromProcessEnv';
  try {
    expect(hubToken()).toBeUndefined();
  } finally {
    if (saved === undefined) delete process.env['HF_TOKEN'];
    else process.env['HF_TOKEN'] = saved;
  }
});

test('${shared} and ${cwd} in experiment paths; without a shared folder the error says what to set', () => {
  expect(expandPathVars('${shared}/models/m', 'model', { shared: '/data/shared' })).toBe('/data/shared/models/m');
  expect(expandPathVars('${shared}/models/m', 'model', { shared: '/x' })).toBe('/x/models/m');
  expect(expandPathVars('${cwd}/runs/demo', 'output')).toBe(join(process.cwd(), 'runs', 'demo'));
  expect(expandPathVars('../plain', 'output')).toBe('../plain');
  expect(() => expandPathVars('${home}/x', 'output')).toThrow('output: unknown variable ${home} in');
  const cwd = process.cwd();
  const saved = process.env['LLM_PRUNE_SHARED'];
  process.env['LLM_PRUNE_SHARED'] = '/data/shared'; // the library reads no environment: only the CLI passes it on
  try {
    process.chdir(tmp); // no ./shared or ../shared here
    expect(() => expandPathVars('${shared}/data', 'eval.dataDir')).toThrow(ConfigError);
    expect(() => expandPathVars('${shared}/data', 'eval.dataDir')).toThrow(/eval\.dataDir: .* no shared folder was found: set LLM_PRUNE_SHARED=/);
  } finally {
    process.chdir(cwd);
    if (saved === undefined) delete process.env['LLM_PRUNE_SHARED'];
    else process.env['LLM_PRUNE_SHARED'] = saved;
  }
});
