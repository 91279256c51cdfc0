/**
 * The README and docs/ as a newcomer reads them: short, every command listed, every link to a file that exists, the
 * test commands the ones CI runs, and no notes about how the work went (issue numbers, sessions, load diaries) in
 * README.md, docs/ or lib/. The README's commands themselves run from the packed package in
 * test/readme.acceptance.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { buildCli } from '../lib/cli/index.js';
import { readmeBlocks } from './helpers/readme-blocks.js';

const README = readFileSync('README.md', 'utf8');
const DOCS = readdirSync('docs')
  .filter((f) => f.endsWith('.md'))
  .map((f) => join('docs', f));

/**
 * Pages the README and the doc index link to that are written on other branches of this change (the public API,
 * the CLI reference, downloads, the new methods and model families, the browser app). Empty once they are merged.
 */
const PENDING = new Set<string>();

/** Every source file under `dir` with one of `extensions`. */
function files(dir: string, extensions: string[]): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), extensions) : extensions.some((x) => e.name.endsWith(x)) ? [join(dir, e.name)] : [],
  );
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens. */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  for (const [, title] of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    slugs.add(title!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return slugs;
}

describe('README', () => {
  test('at most 300 lines, not on the registry yet (says so), ESM stated for the library example', () => {
    expect(README.split('\n').length).toBeLessThanOrEqual(300);
    expect(README).toContain('**not published on the npm registry yet**');
    expect(README).toMatch(/ES module, so use it from `\.mjs` or `\.mts` files, or from a package with `"type": "module"`/);
    const ts = readmeBlocks(README).filter((b) => b.lang === 'ts');
    expect(ts).toHaveLength(1);
    expect(ts[0]!.code).toMatch(/evaluate\(m, \{\s*dataDir:/); // the data folder given explicitly
  });

  test('the command table lists exactly the commands of the CLI, and links the full reference', async () => {
    const help = await buildCli([]).getHelp();
    const defined = [...help.slice(help.indexOf('Commands:')).matchAll(/^\s+llm-prune (\w+)/gm)].map((m) => m[1]!);
    expect(defined.length).toBeGreaterThanOrEqual(9);
    const table = README.slice(README.indexOf('## Commands'), README.indexOf('## Library'));
    const listed = [...table.matchAll(/^\| `llm-prune (\w+)` \|/gm)].map((m) => m[1]!);
    expect(listed).toEqual(defined);
    expect(table).toContain('[docs/cli.md](docs/cli.md)');
  });

  test('the test commands it names are what .ci/run calls', () => {
    const ci = readFileSync('.ci/run', 'utf8');
    expect(README).toContain('`npm ci && npm test`');
    expect(ci).toMatch(/^npm ci\b/m);
    expect(ci).toMatch(/^npm test$/m);
    expect(README).toContain('`npm run test:acceptance`');
    expect(ci).toMatch(/^npm run test:acceptance$/m);
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['test:acceptance']).toContain('jest.acceptance.config.js');
  });

  test('the results table gives date, commit and setting of every row', () => {
    const table = README.slice(README.indexOf('## Results'), README.indexOf('## Limits'));
    const rows = table.split('\n').filter((l) => /^\| [^-|]/.test(l)).slice(1);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) expect(row).toMatch(/^\| [^|]+ \| 20\d\d-\d\d-\d\d \| [0-9a-f]{7} \| /);
  });
});

describe('README and docs/', () => {
  test('every relative link names a file of the repository, and a heading of it when it has an anchor', () => {
    const broken: string[] = [];
    for (const page of ['README.md', 'CHANGELOG.md', ...DOCS]) {
      const text = readFileSync(page, 'utf8');
      for (const [, target, anchor] of text.matchAll(/\]\(([^)#\s]*)(?:#([^)\s]*))?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // https:, mailto:
        const path = target ? relative('.', join(dirname(page), target)) : page;
        if (PENDING.has(path)) continue;
        if (!existsSync(path)) broken.push(`${page}: ${target}`);
        else if (anchor && !headingSlugs(readFileSync(path, 'utf8')).has(anchor)) broken.push(`${page}: ${target}#${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('no notes about how the work went in README.md, docs/ or lib/', () => {
    const diary = [
      /(?<!tfjs )\bissues? #?\d+/i, // the project's issue tracker (upstream issues are named with their project)
      /\bsessions?\b/i,
      /\bhelpers?'s? (time|session|branch)/i,
      /\bfinal (main|code)\b/i,
      /\brun [12]\b.*\bbefore `?--threads/i,
      /\bthe other engineer/i,
      /\bthis evening\b|\bat the end of the session\b/i,
    ];
    const found: string[] = [];
    for (const file of ['README.md', ...DOCS, ...files('lib', ['.ts'])]) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const re of diary) if (re.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    // lib/ comments carry no measurement diaries either: no load averages
    for (const file of files('lib', ['.ts'])) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/load average/i.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
