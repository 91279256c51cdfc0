import { readFileSync } from 'node:fs';

describe('README', () => {
  const readme = readFileSync('README.md', 'utf8');

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
