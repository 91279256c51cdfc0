/** The build (web/build.ts) and the static server (web/serve.ts): bundles, isolation headers, ranges, the roots. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildWeb, noNodeBuiltins } from '../../web/build.js';
import { serve } from '../../web/serve.js';

let dir: string;
let server: Server;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'web-serve-'));
  await buildWeb({ out: join(dir, 'dist') });
  mkdirSync(join(dir, 'shared', 'data'), { recursive: true });
  writeFileSync(join(dir, 'shared', 'data', 'x.bin'), Uint8Array.from({ length: 1000 }, (_, i) => i % 256));
  writeFileSync(join(dir, 'secret.txt'), 'no');
  server = await serve({ port: 0, dist: join(dir, 'dist'), shared: join(dir, 'shared') });
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}, 120_000);

afterAll(async () => {
  await new Promise((ok) => server.close(ok));
  rmSync(dir, { recursive: true, force: true });
});

test('the build holds the page, the worker bundle (no Node built-in left) and the wasm binaries', () => {
  const worker = readFileSync(join(dir, 'dist', 'worker.js'), 'utf8');
  // no import of a Node built-in left (Node code kept as text, such as a worker thread's source, may mention one)
  expect(/(^|[;}])\s*import\s*[^;()"']*from\s*["']node:/m.test(worker)).toBe(false);
  for (const f of ['index.html', 'main.js', 'tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
    expect(readFileSync(join(dir, 'dist', f)).length).toBeGreaterThan(0);
  }
});

test("the build fails when the page's sources import a Node built-in, naming the importer and the module", async () => {
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, "import { readFileSync } from 'node:fs';\nimport os from 'os';\nexport const x = [readFileSync, os];\n");
  const bundle = (): Promise<unknown> => build({ entryPoints: [entry], bundle: true, write: false, platform: 'browser', format: 'esm', logLevel: 'silent', plugins: [noNodeBuiltins] });
  await expect(bundle()).rejects.toThrow(/entry\.ts imports the Node built-in 'node:fs'/);
  await expect(bundle()).rejects.toThrow(/entry\.ts imports the Node built-in 'os'/);
  writeFileSync(entry, "import { posixPath } from '" + join(process.cwd(), 'lib', 'browser', 'path.ts') + "';\nexport const x = posixPath.join('a', 'b');\n");
  await expect(bundle()).resolves.toBeDefined();
});

test('pages come with the cross-origin isolation headers and their types', async () => {
  const r = await fetch(`${base}/`);
  expect(r.status).toBe(200);
  expect(r.headers.get('cross-origin-opener-policy')).toBe('same-origin');
  expect(r.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
  expect(r.headers.get('content-type')).toMatch(/^text\/html/);
  expect((await fetch(`${base}/tfjs-backend-wasm-simd.wasm`)).headers.get('content-type')).toBe('application/wasm');
});

test('HEAD gives the size; a range GET gives 206 with exactly the bytes; a bad range 416', async () => {
  const head = await fetch(`${base}/shared/data/x.bin`, { method: 'HEAD' });
  expect(head.headers.get('content-length')).toBe('1000');
  const r = await fetch(`${base}/shared/data/x.bin`, { headers: { Range: 'bytes=300-303' } });
  expect(r.status).toBe(206);
  expect(r.headers.get('content-range')).toBe('bytes 300-303/1000');
  expect([...new Uint8Array(await r.arrayBuffer())]).toEqual([44, 45, 46, 47]);
  expect((await fetch(`${base}/shared/data/x.bin`, { headers: { Range: 'bytes=2000-' } })).status).toBe(416);
});

test('nothing outside the two roots is served', async () => {
  expect((await fetch(`${base}/../secret.txt`)).status).toBe(404);
  expect((await fetch(`${base}/shared/%2e%2e/secret.txt`)).status).toBe(404);
  expect((await fetch(`${base}/nope.js`)).status).toBe(404);
});
