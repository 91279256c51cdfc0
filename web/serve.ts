/**
 * `npm run web`: a static server on 127.0.0.1 for web/dist/ (at /) and, when present, ../shared (at /shared/,
 * for local models and data). It sends the cross-origin isolation headers (COOP/COEP: wasm threads need
 * SharedArrayBuffer) and answers HEAD and single-range GETs (the page reads checkpoints by ranges).
 * Usage: tsx web/serve.ts [--port N] [--dist DIR] [--shared DIR]   (port 0: any free port; the URL is printed)
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

export interface ServeOptions {
  port?: number;
  dist: string;
  shared?: string | null;
}

/** The file a URL path names under the served roots, or null (outside them or absent). */
function fileFor(urlPath: string, o: ServeOptions): string | null {
  let path = decodeURIComponent(urlPath.split('?')[0]!);
  let root = o.dist;
  if (path.startsWith('/shared/') && o.shared) {
    root = o.shared;
    path = path.slice('/shared'.length);
  }
  if (path.endsWith('/')) path += 'index.html';
  const file = normalize(join(root, path));
  if (file !== root && !file.startsWith(root + sep)) return null;
  return existsSync(file) && statSync(file).isFile() ? file : null;
}

function reply(req: IncomingMessage, res: ServerResponse, o: ServeOptions): void {
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Accept-Ranges', 'bytes');
  const file = req.method === 'GET' || req.method === 'HEAD' ? fileFor(req.url ?? '/', o) : null;
  if (!file) {
    res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405).end();
    return;
  }
  const size = statSync(file).size;
  res.setHeader('Content-Type', TYPES[extname(file)] ?? 'application/octet-stream');
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start > end || start >= size) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${size}`, 'Content-Length': end - start + 1 });
  } else {
    res.writeHead(200, { 'Content-Length': size });
  }
  if (req.method === 'HEAD' || size === 0) res.end();
  else createReadStream(file, { start, end }).pipe(res);
}

/** Start the server; resolves once it listens (its port in `address()`). */
export function serve(o: ServeOptions): Promise<Server> {
  const opts = { ...o, dist: resolve(o.dist), shared: o.shared ? resolve(o.shared) : null };
  const server = createServer((req, res) => reply(req, res, opts));
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(o.port ?? 8080, '127.0.0.1', () => ok(server));
  });
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  const web = dirname(fileURLToPath(import.meta.url));
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const dist = arg('--dist') ?? join(web, 'dist');
  if (!existsSync(join(dist, 'index.html'))) {
    console.error(`${dist}/index.html: not found; run npm run build:web first`);
    process.exit(1);
  }
  const shared = arg('--shared') ?? join(web, '..', '..', 'shared');
  const server = await serve({ port: Number(arg('--port') ?? 8080), dist, shared: existsSync(shared) ? shared : null });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  console.log(`serving ${dist} at http://127.0.0.1:${port}/` + (existsSync(shared) ? ` and ${resolve(shared)} at http://127.0.0.1:${port}/shared/` : ''));
}
