/**
 * One output, one writer, with real signals. `llm-prune` (lib/bin.ts) runs the writing commands in a child
 * process; `kill -9` of the command the user started must not leave that child running (it would go on writing
 * into the output a restarted run resumes), a second run into the same output is refused while the first works,
 * and a process killed inside the final write leaves the output either as it was or complete.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMMIT_STEPS } from '../lib/model/save.js';
import { TinyRandom, writeTinyCheckpoint } from './helpers/tiny-checkpoint.js';

let tmp: string;
let model: string;
let text: string; // JSONL, {"text": ...} rows
let dataDir: string; // laid out like shared/data (wikitext-2-raw-v1/test.jsonl)

const WORDS = 'the a once upon time little girl boy dog cat ran saw big small happy sad day park tree sun went home and then she he it was'.split(' ');

function writeText(file: string, rows: number, seed: number): void {
  const rng = new TinyRandom(seed);
  const line = (): string => Array.from({ length: 200 }, () => WORDS[Math.floor(rng.uniform() * WORDS.length)]).join(' ');
  writeFileSync(file, Array.from({ length: rows }, () => JSON.stringify({ text: line() + '.' })).join('\n') + '\n');
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-orphan-'));
  model = join(tmp, 'model');
  // big enough that a block of the layer loop takes a while (6 blocks of hidden 256)
  writeTinyCheckpoint(model, { numLayers: 6, hiddenSize: 256, intermediateSize: 768, numHeads: 8, maxPositions: 256 });
  text = join(tmp, 'text.jsonl');
  writeText(text, 200, 3);
  dataDir = join(tmp, 'data');
  mkdirSync(join(dataDir, 'wikitext-2-raw-v1'), { recursive: true });
  writeText(join(dataDir, 'wikitext-2-raw-v1', 'test.jsonl'), 400, 4);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const env = (): NodeJS.ProcessEnv => ({ ...process.env, LLM_PRUNE_CACHE: join(tmp, 'cache') });

/** `llm-prune ARGS` as a user starts it (lib/bin.ts under tsx). */
function start(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join('lib', 'bin.ts'), ...args], { cwd: process.cwd(), env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
}

function runToEnd(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('lib', 'bin.ts'), ...args], { cwd: process.cwd(), env: env(), encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stderr: r.stderr };
}

/** Every process below `pid` (children, grandchildren, ...). */
function descendants(pid: number): number[] {
  const rows = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).stdout.trim().split('\n');
  const children = new Map<number, number[]>();
  for (const r of rows) {
    const [p, pp] = r.trim().split(/\s+/).map(Number) as [number, number];
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie (ended, not yet reaped) is not running
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
};

const exited = (c: ChildProcess): Promise<void> => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.on('exit', () => r())));

const pruneArgs = (out: string): string[] => ['prune', '--model', model, '--method', 'wanda', '--nsamples', '32', '--seqlen', '128', '--calibration', text, '--out', out];

/** An experiment file: the dense model and one Wanda setting, evaluated on the generated WikiText-2 stand-in. */
function experiment(out: string): string {
  const file = `${out}.yaml`;
  writeFileSync(
    file,
    [`model: ${model}`, 'calibration:', `  source: ${text}`, '  nsamples: 32', '  seqlen: 128', 'prune:', '  - method: wanda', '    sparsity: 0.5',
      'eval:', '  ppl: [wikitext2]', '  seqlen: 64', `  dataDir: ${dataDir}`, `output: ${out}`, ''].join('\n'),
  );
  return file;
}

const COMMANDS: [string, (out: string) => string[], (out: string) => string][] = [
  ['prune', pruneArgs, (out) => `${out}.lock`],
  ['convert', (out) => ['convert', '--model', model, '--out', out, '--format', 'compressed'], (out) => `${out}.lock`],
  ['eval', (out) => ['eval', '--model', model, '--ppl', 'wikitext2', '--seqlen', '64', '--data-dir', dataDir, '--out', out], (out) => `${out}.lock`],
  ['run', (out) => ['run', experiment(out)], (out) => join(out, '.run.lock')],
  ['finetune', (out) => ['finetune', '--model', model, '--data', text, '--seqlen', '64', '--max-steps', '2000', '--out', out], (out) => `${out}.lock`],
];

describe.each(COMMANDS)('kill -9 of `llm-prune %s`', (name, args, lockOf) => {
  test('leaves no process of it running within 2 s', async () => {
    const out = join(tmp, `killed-${name}`);
    const cmd = start(args(out));
    try {
      // the worker has started the command's work once it holds the output's lock
      expect(await until(() => existsSync(lockOf(out)), 120_000)).toBe(true);
      const worker = JSON.parse(readFileSync(lockOf(out), 'utf8')) as { pid: number; supervisor: number };
      expect(worker.supervisor).toBe(cmd.pid);
      // Stop the worker first, so that it cannot finish on its own before the supervisor is killed: it must notice
      // that its parent is gone after it continues.
      const tree = descendants(cmd.pid!);
      expect(tree).toContain(worker.pid);
      process.kill(worker.pid, 'SIGSTOP');
      process.kill(cmd.pid!, 'SIGKILL');
      await exited(cmd);
      process.kill(worker.pid, 'SIGCONT');
      const t0 = Date.now();
      expect(await until(() => tree.every((p) => !alive(p)), 2000)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      cmd.kill('SIGKILL');
    }
  });
});

test('kill -9 of `llm-prune prune` mid-block, then --resume at once: the checkpoint is byte-identical to an uninterrupted run', async () => {
  const whole = join(tmp, 'whole');
  expect(runToEnd(pruneArgs(whole)).status).toBe(0);

  const out = join(tmp, 'resumed');
  const cmd = start(pruneArgs(out));
  const state = join(`${out}.partial`, 'resume', 'state.json');
  expect(await until(() => existsSync(state), 240_000)).toBe(true); // a block is finished: the next one is under way
  const worker = (JSON.parse(readFileSync(`${out}.lock`, 'utf8')) as { pid: number }).pid;
  const tree = descendants(cmd.pid!);
  process.kill(cmd.pid!, 'SIGKILL'); // what the OOM killer or an impatient user does
  await exited(cmd);
  const resumed = runToEnd([...pruneArgs(out), '--resume']); // at once: without the watchdog the worker would still be writing
  expect({ status: resumed.status, stderr: resumed.stderr.slice(-1500) }).toMatchObject({ status: 0, stderr: expect.stringMatching(/resuming \S*resumed\.partial at block \d+ of 6/) });
  expect(alive(worker)).toBe(false);
  expect(tree.filter(alive)).toEqual([]);
  expect(readdirSync(tmp).filter((n) => n.startsWith('resumed'))).toEqual(['resumed']); // no .partial, no lock
  expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors')))).toBe(true);
  expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).resumedAt).toHaveLength(1);
});

test('a second run into the same --out is refused with one line naming the first; the first completes', async () => {
  const out = join(tmp, 'twice');
  const first = start(pruneArgs(out));
  let firstErr = '';
  first.stderr!.on('data', (d: Buffer) => (firstErr += d.toString()));
  try {
    expect(await until(() => existsSync(`${out}.lock`), 120_000)).toBe(true);
    const holder = JSON.parse(readFileSync(`${out}.lock`, 'utf8')) as { pid: number };
    const second = runToEnd([...pruneArgs(out), '--resume']);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`(^|\\n)error: \\S*twice is being written by llm-prune prune \\(process ${holder.pid} on \\S+, started [^)]+\\); wait for it to finish, or pass --force-unlock if that process is gone \\(lock file \\S*twice\\.lock\\)\\n$`));
    await exited(first);
    expect({ code: first.exitCode, stderr: firstErr.slice(-500) }).toMatchObject({ code: 0 });
    expect(readdirSync(out).sort()).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'report.json']));
    expect(existsSync(`${out}.lock`)).toBe(false);
  } finally {
    first.kill('SIGKILL');
  }
});

test('SIGKILL at every step of the final write: the output is the old one or the complete new one', () => {
  const script = join(tmp, 'commit.mts');
  const url = pathToFileURL(resolve('lib/model/save.ts')).href;
  writeFileSync(
    script,
    [
      `import { writeFileSync } from 'node:fs';`,
      `import { StagedFolder } from '${url}';`,
      `const [out, killAt] = process.argv.slice(2);`,
      `const staged = new StagedFolder(out, { overwrite: true });`,
      `writeFileSync(staged.path('model.safetensors'), 'new weights');`,
      `writeFileSync(staged.path('report.json'), 'new report');`,
      `if (killAt === 'before') process.kill(process.pid, 'SIGKILL');`,
      `staged.commit((step) => { if (step === killAt) process.kill(process.pid, 'SIGKILL'); });`,
    ].join('\n'),
  );
  const OLD = { 'model.safetensors': 'old weights', 'report.json': 'old report' };
  const NEW = { 'model.safetensors': 'new weights', 'report.json': 'new report' };
  const contents = (dir: string): Record<string, string> => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
  for (const step of ['before', ...COMMIT_STEPS]) {
    const out = join(tmp, `final-${step}`);
    mkdirSync(out);
    for (const [f, v] of Object.entries(OLD)) writeFileSync(join(out, f), v);
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, out, step], { encoding: 'utf8' });
    expect({ step, signal: r.signal, stderr: r.stderr }).toEqual({ step, signal: 'SIGKILL', stderr: '' });
    // what the next run into the same output finds (a killed commit's moved-aside folder put back)
    const next = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('${url}').then((m) => new m.StagedFolder(${JSON.stringify(out)}, { overwrite: true }).abandon())`], { encoding: 'utf8' });
    expect(next.stderr).toBe('');
    const got = contents(out);
    const expected = ['before', 'synced', 'old-moved-aside'].includes(step) ? OLD : NEW;
    expect({ step, got }).toEqual({ step, got: expected });
    expect(readdirSync(tmp).filter((n) => n.startsWith(`final-${step}.`))).toEqual([]); // no .partial, .old or lock left
  }
});
