/**
 * Interruptions with real signals: the `llm-prune` command (lib/bin.ts, run with tsx) is started in a child
 * process, a signal is sent once its staged output folder exists, and the test checks the exit code, the one line
 * it prints and that no `.partial-*` folder is left. Also: a later StagedFolder into the same output removes the
 * partial folders of dead processes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StagedFolder } from '../lib/model/save.js';
import { removeStaleStaged } from '../lib/interrupt.js';
import { makeSyntheticLlama } from '../scripts/make-synthetic-llama.js';
import { SYNTHETIC_C4, writeSyntheticData } from './helpers/synthetic-text.js';
import { writeTinyCheckpoint } from './helpers/tiny-checkpoint.js';
import { writeTinyTokenizer } from './helpers/tiny-tokenizer.js';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

let tmp: string;
let model: string; // random weights in c4-llama-7m's shape (6 layers, hidden 256): long enough to interrupt
let tied: string; // a tiny checkpoint with tied embeddings
let data: string; // a data folder laid out like shared/data (seeded rows)
let c4: string; // its C4-like calibration documents
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-signals-'));
  writeTinyTokenizer(join(tmp, 'tokenizer'), { vocabSize: 4096 });
  model = join(tmp, 'model');
  makeSyntheticLlama({ shape: 'tiny', out: model, layers: 6, hidden: 256, intermediate: 768, heads: 8, kvHeads: 4, seed: 3, tokenizerFrom: join(tmp, 'tokenizer') });
  tied = writeTinyCheckpoint(join(tmp, 'tied'), { seed: 4, tie: 'lm_head' }).dir;
  data = writeSyntheticData(join(tmp, 'data'), { docs: 300, articles: 2, items: 2000 });
  c4 = join(data, SYNTHETIC_C4);
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Start `llm-prune ARGS` (lib/bin.ts under tsx); `send(pid)` is called once `ready()` holds. */
function interrupt(args: string[], ready: (stderr: string) => boolean, send: (pid: number) => void, detached = false): Promise<Exit> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('lib', 'bin.ts'), ...args], {
      cwd: process.cwd(),
      env: { ...process.env, LLM_PRUNE_CACHE: join(tmp, 'cache') },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let sent = false;
    const timer = setInterval(() => {
      if (!sent && ready(stderr)) {
        sent = true;
        setTimeout(() => send(child.pid!), 500);
      }
    }, 100);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      // the stderr pipe may still hold the last line
      setTimeout(() => resolvePromise({ code, signal, stderr: sent ? stderr : `(never interrupted: finished first)\n${stderr}` }), 200);
    });
  });
}

const partials = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).filter((n) => n.includes('.partial-')) : []);

test('SIGTERM during prune: exit 143, one line naming the removed partial output, no .partial folder left', async () => {
  const dir = join(tmp, 'prune');
  mkdirSync(dir);
  const r = await interrupt(
    [
      'prune', '--model', model, '--method', 'wanda', '--nsamples', '64', '--seqlen', '256',
      '--calibration', c4, '--out', join(dir, 'w'), '--no-resumable',
    ],
    () => partials(dir).length > 0,
    (pid) => process.kill(pid, 'SIGTERM'), // what `kill PID` or a process manager does: only the command's process
  );
  expect({ code: r.code, tail: r.stderr.slice(-600) }).toEqual({ code: 143, tail: expect.stringMatching(/interrupted \(SIGTERM\): llm-prune prune stopped; removed the partial output \S*w\.partial-\d+\n$/) });
  expect(readdirSync(dir)).toEqual([]);
});

test('SIGINT during a resumable prune: exit 130, the resume state in <out>.partial kept and named; --resume completes it', async () => {
  const dir = join(tmp, 'prune-resumable');
  mkdirSync(dir);
  const args = [
    'prune', '--model', model, '--method', 'wanda', '--nsamples', '64', '--seqlen', '256',
    '--calibration', c4, '--out', join(dir, 'w'),
  ];
  const r = await interrupt(
    args,
    () => existsSync(join(dir, 'w.partial', 'resume', 'state.json')),
    (pid) => process.kill(pid, 'SIGINT'),
  );
  expect({ code: r.code, tail: r.stderr.slice(-600) }).toEqual({
    code: 130,
    tail: expect.stringMatching(
      /interrupted \(SIGINT\): llm-prune prune stopped; kept the finished blocks in \S*w\.partial: rerun the same command with --resume to continue\n$/,
    ),
  });
  expect(readdirSync(dir)).toEqual(['w.partial']); // and no lock left behind
  const done = spawnSync(process.execPath, ['--import', 'tsx', join('lib', 'bin.ts'), ...args, '--resume'], {
    cwd: process.cwd(),
    env: { ...process.env, LLM_PRUNE_CACHE: join(tmp, 'cache') },
    encoding: 'utf8',
    timeout: 300_000,
  });
  expect({ status: done.status, stderr: done.stderr.slice(-1500) }).toMatchObject({ status: 0, stderr: expect.stringMatching(/resuming \S*w\.partial at block \d+ of \d+/) });
  expect(readdirSync(dir)).toEqual(['w']);
  expect(existsSync(join(dir, 'w', 'report.json'))).toBe(true);
});

test('Ctrl-C (SIGINT to the process group) during run: exit 130, the finished dense result and the pruning\'s resume state kept, no .partial-<pid> folder left', async () => {
  const out = join(tmp, 'exp-out');
  const config = join(tmp, 'exp.yaml');
  writeFileSync(
    config,
    [
      `model: ${model}`,
      'calibration:',
      `  source: ${c4}`,
      '  nsamples: 64',
      '  seqlen: 256',
      'prune:',
      '  - method: wanda',
      '    sparsity: 0.5',
      'dense: true', // evaluated first (2 task items): a finished setting to keep
      'eval:',
      '  ppl: []',
      '  tasks: [arc_easy]',
      '  limit: 2',
      `  dataDir: ${data}`,
      `output: ${out}`,
      '',
    ].join('\n'),
  );
  const staged = join(out, 'checkpoints', 'wanda-unstructured-0.5.partial');
  const r = await interrupt(
    ['run', config],
    () => existsSync(join(staged, 'resume', 'state.json')), // the setting's pruning has a resume state
    (pid) => process.kill(-pid, 'SIGINT'), // a terminal's Ctrl-C: every process of the group
    true,
  );
  expect({ code: r.code, tail: r.stderr.slice(-600) }).toEqual({
    code: 130,
    tail: expect.stringMatching(
      /interrupted \(SIGINT\): llm-prune run stopped; settings finished before the interruption are kept in \S*exp-out: the same command continues where it stopped; kept the finished blocks in \S*wanda-unstructured-0\.5\.partial: the same command continues it\n$/,
    ),
  });
  expect(partials(join(out, 'checkpoints'))).toEqual([]);
  expect(existsSync(join(staged, 'resume', 'state.json'))).toBe(true); // continued by the next run (test/experiment/run.test.ts)
  expect(readdirSync(join(out, 'settings'))).toEqual(['dense.json']);
  expect(readdirSync(out).filter((n) => n.includes('lock'))).toEqual([]); // the run's lock removed
  expect(readdirSync(join(out, 'checkpoints')).filter((n) => n.includes('lock'))).toEqual([]);
});

test('SIGTERM during finetune: exit 143, the trainer checkpoint kept (resumable), no partial checkpoint folder', async () => {
  const out = join(tmp, 'ft');
  const r = await interrupt(
    [
      'finetune', '--model', tied, '--data', c4,
      '--seqlen', '64', '--max-steps', '2000', '--checkpoint-every', '2', '--out', out,
    ],
    () => existsSync(join(out, 'checkpoint')),
    (pid) => process.kill(pid, 'SIGTERM'),
  );
  expect({ code: r.code, tail: r.stderr.slice(-600) }).toEqual({
    code: 143,
    tail: expect.stringMatching(
      /interrupted \(SIGTERM\): llm-prune finetune stopped; (removed the partial output \S*checkpoint\.partial-\d+; )?kept the trainer checkpoint \S*ft\/checkpoint: the same command continues from its last saved step\n$/,
    ),
  });
  expect(readdirSync(out).filter((n) => n.includes('.partial-'))).toEqual([]);
  expect(existsSync(join(out, 'checkpoint'))).toBe(true);
});

test('SIGINT during eval: exit 130, nothing written', async () => {
  const outFile = join(tmp, 'eval.json');
  const r = await interrupt(
    ['eval', '--model', model, '--tasks', 'hellaswag', '--limit', '2000', '--data-dir', data, '--out', outFile],
    (stderr) => stderr.includes('tasks: '),
    (pid) => process.kill(pid, 'SIGINT'),
  );
  expect({ code: r.code, tail: r.stderr.slice(-300) }).toEqual({ code: 130, tail: expect.stringMatching(/interrupted \(SIGINT\): llm-prune eval stopped; no partial output was left\n$/) });
  expect(existsSync(outFile)).toBe(false);
  expect(existsSync(`${outFile}.lock`)).toBe(false);
});

test('a later run into the same --out removes the .partial-<pid> folders of dead processes, not those of live ones, and puts back a moved-aside older output', () => {
  const dir = join(tmp, 'stale');
  mkdirSync(dir);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  mkdirSync(join(dir, `m.partial-${deadPid}`));
  writeFileSync(join(dir, `m.partial-${deadPid}`, 'model.safetensors'), 'x');
  mkdirSync(join(dir, `m.old-${deadPid}`));
  mkdirSync(join(dir, `m.partial-${process.ppid}`)); // a live process (jest's parent)
  mkdirSync(join(dir, `other.partial-${deadPid}`)); // another output's: not ours to judge
  const notes: string[] = [];
  const staged = new StagedFolder(join(dir, 'm'), { onNote: (l) => notes.push(l) });
  staged.abandon();
  expect(readdirSync(dir).sort()).toEqual(['m', `m.partial-${process.ppid}`, `other.partial-${deadPid}`]); // m.old-<dead> is m again
  expect(notes).toEqual([`removed m.old-${deadPid} (put back as m), m.partial-${deadPid} (left by interrupted runs whose process is gone)`]);
  expect(removeStaleStaged(join(dir, 'other'))).toEqual([`other.partial-${deadPid}`]);
});
