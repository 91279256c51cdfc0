#!/usr/bin/env node
/**
 * Builds dist/lib (the package's JavaScript and type declarations) from lib/ with tsconfig.build.json: tests,
 * benchmarks and scripts are type-checked by `npm test` (tsconfig.json) but never compiled into dist/.
 *
 * `npm pack` and an install from git run this as `prepare`. In a fresh clone the compiler is not there yet: this
 * script then says so and installs the locked dependencies first (`npm ci --ignore-scripts`), so that `npm pack`
 * works right after `git clone`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(what, command, args) {
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`build: ${what} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})\n`);
    process.exit(1);
  }
}

if (!existsSync(tsc)) {
  process.stderr.write('build: the TypeScript compiler is not installed (node_modules/typescript): installing the locked dependencies first (npm ci --ignore-scripts)\n');
  run('npm ci', process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund']);
}
rmSync(join(root, 'dist'), { recursive: true, force: true });
run('tsc -p tsconfig.build.json', process.execPath, [tsc, '-p', 'tsconfig.build.json']);
