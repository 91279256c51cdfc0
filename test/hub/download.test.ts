/**
 * The hub download code against a local server in the hub's URL layout (test/helpers/hub-server.ts): the cache
 * layout, reuse, offline reuse, resuming an interrupted download with a Range request, checksums, errors; and
 * @huggingface/hub's own downloadFileToCacheDir finds what this code cached.
 */
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../../lib/errors.js';
import { downloadHubFile, hubCacheDir, hubEndpoint, HubUnreachableError, repoCacheDir, resolveUrl } from '../../lib/hub/download.js';
import { resolveModelPath } from '../../lib/model/hub.js';
import { loadModel } from '../../lib/model/load.js';
import { useTestBackend } from '../helpers/backend.js';
import { deadEndpoint, startHubServer, type HubServer } from '../helpers/hub-server.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let hub: HubServer;
let tiny: TinyCheckpoint;
const MODEL = 'someone/tiny-llama';
const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)); // an LFS file

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-hub-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 3, maxShardBytes: 60_000 });
  const files: Record<string, { file: string }> = {};
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors.index.json', ...tiny.files]) files[f] = { file: join(tiny.dir, f) };
  hub = await startHubServer([
    { type: 'model', name: MODEL, files },
    { type: 'dataset', name: 'someone/data', files: { 'data/big.bin': big, 'notes.txt': Buffer.from('hello\n') } },
  ]);
});
afterAll(async () => {
  await hub?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const access = (cacheDir: string) => ({ endpoint: hub.endpoint, cacheDir });

test('environment: HF_ENDPOINT and the hub cache variables, with the defaults huggingface_hub uses', () => {
  expect(hubEndpoint({})).toBe('https://huggingface.co');
  expect(hubEndpoint({ HF_ENDPOINT: 'http://127.0.0.1:8080/' })).toBe('http://127.0.0.1:8080');
  expect(hubCacheDir({ HF_HUB_CACHE: '/c/hub', HF_HOME: '/h' })).toBe('/c/hub');
  expect(hubCacheDir({ HF_HOME: '/h' })).toBe('/h/hub');
  expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
  expect(resolveUrl({ type: 'dataset', name: 'a/b' }, 'x y/z.parquet', 'http://h')).toBe('http://h/datasets/a/b/resolve/main/x%20y/z.parquet');
  expect(resolveUrl({ type: 'model', name: 'a/b', revision: 'refs/pr/1' }, 'c.json', 'http://h')).toBe('http://h/a/b/resolve/refs%2Fpr%2F1/c.json');
});

test('--model owner/name: the files land in the hub cache layout, the snapshot folder loads, a second call transfers nothing', async () => {
  const cacheDir = join(tmp, 'cache-model');
  const progress: [string, number, number][] = [];
  const dir = await resolveModelPath(MODEL, { ...access(cacheDir), onProgress: (l, d, t) => progress.push([l, d, t]) });
  const commit = hub.commitOf(MODEL);
  const repoDir = repoCacheDir({ type: 'model', name: MODEL }, cacheDir);
  expect(dir).toBe(join(repoDir, 'snapshots', commit));
  expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
  for (const f of ['config.json', 'tokenizer.json', ...tiny.files]) {
    expect([f, readFileSync(join(dir, f)).equals(readFileSync(join(tiny.dir, f)))]).toEqual([f, true]);
    expect(lstatSync(join(dir, f)).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, f)).startsWith('../../blobs/')).toBe(true);
  }
  expect(tiny.files.length).toBeGreaterThan(1); // sharded: the index was followed
  // the LFS shards' blobs are named by their sha256
  const shard = tiny.files[0]!;
  expect(readlinkSync(join(dir, shard))).toMatch(/blobs\/[0-9a-f]{64}$/);
  expect(progress.some(([l, d, t]) => l.includes(shard) && d === t && t === statSync(join(tiny.dir, shard)).size)).toBe(true);
  const m = await loadModel(dir);
  try {
    expect(m.model.config.numLayers).toBe(tiny.config.numLayers);
  } finally {
    m.dispose();
  }
  const gets = hub.requests.filter((r) => r.method === 'GET').length;
  await expect(resolveModelPath(MODEL, access(cacheDir))).resolves.toBe(dir);
  expect(hub.requests.filter((r) => r.method === 'GET').length).toBe(gets); // only HEADs the second time
});

test('offline, a file fetched before is served from the cache; one never fetched says the hub cannot be reached', async () => {
  const cacheDir = join(tmp, 'cache-offline');
  const repo = { type: 'dataset' as const, name: 'someone/data' };
  const online = await downloadHubFile(repo, 'notes.txt', access(cacheDir));
  const dead = await deadEndpoint();
  const offline = { endpoint: dead, cacheDir };
  await expect(downloadHubFile(repo, 'notes.txt', offline)).resolves.toBe(online);
  const err = await downloadHubFile(repo, 'data/big.bin', offline).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HubUnreachableError);
  expect((err as Error).message).toBe(`dataset someone/data: data/big.bin: the Hugging Face hub at ${dead} cannot be reached (ECONNREFUSED)`);
});

test('an interrupted download resumes with a Range request from the bytes it has, and the result checks out', async () => {
  const cacheDir = join(tmp, 'cache-resume');
  const repo = { type: 'dataset' as const, name: 'someone/data' };
  hub.cutNext('data/big.bin', 100_000);
  const err = await downloadHubFile(repo, 'data/big.bin', access(cacheDir)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DataError);
  expect((err as Error).message).toMatch(/^dataset someone\/data: data\/big\.bin: the download stopped at 100000 of 300000 bytes \(.*\); run again to resume from there$/);
  const sha = (await import('node:crypto')).createHash('sha256').update(big).digest('hex');
  const partial = join(repoCacheDir(repo, cacheDir), 'blobs', `${sha}.incomplete`);
  expect(statSync(partial).size).toBe(100_000);
  const before = hub.requests.length;
  const path = await downloadHubFile(repo, 'data/big.bin', access(cacheDir));
  expect(readFileSync(path).equals(big)).toBe(true);
  expect(existsSync(partial)).toBe(false);
  const gets = hub.requests.slice(before).filter((r) => r.method === 'GET');
  expect(gets.filter((r) => r.url.startsWith('/storage/')).map((r) => r.range)).toEqual(['bytes=100000-']); // once, from there
  expect(gets.every((r) => r.range === 'bytes=100000-')).toBe(true);
});

test('a partial file that does not match the hub checksum is removed and the error says to run again', async () => {
  const cacheDir = join(tmp, 'cache-bad');
  const repo = { type: 'dataset' as const, name: 'someone/data' };
  const sha = (await import('node:crypto')).createHash('sha256').update(big).digest('hex');
  const partial = join(repoCacheDir(repo, cacheDir), 'blobs', `${sha}.incomplete`);
  (await import('node:fs')).mkdirSync(join(repoCacheDir(repo, cacheDir), 'blobs'), { recursive: true });
  writeFileSync(partial, Buffer.alloc(1000, 1)); // not the file's first bytes
  await expect(downloadHubFile(repo, 'data/big.bin', access(cacheDir))).rejects.toThrow(/data\/big\.bin: the downloaded file's sha256 [0-9a-f]{64} is not the hub's [0-9a-f]{64}; the partial file was removed, run again/);
  expect(existsSync(partial)).toBe(false);
  expect(readFileSync(await downloadHubFile(repo, 'data/big.bin', access(cacheDir))).equals(big)).toBe(true);
});

test('missing repository, revision and file: errors naming them', async () => {
  const cacheDir = join(tmp, 'cache-missing');
  await expect(downloadHubFile({ type: 'model', name: 'nobody/nothing' }, 'config.json', access(cacheDir))).rejects.toThrow(
    `nobody/nothing: config.json: not found on ${hub.endpoint} (the repo does not exist: RepoNotFound)`,
  );
  await expect(downloadHubFile({ type: 'model', name: MODEL, revision: 'v9' }, 'config.json', access(cacheDir))).rejects.toThrow(/@v9: config\.json: not found .*RevisionNotFound/);
  await expect(downloadHubFile({ type: 'dataset', name: 'someone/data' }, 'nope.parquet', access(cacheDir))).rejects.toThrow(
    `dataset someone/data: nope.parquet: not found on ${hub.endpoint} (the file does not exist: EntryNotFound)`,
  );
  await expect(resolveModelPath('nobody/nothing', access(cacheDir))).rejects.toThrow(/^model 'nobody\/nothing': not a local folder, and fetching it from the Hugging Face hub failed \(.*RepoNotFound\)\)\. Offline, .* from http:\/\/127\.0\.0\.1:\d+\/nobody\/nothing into one folder/);
});

test("@huggingface/hub's downloadFileToCacheDir reuses a blob this code cached (same layout)", async () => {
  const cacheDir = join(tmp, 'cache-shared-layout');
  const repo = { type: 'dataset' as const, name: 'someone/data' };
  const ours = await downloadHubFile(repo, 'data/big.bin', access(cacheDir));
  const gets = hub.requests.filter((r) => r.method === 'GET').length;
  const { downloadFileToCacheDir } = await import('@huggingface/hub');
  const theirs = await downloadFileToCacheDir({ repo: { type: 'dataset', name: repo.name }, path: 'data/big.bin', hubUrl: hub.endpoint, cacheDir });
  expect(theirs).toBe(ours);
  expect(hub.requests.filter((r) => r.method === 'GET').length).toBe(gets); // it found the file: nothing transferred
});
