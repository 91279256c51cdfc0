/** docs/cli.md is the help of every command as the yargs definitions print it (regenerate: npm run docs:cli). */
import { readFileSync } from 'node:fs';
import { CLI_DOC, cliReference, commandNames } from '../../scripts/cli-reference.js';

test('docs/cli.md matches the yargs definitions (regenerate: npm run docs:cli)', async () => {
  expect(readFileSync(CLI_DOC, 'utf8')).toBe(await cliReference());
});

test('docs/cli.md has a section for every command, convert included', async () => {
  const names = await commandNames();
  expect(names).toEqual(['inspect', 'generate', 'prune', 'convert', 'eval', 'run', 'report', 'demo', 'finetune']);
  const doc = readFileSync(CLI_DOC, 'utf8');
  for (const n of names) expect(doc).toContain(`\n## llm-prune ${n}\n`);
});
