/**
 * The package as users get it (slow: an acceptance check): the tarball installed offline into a fresh project
 * (test/helpers/packed-package.ts). Then, from that project: `npx llm-prune --version` (the package's version, not
 * the project's), `inspect`, and `demo` (shrunk with --set) with LLM_PRUNE_SHARED pointing at the shared folder; the results must land in
 * the project's ./runs/demo and nothing in the installed package folder.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deadEndpoint } from './helpers/hub-server.js';
import { installPackedPackage, PKG as pkg, ROOT } from './helpers/packed-package.js';
import { SHARED_DIR, sharedPath } from './helpers/shared.js';

let tmp: string;
let project: string;

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
  project = installPackedPackage(tmp).project;
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

test('without a shared folder and offline the demo says in one line what to do', async () => {
  const dead = await deadEndpoint(); // a local port where nothing listens
  const r = npx(['demo'], { HF_ENDPOINT: dead, HF_HUB_CACHE: join(tmp, 'hub') });
  expect(r.code).toBe(1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  expect(errors).toEqual([expect.stringContaining(`the Hugging Face hub at ${dead} cannot be reached (ECONNREFUSED); connect to the network once`)]);
  expect(errors[0]).toMatch(/^error: demo: .* set LLM_PRUNE_SHARED=.*--shared DIR/);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
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
    // a few hundred bytes, wherever the project lies (its path appears in each stack frame)
    const stderr = r.stderr.split(project).join('.');
    expect({ code: r.status, short: stderr.length < 700, stderr }).toEqual({ code: 1, short: true, stderr: expect.any(String) });
    expect(r.stderr).toMatch(/^CheckpointError: model '\/missing': folder does not exist/m);
    expect(r.stderr).not.toMatch(/tf-backend-wasm|tfjs-backend-wasm\.js/);
  });
});
