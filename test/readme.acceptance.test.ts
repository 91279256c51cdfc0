/**
 * The README cannot drift: every shell and TypeScript block of README.md runs, as written, from the packed package
 * installed into an empty project (test/helpers/packed-package.ts), not from the clone.
 *
 *   ```bash install   the install block: not run (it clones from the network); the test does its steps itself
 *                     (`npm pack` of this repository, the tarball installed into an empty project) and checks that
 *                     the block says exactly that
 *   ```bash           run in order by bash (-e, -u, pipefail) in the project, each block in its own shell. A block
 *                     that reads LLM_PRUNE_SHARED (the walkthrough) gets the shared data folder there, as the README
 *                     tells its reader; the others (the quickstart) get none, and reach the hub instead: a local
 *                     server in the hub's URL layout (HF_ENDPOINT) when test/helpers/hub-server.ts is there, else
 *                     the shared folder beside the project, as on a developer machine
 *   ```ts             type-checked as example.mts against the installed package's types, then run as example.mjs
 *                     with node (the README says the example is valid JavaScript and TypeScript)
 *
 * The README's commands use small samples, so the whole file runs in a few minutes on an idle machine (the demo in
 * about half a minute). Each block may take up to 28 minutes, under jest's 30 of the acceptance suite: on a 2-core
 * machine at a load average of 40 the demo took over 20.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readRows } from '../lib/data/sources.js';
import { demoRepos } from './helpers/demo-hub.js';
import { startHubServer } from './helpers/hub-server.js';
import { installPackedPackage, PKG, ROOT } from './helpers/packed-package.js';
import { readmeBlocks, type CodeBlock } from './helpers/readme-blocks.js';
import { SHARED_DIR, sharedPath } from './helpers/shared.js';

const README = readFileSync('README.md', 'utf8');
const BLOCKS = readmeBlocks(README);
const SHELL = BLOCKS.filter((b) => ['bash', 'sh', 'shell'].includes(b.lang) && !b.tags.includes('install'));

let tmp: string;
let project: string;
let tarball: string;
let hub: Hub;

/** Where the blocks that download reach the hub, and how to stop it. */
interface Hub {
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * The hub for the quickstart: test/helpers/hub-server.ts serving, in the hub's URL layout, the demo's model
 * (TinyStories-656K) and data made from the shared folder's files; the quickstart's `demo` downloads them from it
 * (HF_ENDPOINT) as it would from the Hugging Face hub.
 */
async function startHub(): Promise<Hub> {
  const data = (f: string): string => sharedPath('data', f);
  const server = await startHubServer(
    demoRepos(sharedPath('models', 'TinyStories-656K'), {
      wikitext: await readRows(data('wikitext-2-raw-v1/test.jsonl')),
      c4: readFileSync(data('c4/c4-train.00000-of-01024.head1000.jsonl'), 'utf8'),
      boolq: await readRows(data('tasks/boolq/validation.jsonl')),
      arcEasy: await readRows(data('tasks/arc_easy/test.jsonl')),
    }),
  );
  return { env: { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: join(tmp, 'hub') }, close: () => server.close() };
}

/** The environment of a block: a user's, with the caches in the test's folder; the shared folder if it reads one. */
function blockEnv(block: Pick<CodeBlock, 'code'>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    LLM_PRUNE_SHARED: '',
    LLM_PRUNE_MODEL: '',
    LLM_PRUNE_DATA: '',
    LLM_PRUNE_CACHE: join(tmp, 'cache'),
    npm_config_offline: 'true', // npx runs the installed package, never a download
    ...hub.env,
  };
  if (block.code.includes('LLM_PRUNE_SHARED')) base['LLM_PRUNE_SHARED'] = resolve(SHARED_DIR);
  return base;
}

/**
 * Run in the project; throws with the end of stderr (and says so when it timed out) unless it exits 0. Asynchronous:
 * the local hub server answers from this process's event loop while the command runs.
 */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 1_680_000 });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolvePromise({ stdout, stderr });
      const why = code === null ? `killed by ${signal ?? 'a signal'} (timed out after 28 min?)` : `exit code ${code}`;
      reject(new Error(`${command} ${args.slice(0, 2).join(' ')}...: ${why}\n${stderr.slice(-3000)}`));
    });
  });
}

beforeAll(async () => {
  sharedPath('models', 'c4-llama-7m'); // fails loudly without the shared folder
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-readme-'));
  ({ project, tarball } = installPackedPackage(tmp));
  hub = await startHub();
});

afterAll(async () => {
  await hub?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the install block says what the test does: npm pack in a clone, the tarball installed in a project', () => {
  const install = BLOCKS.filter((b) => b.tags.includes('install'));
  expect(install).toHaveLength(1);
  const code = install[0]!.code;
  expect(code).toMatch(/^cd tfjs-llm-prune && npm ci && npm pack\b/m);
  expect(code).toContain(`npm install /path/to/tfjs-llm-prune/${tarball}`);
  expect(tarball).toBe(`${PKG.name}-${PKG.version}.tgz`);
});

test('the README has shell blocks to run and one TypeScript block', () => {
  expect(SHELL.length).toBeGreaterThanOrEqual(2);
  expect(BLOCKS.filter((b) => b.lang === 'ts')).toHaveLength(1);
  expect(BLOCKS.every((b) => ['bash', 'ts'].includes(b.lang))).toBe(true); // no block the test would skip
});

describe.each(SHELL.map((b) => [`line ${b.line}`, b] as const))('shell block at README %s', (_where, block) => {
  test('runs from the installed package and exits 0', async () => {
    await run('bash', ['-euo', 'pipefail', '-c', block.code], blockEnv(block));
  });
});

test('what the shell blocks made: the demo report, pruned, converted and fine-tuned checkpoints', () => {
  for (const f of [
    'runs/demo/results.md',
    'runs/wanda-50/config.json',
    'runs/wanda-50/report.json',
    'runs/wanda-2of4c/config.json',
    'runs/wanda-2of4/model.safetensors',
    'runs/wanda-50-lora/merged/config.json',
  ]) {
    expect([f, existsSync(join(project, f))]).toEqual([f, true]);
  }
  const report = JSON.parse(readFileSync(join(project, 'runs/wanda-50/report.json'), 'utf8')) as { sparsity: { overall: number } };
  expect(report.sparsity.overall).toBeCloseTo(0.5, 3);
  expect(existsSync(join(project, 'node_modules', PKG.name, 'runs'))).toBe(false); // nothing written into the package
});

test('the library example type-checks against the installed package and runs with node', async () => {
  const code = BLOCKS.find((b) => b.lang === 'ts')!.code;
  writeFileSync(join(project, 'example.mts'), code);
  writeFileSync(join(project, 'example.mjs'), code);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: ['example.mts'],
    }),
  );
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, encoding: 'utf8' });
  const r = await run(process.execPath, ['example.mjs'], blockEnv({ code }));
  expect(r.stdout).toMatch(/^zeros 0\.5$/m);
  expect(r.stdout).toMatch(/^ppl \d+(\.\d+)? boolq \d/m);
});
