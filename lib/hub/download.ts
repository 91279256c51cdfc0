/**
 * Files from the Hugging Face hub (models and datasets), over its plain HTTP layout:
 *   HEAD {endpoint}/{repo}/resolve/{revision}/{path}            (datasets: {endpoint}/datasets/{repo}/resolve/...)
 * gives the commit (X-Repo-Commit), the file's etag (X-Linked-Etag for LFS files, else ETag) and size
 * (X-Linked-Size, else Content-Length) without following the redirect to the storage host; the GET follows it.
 *
 * Files land in the hub cache layout that huggingface_hub and @huggingface/hub share, so a file fetched by one is
 * reused by the others: {cacheDir}/{models|datasets}--{owner}--{name}/blobs/{etag}, a symlink (a copy where links
 * are not allowed) snapshots/{commit}/{path} -> the blob, and refs/{revision} holding the commit. A download goes to
 * blobs/{etag}.incomplete first; an interrupted one resumes from there with a Range request. LFS files (etag =
 * their sha256) are checked against it. Offline, a file whose revision was fetched before is served from the cache.
 *
 * The library reads no environment: the CLI passes `hubEndpoint(process.env)` and `hubCacheDir(process.env)`.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { open } from 'node:fs/promises';
import { DataError } from '../errors.js';

import { DEFAULT_HUB_ENDPOINT, resolveUrl, type HubRepo } from '../platform/hub.js';

export { DEFAULT_HUB_ENDPOINT, resolveUrl, type HubRepo };

/** The environment variables of the hub (the names huggingface_hub uses). */
export interface HubEnv {
  HF_ENDPOINT?: string | undefined;
  HF_HUB_CACHE?: string | undefined;
  HF_HOME?: string | undefined;
  XDG_CACHE_HOME?: string | undefined;
}

/** The hub's address: `env.HF_ENDPOINT` (a mirror, a local server), else https://huggingface.co. */
export function hubEndpoint(env: HubEnv = {}): string {
  return (env.HF_ENDPOINT || DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
}

/** The hub cache: `env.HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub` (~/.cache). */
export function hubCacheDir(env: HubEnv = {}): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** How to reach the hub. */
export interface HubAccess {
  endpoint?: string | undefined; // default https://huggingface.co (the CLI: $HF_ENDPOINT)
  cacheDir?: string | undefined; // default hubCacheDir() (the CLI passes the one of its environment)
  token?: string | undefined; // sent to the hub only, never written into a message
  fetch?: typeof fetch | undefined; // tests
  /** Bytes done of a file being downloaded (`total` 0 when unknown); called at most every 64 KiB and at the end. */
  onProgress?: ((label: string, done: number, total: number) => void) | undefined;
}

/** The hub could not be reached at all (no network, DNS, refused): the caller says what to do offline. */
export class HubUnreachableError extends DataError {
  override name = 'HubUnreachableError';
}

const COMMIT = /^[0-9a-f]{40}$/;

/** The repository's folder in the hub cache. */
export function repoCacheDir(repo: HubRepo, cacheDir: string): string {
  return join(cacheDir, `${repo.type}s--${repo.name.split('/').join('--')}`);
}

function describe(repo: HubRepo, path: string): string {
  return `${repo.type === 'dataset' ? 'dataset ' : ''}${repo.name}${repo.revision && repo.revision !== 'main' ? `@${repo.revision}` : ''}: ${path}`;
}

function headers(access: HubAccess, extra: Record<string, string> = {}): Record<string, string> {
  return { ...extra, 'Accept-Encoding': 'identity', ...(access.token ? { Authorization: `Bearer ${access.token}` } : {}) };
}

function masked(text: string, token: string | undefined): string {
  return token && token.length >= 4 ? text.split(token).join('hf_***') : text;
}

/** fetch, with network failures (no answer at all) turned into HubUnreachableError. */
async function request(access: HubAccess, url: string, init: RequestInit, what: string): Promise<Response> {
  try {
    return await (access.fetch ?? fetch)(url, init);
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new HubUnreachableError(masked(`${what}: the Hugging Face hub at ${access.endpoint ?? DEFAULT_HUB_ENDPOINT} cannot be reached (${why})`, access.token));
  }
}

/** An answer that is not a success, as a DataError naming the file and what the hub said. */
function httpError(res: Response, repo: HubRepo, path: string, access: HubAccess): DataError {
  const code = res.headers.get('x-error-code');
  const what = describe(repo, path);
  if (res.status === 401 || res.status === 403) {
    return new DataError(`${what}: the hub refused access (HTTP ${res.status}); gated or private repositories need a token: set HF_TOKEN or pass --hf-token${access.token ? ' (the token given was refused)' : ''}`);
  }
  if (res.status === 404) {
    const which = code === 'RepoNotFound' || code === 'RevisionNotFound' ? code.replace('NotFound', '').toLowerCase() : 'file';
    return new DataError(`${what}: not found on ${access.endpoint ?? DEFAULT_HUB_ENDPOINT} (the ${which} does not exist${code ? `: ${code}` : ''})`);
  }
  return new DataError(`${what}: the hub answered HTTP ${res.status} ${res.statusText}`);
}

/** What the hub says about a file: the commit of the revision, the etag (sha256 for LFS files) and the size. */
export interface HubFileInfo {
  commit: string;
  etag: string;
  size: number;
}

/** HEAD the file (following only same-host redirects, as for a renamed repository). */
export async function hubFileInfo(repo: HubRepo, path: string, access: HubAccess = {}): Promise<HubFileInfo> {
  let url = resolveUrl(repo, path, access.endpoint ?? DEFAULT_HUB_ENDPOINT);
  for (let hops = 0; hops < 5; hops++) {
    const res = await request(access, url, { method: 'HEAD', headers: headers(access), redirect: 'manual' }, describe(repo, path));
    const commit = res.headers.get('x-repo-commit');
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && commit === null && location !== null) {
      url = new URL(location, url).toString();
      continue;
    }
    if (res.status >= 400) throw httpError(res, repo, path, access);
    const etag = (res.headers.get('x-linked-etag') ?? res.headers.get('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    if (commit === null || etag === '' || !Number.isFinite(size)) {
      throw new DataError(`${describe(repo, path)}: the hub's answer lacks X-Repo-Commit, ETag or the size (is ${access.endpoint ?? DEFAULT_HUB_ENDPOINT} a Hugging Face hub?)`);
    }
    return { commit, etag, size };
  }
  throw new DataError(`${describe(repo, path)}: too many redirects`);
}

/** The cached copy of a file at the commit refs/{revision} names, or null. */
function cachedFile(repo: HubRepo, path: string, cacheDir: string): string | null {
  const dir = repoCacheDir(repo, cacheDir);
  const rev = repo.revision ?? 'main';
  const refFile = join(dir, 'refs', rev);
  const commit = COMMIT.test(rev) ? rev : existsSync(refFile) ? readFileSync(refFile, 'utf8').trim() : null;
  const pointer = commit ? join(dir, 'snapshots', commit, path) : null;
  return pointer && existsSync(pointer) ? pointer : null;
}

/** snapshots/{commit}/{path} -> blob: a relative symlink, or a copy where links are not allowed. */
function linkPointer(blob: string, pointer: string): void {
  mkdirSync(dirname(pointer), { recursive: true });
  rmSync(pointer, { force: true });
  try {
    symlinkSync(relative(dirname(pointer), blob), pointer);
  } catch {
    copyFileSync(blob, pointer);
  }
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Download `repo`'s `path` into the cache (resuming a partial download) and return the local path
 * (snapshots/{commit}/{path}). Offline, a file fetched before for the same revision is returned from the cache.
 */
export async function downloadHubFile(repo: HubRepo, path: string, access: HubAccess = {}): Promise<string> {
  const cacheDir = access.cacheDir ?? hubCacheDir();
  const rev = repo.revision ?? 'main';
  if (COMMIT.test(rev)) {
    const hit = cachedFile(repo, path, cacheDir);
    if (hit) return hit;
  }
  let info: HubFileInfo;
  try {
    info = await hubFileInfo(repo, path, access);
  } catch (e) {
    const hit = e instanceof HubUnreachableError ? cachedFile(repo, path, cacheDir) : null;
    if (hit) return hit;
    throw e;
  }
  const dir = repoCacheDir(repo, cacheDir);
  const pointer = join(dir, 'snapshots', info.commit, path);
  const blob = join(dir, 'blobs', info.etag);
  if (!existsSync(pointer) || statSync(pointer).size !== info.size) {
    if (!existsSync(blob) || statSync(blob).size !== info.size) await fetchBlob(repo, path, info, blob, access);
    linkPointer(blob, pointer);
  }
  if (!COMMIT.test(rev)) {
    mkdirSync(join(dir, 'refs', dirname(rev)), { recursive: true });
    writeFileSync(join(dir, 'refs', rev), info.commit);
  }
  return pointer;
}

/** GET the file at its commit into `blob` through `blob.incomplete`, resuming from the bytes already there. */
async function fetchBlob(repo: HubRepo, path: string, info: HubFileInfo, blob: string, access: HubAccess): Promise<void> {
  const partial = `${blob}.incomplete`;
  mkdirSync(dirname(blob), { recursive: true });
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (have > info.size) {
    rmSync(partial);
    have = 0;
  }
  const label = `download ${describe(repo, path)}`;
  if (have < info.size || info.size === 0) {
    const url = resolveUrl({ ...repo, revision: info.commit }, path, access.endpoint ?? DEFAULT_HUB_ENDPOINT);
    const res = await request(access, url, { headers: headers(access, have > 0 ? { Range: `bytes=${have}-` } : {}) }, describe(repo, path));
    if (res.status !== 200 && res.status !== 206) throw httpError(res, repo, path, access);
    if (res.status === 200) have = 0; // the server ignored the range: start over
    try {
      await writeBody(res, partial, have, info.size, label, access);
    } catch (e) {
      const got = existsSync(partial) ? statSync(partial).size : 0;
      const why = masked((e as { cause?: Error }).cause?.message ?? (e as Error).message, access.token);
      throw new DataError(`${describe(repo, path)}: the download stopped at ${got} of ${info.size} bytes (${why}); run again to resume from there`);
    }
  }
  const got = statSync(partial).size;
  if (got !== info.size) throw new DataError(`${describe(repo, path)}: download ended at ${got} of ${info.size} bytes; run again to resume`);
  if (/^[0-9a-f]{64}$/.test(info.etag)) {
    const sum = await sha256Of(partial);
    if (sum !== info.etag) {
      rmSync(partial);
      throw new DataError(`${describe(repo, path)}: the downloaded file's sha256 ${sum} is not the hub's ${info.etag}; the partial file was removed, run again`);
    }
  }
  renameSync(partial, blob);
}

/** Append (from `offset`) or write the response body to `file`, reporting progress. */
async function writeBody(res: Response, file: string, offset: number, total: number, label: string, access: HubAccess): Promise<void> {
  const fh = await open(file, offset > 0 ? 'a' : 'w');
  let done = offset;
  let reported = done;
  try {
    access.onProgress?.(label, done, total);
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await fh.write(chunk);
        done += chunk.byteLength;
        if (done - reported >= 65536) {
          access.onProgress?.(label, done, total);
          reported = done;
        }
      }
    }
    access.onProgress?.(label, done, total);
  } finally {
    await fh.close();
  }
}

/**
 * The response of a GET of the file at the revision (not cached): for reading the first part of a large file.
 * `signal` aborts the transfer once the caller has what it needs.
 */
export async function openHubFile(repo: HubRepo, path: string, access: HubAccess, signal?: AbortSignal): Promise<{ res: Response; info: HubFileInfo }> {
  const info = await hubFileInfo(repo, path, access);
  const url = resolveUrl({ ...repo, revision: info.commit }, path, access.endpoint ?? DEFAULT_HUB_ENDPOINT);
  const res = await request(access, url, { headers: headers(access), ...(signal ? { signal } : {}) }, describe(repo, path));
  if (res.status !== 200) throw httpError(res, repo, path, access);
  return { res, info };
}
