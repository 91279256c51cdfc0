/**
 * The package as users get it (slow: an acceptance check). `npm pack` builds the tarball; a fresh project in a
 * temporary folder installs it OFFLINE: its package-lock.json is made from this repository's (the runtime
 * dependencies at the versions and integrity hashes locked here, the package itself as `file:` the tarball) and
 * `npm ci --offline` takes every tarball from the npm cache that this repository's own `npm ci` filled (as in
 * CI). Then, from that project: `npx llm-prune --version` (the package's version, not the project's), `inspect`,
 * and `demo` (shrunk with --set) with LLM_PRUNE_SHARED pointing at the shared folder; the results must land in
 * the project's ./runs/demo and nothing in the installed package folder.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SHARED_DIR, sharedPath } from './helpers/shared.js';

interface Lock {
  packages: Record<string, Record<string, unknown> & { dev?: boolean }>;
}

const ROOT = process.cwd();
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown> & { version: string; name: string };
let tmp: string;
let project: string;

/** package-lock.json of a project that depends only on the tarball: this repository's runtime entries. */
function projectLock(tarball: string): Lock & Record<string, unknown> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lock;
  const root = lock.packages['']!;
  const packages: Lock['packages'] = {
    '': { name: 'user-project', version: '9.9.9', dependencies: { [pkg.name]: `file:${tarball}` } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: `file:${tarball}`,
      license: root['license'],
      dependencies: pkg['dependencies'],
      bin: pkg['bin'],
      engines: root['engines'],
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && !v.dev) packages[k] = v;
  return { name: 'user-project', version: '9.9.9', lockfileVersion: 3, requires: true, packages };
}

function npx(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('npx', ['--offline', 'llm-prune', ...args], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, LLM_PRUNE_SHARED: '', LLM_PRUNE_MODEL: '', LLM_PRUNE_DATA: '', LLM_PRUNE_CACHE: join(tmp, 'cache'), ...env },
    timeout: 900_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  sharedPath('models', 'c4-llama-7m'); // fails loudly without the shared folder
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-package-'));
  const out = execFileSync('npm', ['pack', '--pack-destination', tmp, '--silent'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  const tarball = out[out.length - 1]!;
  project = join(tmp, 'user-project');
  mkdirSync(project);
  execFileSync('cp', [join(tmp, tarball), project]);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'user-project', version: '9.9.9', private: true, dependencies: { [pkg.name]: `file:${tarball}` } }, null, 2),
  );
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(projectLock(tarball), null, 2));
  execFileSync('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the tarball holds the built library, the configs, README and LICENSE, and no tests', () => {
  const installed = join(project, 'node_modules', pkg.name);
  for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/lib/bin.js', 'dist/lib/cli.js', 'dist/lib/index.js', 'configs/demo.yaml']) {
    expect([f, existsSync(join(installed, f))]).toEqual([f, true]);
  }
  expect(existsSync(join(installed, 'test'))).toBe(false);
  expect(readdirSync(join(installed, 'dist'))).toEqual(['lib']); // no tests, benchmarks or scripts compiled
  expect(existsSync(join(installed, 'dist', 'lib', 'finetune', 'tfjs-gradients.js'))).toBe(true); // LoRA's gradients
  expect(existsSync(join(project, 'node_modules', '@tensorflow', 'tfjs'))).toBe(false); // tfjs-core and backends only
  expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toContain('MIT License');
});

test('npx llm-prune --version prints the package version, not the project one', () => {
  const r = npx(['--version']);
  expect({ code: r.code, out: r.stdout.trim() }).toEqual({ code: 0, out: pkg.version });
});

test('npx llm-prune inspect --model <shared c4-llama-7m>', () => {
  const r = npx(['inspect', '--model', sharedPath('models', 'c4-llama-7m')]);
  expect({ code: r.code, stderr: r.stderr.slice(-500) }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(JSON.parse(r.stdout)).toMatchObject({ architecture: expect.any(String) });
});

test('without a shared folder the demo names the variable and flag to set', () => {
  const r = npx(['demo']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: demo: the shared data folder .* was not found: set LLM_PRUNE_SHARED=.*--shared DIR/m);
});

test('npx llm-prune demo with LLM_PRUNE_SHARED writes ./runs/demo in the project, nothing in the package', () => {
  const r = npx(
    ['demo', '--set', 'calibration.nsamples=4', '--set', 'eval.maxWindows=2', '--set', 'eval.limit=2', '--set', 'prune[0].method=[wanda]'],
    { LLM_PRUNE_SHARED: resolve(SHARED_DIR) },
  );
  expect({ code: r.code, stderr: r.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(r.stderr).toContain(`demo model: ${join(resolve(SHARED_DIR), 'models', 'c4-llama-7m')} (the shared c4-llama-7m)`);
  const res = JSON.parse(r.stdout) as { output: string; computed: string[] };
  expect(res.output).toBe(join(project, 'runs', 'demo'));
  expect(res.computed).toEqual(['dense', 'wanda-unstructured-0.5']);
  expect(readdirSync(join(project, 'runs', 'demo')).sort()).toEqual(expect.arrayContaining(['results.json', 'results.md', 'settings']));
  expect(existsSync(join(project, 'node_modules', pkg.name, 'runs'))).toBe(false);
});

test('shipped configs by name from the installed package: run paper-grid --dry-run, run demo --dry-run', () => {
  for (const name of ['paper-grid', 'demo']) {
    const r = npx(['run', name, '--dry-run'], { LLM_PRUNE_SHARED: resolve(SHARED_DIR) });
    expect({ name, code: r.code, stderr: r.stderr.slice(-800) }).toEqual({ name, code: 0, stderr: expect.any(String) });
    expect(JSON.parse(r.stdout)).toMatchObject({ settings: expect.any(Array) });
  }
  const unknown = npx(['run', 'no-such-config']);
  expect(unknown.stderr).toMatch(/^error: --config: 'no-such-config' is neither a file nor a shipped config; shipped configs: .*demo.*paper-grid-c4-llama-7m/m);
});

describe('an uncaught library error in a user ESM script ends the process as Node does (exit 1, message first)', () => {
  const script = "import { initBackend, loadModel } from 'tfjs-llm-prune';\nawait initBackend('wasm');\nawait loadModel('/missing');\n";
  test.each([
    ['node', 'user.mjs', (f: string) => [f]],
    ['tsx', 'user.mts', (f: string) => [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), f]],
  ])('under %s', (_name, file, argv) => {
    writeFileSync(join(project, file), script);
    const r = spawnSync(process.execPath, argv(file), { cwd: project, encoding: 'utf8', timeout: 120_000 });
    expect({ code: r.status, short: r.stderr.length < 700 }).toEqual({ code: 1, short: true });
    expect(r.stderr).toMatch(/^CheckpointError: model '\/missing': folder does not exist/m);
    expect(r.stderr).not.toMatch(/tf-backend-wasm|tfjs-backend-wasm\.js/);
  });
});
