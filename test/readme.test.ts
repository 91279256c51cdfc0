import { readFileSync } from 'node:fs';
import { readmeWithReference, START } from '../scripts/cli-reference.js';

describe('README', () => {
  const readme = readFileSync('README.md', 'utf8');

  test('the CLI reference matches the yargs definitions (regenerate: npx tsx scripts/cli-reference.ts --write)', async () => {
    expect(readme).toContain(START);
    expect(await readmeWithReference(readme)).toBe(readme);
  });

  test('the README test commands (fast suite, acceptance suite) are what .ci/run calls', () => {
    const ci = readFileSync('.ci/run', 'utf8');
    expect(readme).toContain('npm install && npm test');
    expect(ci).toMatch(/^npm test$/m);
    expect(readme).toContain('npm run test:acceptance');
    expect(ci).toMatch(/^npm run test:acceptance$/m);
    const scripts = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['test:acceptance']).toContain('jest.acceptance.config.js');
  });
});
