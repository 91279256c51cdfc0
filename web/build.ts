/**
 * `npm run build:web`: the page (web/src/main.ts) and the pruning worker (web/src/worker.ts) bundled for the
 * browser into web/dist/, with index.html and tfjs's wasm binaries beside them (servable by any static server).
 * The library's Node built-ins resolve to the browser modules of web/src/node/ (an in-memory file tree over
 * byte sources, sha256, and errors for what a page cannot do); `process` and `Buffer` are injected.
 */
import { build, type Plugin } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = dirname(fileURLToPath(import.meta.url));
const NODE = join(WEB, 'src', 'node');
const OUT = join(WEB, 'dist');

/** Node built-in -> its browser module. */
const BUILTINS: Record<string, string> = {
  fs: 'fs.ts',
  'fs/promises': 'fs-promises.ts',
  path: 'path.ts',
  os: 'os.ts',
  crypto: 'crypto.ts',
  url: 'url.ts',
  buffer: 'buffer.ts',
  module: 'unavailable.ts',
  worker_threads: 'unavailable.ts',
  child_process: 'unavailable.ts',
  zlib: 'unavailable.ts',
  stream: 'unavailable.ts',
  perf_hooks: 'unavailable.ts',
  util: 'unavailable.ts',
};

const browserBuiltins: Plugin = {
  name: 'browser-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_]+(\/promises)?$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (name === 'buffer' && args.importer.startsWith(NODE)) return undefined; // the shims' own import of the npm package
      const file = BUILTINS[name];
      if (file) return { path: join(NODE, file) };
      if (args.path.startsWith('node:')) return { errors: [{ text: `${args.path}: no browser module (add one to web/build.ts)` }] };
      return undefined;
    });
    b.onResolve({ filter: /^@huggingface\/hub$/ }, () => ({ path: join(NODE, 'hub.ts') }));
    b.onResolve({ filter: /^hyparquet$/ }, (args) => (args.importer.endsWith('hyparquet.ts') ? undefined : { path: join(NODE, 'hyparquet.ts') }));
  },
};

/** Bundle into `out` (default web/dist), replacing what is there. */
export async function buildWeb(options: { minify?: boolean; out?: string } = {}): Promise<void> {
  const OUT_DIR = options.out ?? OUT;
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  await build({
    entryPoints: { main: join(WEB, 'src', 'main.ts'), worker: join(WEB, 'src', 'worker.ts') },
    outdir: OUT_DIR,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: options.minify ?? true,
    sourcemap: true,
    inject: [join(NODE, 'globals.ts')],
    define: { global: 'globalThis' },
    plugins: [browserBuiltins],
    logLevel: 'warning',
  });
  copyFileSync(join(WEB, 'index.html'), join(OUT_DIR, 'index.html'));
  const wasmDir = join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) copyFileSync(join(wasmDir, f), join(OUT_DIR, f));
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  await buildWeb({ minify: !process.argv.includes('--no-minify') });
  console.log(`built ${OUT}`);
}
