/**
 * The platform split (docs/architecture.md), checked by parsing lib/ with the TypeScript compiler:
 *   - the core (every module of lib/ outside NODE_LAYER and BROWSER_LAYER) imports no Node built-in (`node:*` or a
 *     bare `fs`, `path`, ...), statically or dynamically, and uses no global `Buffer`, `process` or `NodeJS` types: what
 *     touches the platform goes through lib/platform/ (the injected Platform);
 *   - the browser layer keeps the same rules as the core (it may use the browser's globals);
 *   - neither the core nor the browser layer imports anything of the Node layer at run time, and the core nothing of
 *     the browser layer (type-only imports are erased, so they are allowed);
 *   - the model layer (lib/model/) imports nothing from the layers above it (eval/, prune/, data/, experiment/,
 *     finetune/, cli/, node/), not even types.
 */
import { builtinModules } from 'node:module';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const LIB = join(process.cwd(), 'lib');

/**
 * THE NODE LAYER, in one place: folders (ending in '/') and files of lib/ that may touch Node. Everything else in
 * lib/ is the core. A browser layer takes the place of these (installPlatform, lib/platform/index.ts).
 */
export const NODE_LAYER: readonly string[] = [
  'node/', // the Node platform: node:fs/path/os/crypto, worker_threads, files as byte sources and sinks
  'cli/', // the command-line program (flags, environment, exit codes, stderr)
  'cli.ts',
  'bin.ts',
  'index.ts', // the package's Node entry: installs the Node platform
  'progress.ts', // the CLI's progress reporter on process.stderr
  'output-lock.ts', // output locks: lock files naming their process, a heartbeat thread, release on exit
  'watchdog.ts', // the worker's watch on its supervisor process (worker_threads)
  'model/wasm-threads.ts', // tfjs-backend-wasm's threads through worker_threads
  'model/webgpu.ts', // Dawn (the 'webgpu' package) start-up
  'eval/token-cache.ts', // tokenized data sets cached on disk, tokenized in a worker thread
  'data/sources.ts', // data files: streams, gzip/zstd/brotli, parquet from disk
  'hub/', // hub downloads into the on-disk cache (streams, sha256, gzip of the demo's C4 head)
  'experiment/configs.ts', // the shipped configs, found in the installed package's folder
];

/** THE BROWSER LAYER: the Platform for a page's worker (files in memory, WebCrypto, navigator, WebGPU, wasm). */
export const BROWSER_LAYER: readonly string[] = ['browser/'];

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const ABOVE_MODEL = ['eval/', 'prune/', 'data/', 'experiment/', 'finetune/', 'cli/', 'node/', 'cli.ts', 'bin.ts', 'index.ts', 'generate.ts'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

const inList = (rel: string, list: readonly string[]): boolean => list.some((e) => (e.endsWith('/') ? rel.startsWith(e) : rel === e));

interface Import {
  spec: string;
  typeOnly: boolean;
  line: number;
}

/** Every import of a source text: static (`import`/`export ... from`, type-only marked) and dynamic (`import('x')`). */
function importsOf(file: string, text: string): { imports: Import[]; globals: { name: string; line: number }[] } {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const imports: Import[] = [];
  const globals: { name: string; line: number }[] = [];
  const line = (n: ts.Node): number => source.getLineAndCharacterOfPosition(n.getStart()).line + 1;
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
      const typeOnly = ts.isImportDeclaration(node)
        ? Boolean(clause?.isTypeOnly || (clause && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.every((e) => e.isTypeOnly)))
        : node.isTypeOnly;
      imports.push({ spec: node.moduleSpecifier.text, typeOnly, line: line(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      imports.push({ spec: node.arguments[0].text, typeOnly: false, line: line(node) });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      imports.push({ spec: node.argument.literal.text, typeOnly: true, line: line(node) });
    } else if (ts.isIdentifier(node) && (node.text === 'Buffer' || node.text === 'NodeJS') && !ts.isPropertyAccessExpression(node.parent)) {
      globals.push({ name: node.text, line: line(node) });
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && (node.expression.text === 'Buffer' || node.expression.text === 'process')) {
      globals.push({ name: node.expression.text, line: line(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { imports, globals };
}

/** lib-relative path of a relative import ('./x.js' from lib/model/a.ts -> 'model/x.ts'), or null for packages. */
function target(fromRel: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  return relative(LIB, resolve(LIB, dirname(fromRel), spec)).replace(/\.js$/, '.ts');
}

/** The rule breaches of one module (`rel`: its path under lib/). */
export function breaches(rel: string, text: string): string[] {
  if (inList(rel, NODE_LAYER)) return [];
  const { imports, globals } = importsOf(rel, text);
  const out: string[] = [];
  for (const i of imports) {
    const at = `lib/${rel}:${i.line}`;
    if (NODE_BUILTINS.has(i.spec) || i.spec.startsWith('node:')) out.push(`${at} imports the Node built-in '${i.spec}'`);
    const t = target(rel, i.spec);
    if (t && !i.typeOnly && inList(t, NODE_LAYER)) out.push(`${at} imports the Node-layer module lib/${t}`);
    if (t && !i.typeOnly && inList(t, BROWSER_LAYER) && !inList(rel, BROWSER_LAYER)) out.push(`${at} imports the browser-layer module lib/${t}`);
    if (t && rel.startsWith('model/') && inList(t, ABOVE_MODEL)) out.push(`${at} (model layer) imports lib/${t} from a layer above it`);
  }
  for (const g of globals) out.push(`lib/${rel}:${g.line} uses the Node global ${g.name}`);
  return out;
}

describe('platform layers', () => {
  const files = sourceFiles(LIB).map((f) => relative(LIB, f));

  test('every NODE_LAYER and BROWSER_LAYER entry exists', () => {
    for (const e of [...NODE_LAYER, ...BROWSER_LAYER]) expect([e, files.some((f) => (e.endsWith('/') ? f.startsWith(e) : f === e))]).toEqual([e, true]);
  });

  test('the core imports no Node built-in and no Node-layer module, uses no Buffer or process; the model layer imports nothing above it', () => {
    const found = files.flatMap((f) => breaches(f, readFileSync(join(LIB, f), 'utf8')));
    expect(found).toEqual([]);
  });

  test('the check finds each kind of breach', () => {
    expect(breaches('model/x.ts', "import { readFileSync } from 'node:fs';")).toEqual(["lib/model/x.ts:1 imports the Node built-in 'node:fs'"]);
    expect(breaches('prune/x.ts', "import os from 'os';\nconst b = Buffer.alloc(1);")).toEqual([
      "lib/prune/x.ts:1 imports the Node built-in 'os'",
      'lib/prune/x.ts:2 uses the Node global Buffer',
    ]);
    expect(breaches('eval/x.ts', "const w = await import('node:worker_threads');")).toEqual(["lib/eval/x.ts:1 imports the Node built-in 'node:worker_threads'"]);
    expect(breaches('eval/x.ts', "import { fileSource } from '../node/files.js';")).toEqual(['lib/eval/x.ts:1 imports the Node-layer module lib/node/files.ts']);
    expect(breaches('eval/x.ts', "import type { AdapterInfo } from '../model/webgpu.js';")).toEqual([]);
    expect(breaches('model/x.ts', "import type { StatName } from '../prune/stats.js';")).toEqual(['lib/model/x.ts:1 (model layer) imports lib/prune/stats.ts from a layer above it']);
    expect(breaches('model/x.ts', "const { windowLosses } = await import('../eval/perplexity.js');")).toEqual(['lib/model/x.ts:1 (model layer) imports lib/eval/perplexity.ts from a layer above it']);
    expect(breaches('model/x.ts', 'let e: NodeJS.ErrnoException;')).toEqual(['lib/model/x.ts:1 uses the Node global NodeJS']);
    expect(breaches('eval/x.ts', "const v = process.env['X'];")).toEqual(['lib/eval/x.ts:1 uses the Node global process']);
    expect(breaches('node/x.ts', "import { readFileSync } from 'node:fs';")).toEqual([]);
    expect(breaches('browser/x.ts', "import { readFileSync } from 'node:fs';")).toEqual(["lib/browser/x.ts:1 imports the Node built-in 'node:fs'"]);
    expect(breaches('browser/x.ts', "import { fileSource } from '../node/files.js';")).toEqual(['lib/browser/x.ts:1 imports the Node-layer module lib/node/files.ts']);
    expect(breaches('browser/x.ts', "import { posixPath } from './path.js';")).toEqual([]);
    expect(breaches('eval/x.ts', "import { posixPath } from '../browser/path.js';")).toEqual(['lib/eval/x.ts:1 imports the browser-layer module lib/browser/path.ts']);
  });
});
