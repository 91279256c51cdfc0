/**
 * The public API is deliberate: every name lib/index.ts exports is documented in docs/api.md (one line each, the
 * name in backticks at the start of a list item), and docs/api.md documents nothing the package does not export.
 */
import { readFileSync } from 'node:fs';
import * as api from '../lib/index.js';

/** The names lib/index.ts exports, values and types, from its export statements. */
function exportedNames(): string[] {
  const source = readFileSync('lib/index.ts', 'utf8');
  const names: string[] = [];
  for (const m of source.matchAll(/^export (?:type )?\{([^}]*)\} from/gm)) {
    for (const part of m[1]!.split(',')) {
      const name = part.trim().replace(/^type /, '').split(' as ').pop()!.trim();
      if (name) names.push(name);
    }
  }
  return names.sort();
}

/** The names docs/api.md documents: backticked names (before any parenthesis) at the start of its list items. */
function documentedNames(): string[] {
  const doc = readFileSync('docs/api.md', 'utf8');
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
