/**
 * The public API is deliberate: every name lib/index.ts exports (its own and lib/api.ts's, the core's) is documented
 * in docs/api.md (one line each, the name in backticks at the start of a list item), and docs/api.md documents
 * nothing the package does not export. The browser entry (lib/browser/index.ts) exports the core's API and the
 * browser layer, and no Node-only name.
 */
import { readFileSync } from 'node:fs';
import * as api from '../lib/index.js';
import * as browserApi from '../lib/browser/index.js';

/** The names `file` exports by name, values and types, from its export statements. */
function namesOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const names: string[] = [];
  for (const m of source.matchAll(/^export (?:type )?\{([^}]*)\} from/gm)) {
    for (const part of m[1]!.split(',')) {
      const name = part.trim().replace(/^type /, '').split(' as ').pop()!.trim();
      if (name) names.push(name);
    }
  }
  return names.sort();
}

/** The names lib/index.ts exports: its own and, through `export *`, lib/api.ts's. */
function exportedNames(): string[] {
  expect(readFileSync('lib/index.ts', 'utf8')).toContain("export * from './api.js';");
  return [...namesOf('lib/index.ts'), ...namesOf('lib/api.ts')].sort();
}

const BROWSER_SECTION = '## The browser entry';

/**
 * The names docs/api.md documents: backticked names (before any parenthesis) at the start of its list items; those of
 * the package's entry (before the browser section), or of the browser section.
 */
function documentedNames(section: 'package' | 'browser' = 'package'): string[] {
  const [main, browser] = readFileSync('docs/api.md', 'utf8').split(BROWSER_SECTION);
  const doc = section === 'package' ? main! : browser!;
  const names = new Set<string>();
  for (const line of doc.split('\n')) {
    const head = /^- ((?:`[^`]+`(?:, | and )?)+)/.exec(line)?.[1];
    if (!head) continue;
    for (const m of head.matchAll(/`(\w+)[^`]*`/g)) names.add(m[1]!);
  }
  for (const m of doc.matchAll(/`(\w+)` is one of them/g)) names.add(m[1]!);
  for (const m of doc.matchAll(/; `(\w+)` the seven/g)) names.add(m[1]!);
  return [...names].sort();
}

test('every export of lib/index.ts is documented in docs/api.md, and nothing more', () => {
  expect(documentedNames()).toEqual(exportedNames());
});

test('the value exports are the ones lib/index.ts names (no export * slips more in)', () => {
  const values = Object.keys(api).sort();
  const names = exportedNames();
  expect(values.filter((v) => !names.includes(v))).toEqual([]);
  expect(names.length).toBeLessThan(130);
});

test('the browser entry: the core API and the browser layer, each browser-layer name documented, no Node-only name', () => {
  expect(readFileSync('lib/browser/index.ts', 'utf8')).toContain("export * from '../api.js';");
  const core = namesOf('lib/api.ts');
  const layer = namesOf('lib/browser/index.ts');
  expect(layer.filter((n) => core.includes(n))).toEqual([]);
  expect(documentedNames('browser')).toEqual(layer);
  const values = Object.keys(browserApi).sort();
  expect(values.filter((v) => !core.includes(v) && !layer.includes(v))).toEqual([]);
  for (const nodeOnly of namesOf('lib/index.ts')) if (!layer.includes(nodeOnly)) expect([nodeOnly, nodeOnly in browserApi]).toEqual([nodeOnly, false]);
  // the same name, the browser's own: a File or Blob, not a path
  expect(browserApi.fileSource).not.toBe(api.fileSource);
});
