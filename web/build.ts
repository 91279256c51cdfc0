/**
 * `npm run build:web`: the page (web/src/main.ts) and the pruning worker (web/src/worker.ts) bundled for the
 * browser into web/dist/, with index.html and tfjs's wasm binaries beside them (servable by any static server).
 * The worker installs the library's browser layer (lib/browser/); nothing of Node is bundled: an import of a Node
 * built-in reached from the page's sources fails the build (`noNodeBuiltins`), and a package that reaches one
 * without a browser replacement of its own fails it too (esbuild's browser platform).
 */
import { build, type Plugin } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(WEB);
const OUT = join(WEB, 'dist');

/** tfjs-backend-wasm's binaries, served next to the script that starts the backend. */
export const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/**
 * Fail the build when the page's own sources (anything outside node_modules: web/src, lib/) import a Node built-in,
 * naming the importer. Packages are left to esbuild, which applies their `browser` field and fails on the rest.
 */
export const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_]+(\/[a-z_]+)?$/ }, (args) => {
      if (!BUILTINS.has(args.path) && !args.path.startsWith('node:')) return undefined;
      if (args.importer.split(sep).includes('node_modules')) return undefined;
      const from = args.importer ? relative(ROOT, args.importer) : args.path;
      return { errors: [{ text: `${from} imports the Node built-in '${args.path}': the page's bundle must not reach Node (the browser layer is lib/browser/)` }] };
    });
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
    plugins: [noNodeBuiltins],
    logLevel: 'warning',
  });
  copyFileSync(join(WEB, 'index.html'), join(OUT_DIR, 'index.html'));
  const wasmDir = join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  for (const f of WASM_FILES) copyFileSync(join(wasmDir, f), join(OUT_DIR, f));
}

if (resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  await buildWeb({ minify: !process.argv.includes('--no-minify') });
  console.log(`built ${OUT}`);
}
