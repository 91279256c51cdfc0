/**
 * Structure rules of the developers' guide that a reader can check at a glance, enforced here so they stay true:
 * functions in lib/ are short enough to read at once (at most MAX_LINES lines, or a `// long: <reason>` comment
 * directly above them saying why not); the fast suite reaches for no shared models or data (only
 * `*.acceptance.test.ts` files may import test/helpers/shared.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const MAX_LINES = 80;
const LIB = join(process.cwd(), 'lib');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

type FunctionLike = ts.FunctionDeclaration | ts.MethodDeclaration | ts.ArrowFunction | ts.FunctionExpression | ts.ConstructorDeclaration;

function isFunctionLike(node: ts.Node): node is FunctionLike {
  return ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node) || ts.isConstructorDeclaration(node);
}

/** The statement that carries a function's leading comments (`const f = () => ...` keeps them on the statement). */
function commentHolder(node: ts.Node): ts.Node {
  let holder: ts.Node = node;
  while (holder.parent && (ts.isVariableDeclaration(holder.parent) || ts.isVariableDeclarationList(holder.parent) ||
    ts.isVariableStatement(holder.parent) || ts.isPropertyAssignment(holder.parent) || ts.isExportAssignment(holder.parent))) {
    holder = holder.parent;
  }
  return holder;
}

function hasLongReason(source: ts.SourceFile, node: ts.Node): boolean {
  const holder = commentHolder(node);
  const ranges = ts.getLeadingCommentRanges(source.text, holder.getFullStart()) ?? [];
  return ranges.some((r) => /^\/\/\s*long:\s*\S/.test(source.text.slice(r.pos, r.end)));
}

/** The functions of one source text longer than MAX_LINES lines without a stated reason, as `file:line name (n lines)`. */
function longFunctionsIn(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (isFunctionLike(node)) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const lines = source.getLineAndCharacterOfPosition(node.getEnd()).line - start + 1;
      if (lines > MAX_LINES && !hasLongReason(source, node)) {
        const name = node.name?.getText() ?? (ts.isVariableDeclaration(node.parent) ? node.parent.name.getText() : '<anonymous>');
        found.push(`${file}:${start + 1} ${name} (${lines} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('structure of lib/', () => {
  test(`no function over ${MAX_LINES} lines without a "// long: <reason>" comment above it`, () => {
    const found = sourceFiles(LIB).flatMap((file) => longFunctionsIn(file.slice(process.cwd().length + 1), readFileSync(file, 'utf8')));
    expect(found).toEqual([]);
  });

  test('the check finds long functions of every kind and accepts a stated reason', () => {
    const body = (n: number): string => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
    expect(longFunctionsIn('x.ts', `function f() {\n${body(MAX_LINES - 2)}\n}`)).toEqual([]);
    expect(longFunctionsIn('x.ts', `function f() {\n${body(MAX_LINES - 1)}\n}`)).toEqual([`x.ts:1 f (${MAX_LINES + 1} lines)`]);
    expect(longFunctionsIn('x.ts', `export const g = async () => {\n${body(MAX_LINES)}\n};`)).toEqual([`x.ts:1 g (${MAX_LINES + 2} lines)`]);
    expect(longFunctionsIn('x.ts', `class C {\n  m() {\n${body(MAX_LINES)}\n  }\n}`)).toEqual([`x.ts:2 m (${MAX_LINES + 2} lines)`]);
    expect(longFunctionsIn('x.ts', `// long: one numeric kernel reads best whole\nfunction f() {\n${body(MAX_LINES)}\n}`)).toEqual([]);
    expect(longFunctionsIn('x.ts', `// long: arrow functions too\nexport const g = () => {\n${body(MAX_LINES)}\n};`)).toEqual([]);
  });
});

describe('the fast suite needs no shared folder', () => {
  const TEST = join(process.cwd(), 'test');
  const SHARED_HELPER = join(TEST, 'helpers', 'shared.ts');
  const isFast = (f: string): boolean => f.endsWith('.test.ts') && !f.endsWith('.acceptance.test.ts');

  /** The relative modules a file imports statically (`from './x.js'`), as .ts paths. */
  function relativeImports(file: string): string[] {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/gm)].map((m) => join(file, '..', m[1]!.replace(/\.js$/, '.ts')));
  }

  /** The import chain from `file` to test/helpers/shared.ts, or null: helpers that import helpers count. */
  function chainToShared(file: string, seen = new Set<string>()): string[] | null {
    if (file === SHARED_HELPER) return [file];
    if (seen.has(file) || !file.startsWith(process.cwd()) || !existsSync(file)) return null;
    seen.add(file);
    for (const dep of relativeImports(file)) {
      const chain = chainToShared(dep, seen);
      if (chain) return [file, ...chain];
    }
    return null;
  }

  test('no fast test file imports test/helpers/shared.ts, directly or through a helper (shared models and data are for *.acceptance.test.ts)', () => {
    const offenders = sourceFiles(TEST)
      .filter(isFast)
      .map((f) => chainToShared(f))
      .filter((c): c is string[] => c !== null)
      .map((c) => c.map((f) => f.slice(process.cwd().length + 1)).join(' -> '));
    expect(offenders).toEqual([]);
  });

  test('sharedPath called from a fast test fails loudly, naming the test and what to do', async () => {
    const { sharedPath } = await import('./helpers/shared.js');
    expect(() => sharedPath('models', 'c4-llama-7m')).toThrow(
      /test\/structure\.test\.ts: a fast test asked for the shared file models\/c4-llama-7m; the fast suite must pass without \.\.\/shared \(move the test to a \*\.acceptance\.test\.ts file or use the fixture helpers\)$/,
    );
  });
});
