/**
 * A local stand-in for the Hugging Face hub on 127.0.0.1, in the hub's URL layout, for tests of the download code
 * with HF_ENDPOINT pointed at it:
 *   HEAD/GET /{owner}/{name}/resolve/{revision}/{path}           (models)
 *   HEAD/GET /datasets/{owner}/{name}/resolve/{revision}/{path}  (datasets)
 *   POST     /api/{models|datasets}/{owner}/{name}/paths-info/{revision}   (what @huggingface/hub's pathsInfo and
 *            downloadFileToCacheDir ask: [{type, path, size, oid, lfs?: {oid, size, pointerSize}}])
 * As the hub does: every answer carries X-Repo-Commit (the repository's one commit); small files are plain git
 * files (ETag: the git blob sha1); large ones (over 10 KB, and weights/parquet/gz files) are LFS files whose resolve
 * answers a 302 to a storage URL on the same server, with X-Linked-Etag (their sha256) and X-Linked-Size; bodies
 * honour `Range: bytes=N-` (206); a missing repository, revision or file is a 404 with X-Error-Code (RepoNotFound,
 * RevisionNotFound, EntryNotFound). `cutNext(path, bytes)` makes the next transfer of a file stop after that many
 * bytes (the connection is dropped), to test resuming.
 *
 *   const hub = await startHubServer([{ type: 'model', name: 'o/m', files: { 'config.json': Buffer.from('{}') } }]);
 *   ... HF_ENDPOINT=hub.endpoint ...; hub.requests; await hub.close();
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A repository to serve: file path -> content (bytes, or the path of a local file to read). */
export interface ServedRepo {
  type: 'model' | 'dataset';
  name: string;
  files: Record<string, Buffer | { file: string }>;
}

interface ServedFile {
  bytes: Buffer;
  lfs: boolean;
  sha256: string;
  gitOid: string;
}

export interface HubServer {
  endpoint: string; // http://127.0.0.1:PORT
  /** Every request: method, path (decoded) and the Range header if any. */
  requests: { method: string; url: string; range: string | null }[];
  /** The commit every revision of `name` resolves to. */
  commitOf(name: string): string;
  /** The next body transfer of `path` (any repository) stops after `bytes` bytes and drops the connection. */
  cutNext(path: string, bytes: number): void;
  close(): Promise<void>;
}

const LFS_SUFFIX = /\.(safetensors|parquet|gz|bin)$/;

function served(path: string, content: Buffer | { file: string }): ServedFile {
  const bytes = Buffer.isBuffer(content) ? content : readFileSync(content.file);
  return {
    bytes,
    lfs: bytes.length > 10_000 || LFS_SUFFIX.test(path),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    gitOid: createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'),
  };
}

const commitOf = (name: string): string => createHash('sha1').update(`commit of ${name}`).digest('hex');

/** Send `file` (from the Range start, if any), or only `cut` bytes of it and drop the connection. */
function sendBody(req: IncomingMessage, res: ServerResponse, file: ServedFile, headers: Record<string, string>, cut: number | undefined): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  if (start > file.bytes.length) {
    res.writeHead(416, { ...headers, 'Content-Range': `bytes */${file.bytes.length}` }).end();
    return;
  }
  const body = file.bytes.subarray(start);
  const head = { ...headers, 'Content-Length': String(body.length), 'Accept-Ranges': 'bytes' };
  if (m) res.writeHead(206, { ...head, 'Content-Range': `bytes ${start}-${file.bytes.length - 1}/${file.bytes.length}` });
  else res.writeHead(200, head);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  if (cut === undefined) {
    res.end(body);
    return;
  }
  res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
}

export async function startHubServer(repos: ServedRepo[]): Promise<HubServer> {
  const byKey = new Map<string, Map<string, ServedFile>>();
  const byBlob = new Map<string, { path: string; file: ServedFile }>();
  for (const r of repos) {
    const files = new Map(Object.entries(r.files).map(([p, c]) => [p, served(p, c)] as const));
    byKey.set(`${r.type}:${r.name}`, files);
    for (const [p, f] of files) if (f.lfs) byBlob.set(f.sha256, { path: p, file: f });
  }
  const requests: HubServer['requests'] = [];
  const cuts = new Map<string, number>();
  const takeCut = (path: string): number | undefined => {
    const c = cuts.get(path);
    cuts.delete(path);
    return c;
  };

  const notFound = (res: ServerResponse, code: string, extra: Record<string, string> = {}) => res.writeHead(404, { ...extra, 'X-Error-Code': code }).end(code);

  const server = createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    requests.push({ method: req.method ?? '', url, range: req.headers.range ?? null });
    const storage = /^\/storage\/([0-9a-f]{64})$/.exec(url);
    if (storage) {
      const hit = byBlob.get(storage[1]!);
      if (!hit) return notFound(res, 'EntryNotFound');
      return sendBody(req, res, hit.file, {}, req.method === 'GET' ? takeCut(hit.path) : undefined);
    }
    const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(url);
    if (api && req.method === 'POST') return pathsInfo(req, res, byKey.get(`${api[1] === 'models' ? 'model' : 'dataset'}:${api[2]}`), api[2]!, api[3]!);
    const m = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) return res.writeHead(400).end('not a hub URL');
    const [, ds, name, rev, path] = m as unknown as [string, string | undefined, string, string, string];
    const files = byKey.get(`${ds ? 'dataset' : 'model'}:${name}`);
    if (!files) return notFound(res, 'RepoNotFound');
    const commit = commitOf(name);
    if (rev !== 'main' && rev !== commit) return notFound(res, 'RevisionNotFound');
    const file = files.get(path);
    if (!file) return notFound(res, 'EntryNotFound', { 'X-Repo-Commit': commit });
    if (file.lfs) {
      res.writeHead(302, { Location: `/storage/${file.sha256}`, 'X-Repo-Commit': commit, 'X-Linked-Etag': `"${file.sha256}"`, 'X-Linked-Size': String(file.bytes.length), ETag: `"${file.gitOid}"` });
      return res.end();
    }
    sendBody(req, res, file, { 'X-Repo-Commit': commit, ETag: `"${file.gitOid}"` }, req.method === 'GET' ? takeCut(path) : undefined);
  });

  function pathsInfo(req: IncomingMessage, res: ServerResponse, files: Map<string, ServedFile> | undefined, name: string, rev: string): void {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      if (!files) return notFound(res, 'RepoNotFound');
      if (rev !== 'main' && rev !== commitOf(name)) return notFound(res, 'RevisionNotFound');
      const paths = (JSON.parse(body || '{}') as { paths?: string[] }).paths ?? [];
      const out = paths.flatMap((p) => {
        const f = files.get(p);
        if (!f) return [];
        const lastCommit = { id: commitOf(name), title: 'upload', date: '2024-01-01T00:00:00.000Z' };
        return [{ type: 'file', path: p, size: f.bytes.length, oid: f.gitOid, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.bytes.length, pointerSize: 134 } } : {}), lastCommit }];
      });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(out));
    });
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    commitOf,
    cutNext: (path, bytes) => void cuts.set(path, bytes),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** An http://127.0.0.1:PORT where nothing listens (a port taken and released): a hub that cannot be reached. */
export async function deadEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}
