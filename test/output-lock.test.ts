/**
 * One writer per output (lib/output-lock.ts): the lock file is created atomically and names its holder; a second
 * process is refused while the holder lives; the lock of a dead holder, of a reused pid, of a stale other host or of
 * an orphan whose supervisor is gone is taken over; of many processes racing for one lock exactly one wins.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { OutputLockedError } from '../lib/errors.js';
import { acquireOutputLock, judge, parseHolder, processStartTime, STALE_MS } from '../lib/output-lock.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-lock-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The pid of a process that has ended. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

const holder = (over: Record<string, unknown>): string =>
  JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-01-01T00:00:00.000Z', procStart: null, supervisor: null, command: 'llm-prune prune', ...over }) + '\n';

test('the lock names its holder; a second taker is refused with one line naming it; release removes the file', () => {
  const file = join(tmp, 'a.lock');
  const lock = acquireOutputLock(file, { command: 'llm-prune prune' });
  const h = parseHolder(readFileSync(file, 'utf8'));
  expect(h).toMatchObject({ pid: process.pid, host: hostname(), command: 'llm-prune prune', supervisor: null });
  expect(h!.procStart).toBe(processStartTime(process.pid)); // Linux: the kernel's start time
  expect(readdirSync(tmp)).toEqual(['a.lock']); // no temporary file left
  lock.release();
  lock.release(); // twice is harmless
  expect(existsSync(file)).toBe(false);
});

test('a live holder (another process) refuses; --force-unlock takes over and says so', async () => {
  const file = join(tmp, 'live.lock');
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeFileSync(file, holder({ pid: sleeper.pid, procStart: processStartTime(sleeper.pid!) }));
    let err: unknown = null;
    try {
      acquireOutputLock(file, { output: join(tmp, 'live') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OutputLockedError);
    expect((err as Error).message).toBe(
      `${join(tmp, 'live')} is being written by llm-prune prune (process ${sleeper.pid} on ${hostname()}, started 2026-01-01T00:00:00.000Z); ` +
        `wait for it to finish, or pass --force-unlock if that process is gone (lock file ${file})`,
    );
    expect((err as Error).message.split('\n')).toHaveLength(1);
    const notes: string[] = [];
    const lock = acquireOutputLock(file, { forceUnlock: true, onNote: (l) => notes.push(l) });
    expect(parseHolder(readFileSync(file, 'utf8'))!.pid).toBe(process.pid);
    expect(notes).toEqual([`took over ${file} from llm-prune prune (process ${sleeper.pid} on ${hostname()}, started 2026-01-01T00:00:00.000Z): forced (--force-unlock)`]);
    lock.release();
  } finally {
    sleeper.kill('SIGKILL');
  }
});

test('taken over: a dead pid, a reused pid (other start time), a stale lock of another host; kept: a fresh one of another host', () => {
  const file = join(tmp, 'stale.lock');
  for (const stale of [holder({ pid: deadPid() }), holder({ procStart: '1' }), holder({ host: 'elsewhere' })]) {
    writeFileSync(file, stale);
    const old = new Date(Date.now() - STALE_MS - 60_000);
    utimesSync(file, old, old); // no heartbeat for longer than STALE_MS (matters for the other host only)
    const notes: string[] = [];
    const lock = acquireOutputLock(file, { onNote: (l) => notes.push(l) });
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/: its process is gone$/);
    lock.release();
  }
  writeFileSync(file, holder({ host: 'elsewhere' }));
  expect(judge(parseHolder(readFileSync(file, 'utf8')), file)).toBe('live');
  expect(() => acquireOutputLock(file)).toThrow(/is being written by llm-prune prune \(process \d+ on elsewhere/);
  rmSync(file);
});

test('an orphan (its supervisor gone) is waited for, then its lock is taken over', async () => {
  const file = join(tmp, 'orphan.lock');
  // a process whose parent is gone (re-parented, so not a zombie of this one once it ends), ending in 0.6 s
  const pid = Number(spawnSync('sh', ['-c', 'sleep 0.6 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).stdout);
  writeFileSync(file, holder({ pid, procStart: processStartTime(pid), supervisor: deadPid() }));
  expect(judge(parseHolder(readFileSync(file, 'utf8')), file)).toBe('orphan');
  const t0 = Date.now();
  const lock = acquireOutputLock(file);
  expect(Date.now() - t0).toBeLessThan(4000);
  expect(parseHolder(readFileSync(file, 'utf8'))!.pid).toBe(process.pid);
  lock.release();
});

test('of 6 processes racing for one lock (fresh, then stale), exactly one holds it at a time', async () => {
  const file = join(tmp, 'race.lock');
  const log = join(tmp, 'race.log');
  const script = join(tmp, 'racer.mts');
  writeFileSync(
    script,
    [
      `import { appendFileSync } from 'node:fs';`,
      `import { acquireOutputLock } from '${pathToFileURL(resolve('lib/output-lock.ts')).href}';`,
      `const [file, log] = process.argv.slice(2);`,
      `const start = Number(process.argv[4]); while (Date.now() < start) {}`,
      `try {`,
      `  const lock = acquireOutputLock(file);`,
      `  appendFileSync(log, 'in ' + process.pid + '\\n');`,
      `  const t = Date.now(); while (Date.now() - t < 300) {}`,
      `  appendFileSync(log, 'out ' + process.pid + '\\n');`,
      `  lock.release();`,
      `} catch (e) { appendFileSync(log, 'refused ' + process.pid + '\\n'); }`,
    ].join('\n'),
  );
  for (const initial of [null, holder({ pid: deadPid() })]) {
    rmSync(log, { force: true });
    if (initial) writeFileSync(file, initial);
    const start = Date.now() + 4000; // every racer started and loaded before the start line
    const racers = Array.from({ length: 6 }, () => spawn(process.execPath, ['--import', 'tsx', script, file, log, String(start)], { stdio: 'ignore' }));
    await Promise.all(racers.map((c) => new Promise((r) => c.on('exit', r))));
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    // never two inside at once: every "in" is followed by its own "out"
    let inside: string | null = null;
    for (const l of lines) {
      const [what, pid] = l.split(' ');
      if (what === 'in') {
        expect(inside).toBeNull();
        inside = pid!;
      } else if (what === 'out') {
        expect(pid).toBe(inside);
        inside = null;
      }
    }
    expect(lines.filter((l) => l.startsWith('in '))).not.toHaveLength(0);
    expect(lines).toHaveLength(lines.filter((l) => l.startsWith('refused')).length + 2 * lines.filter((l) => l.startsWith('in ')).length);
    expect(existsSync(file)).toBe(false);
  }
});
