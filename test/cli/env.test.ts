/**
 * Environment variables are read by the CLI only (lib/cli/env.ts) and passed to the library as values:
 *   - a scan of lib/: no process.env outside lib/cli/env.ts but the documented exceptions (the supervisor's log file
 *     between lib/bin.ts and lib/interrupt.ts, the resume test hook, webgpu.ts's EGL_PLATFORM write);
 *   - child processes: LLM_PRUNE_SHARED and LLM_PRUNE_MODEL reach `demo`, LLM_PRUNE_CACHE reaches `eval`'s token
 *     cache, HF_TOKEN reaches the hub request of `inspect` (and is never printed).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { runCli, type CliRun } from '../helpers/cli.js';
import { writeSyntheticData } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

/** The CLI in a child process with exactly these LLM_PRUNE_* / HF_* variables (the others of this process kept). */
function cli(args: string[], env: Record<string, string>): Promise<CliRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LLM_PRUNE_|HF_|HUGGING_FACE_)/.test(k)));
  return runCli(args, { env: { ...base, ...env } });
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Where lib/ may name process.env outside lib/cli/env.ts, and why (each must still be there: no stale entries). */
const ALLOWED: { file: string; line: RegExp; why: string }[] = [
  { file: 'lib/bin.ts', line: /process\.env\[INTERRUPT_LOG_ENV\]|\.\.\.process\.env, \[INTERRUPT_LOG_ENV\]/, why: 'the supervisor hands its log file to the child' },
  { file: 'lib/interrupt.ts', line: /process\.env\[INTERRUPT_LOG_ENV\]/, why: 'the child writes the supervisor log named by lib/bin.ts' },
  { file: 'lib/prune/resume.ts', line: /process\.env\['LLM_PRUNE_FAILPOINT'\]/, why: 'test hook that kills a child process at an exact place' },
  { file: 'lib/model/webgpu.ts', line: /process\.env\['EGL_PLATFORM'\] \?\?=/, why: 'a write Mesa needs before Dawn loads' },
];

test('lib/ reads process.env only in lib/cli/env.ts (and the documented exceptions)', () => {
  const found: string[] = [];
  const used = new Set<number>();
  for (const file of sources('lib')) {
    const rel = relative(process.cwd(), file).split('\\').join('/');
    if (rel === 'lib/cli/env.ts') continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((text, i) => {
        if (!/process\.env\b/.test(text) || /^\s*(\*|\/\/)/.test(text)) return;
        const ok = ALLOWED.findIndex((a) => a.file === rel && a.line.test(text));
        if (ok >= 0) used.add(ok);
        else found.push(`${rel}:${i + 1}: ${text.trim()}`);
      });
  }
  expect(found).toEqual([]);
  expect(ALLOWED.filter((_, i) => !used.has(i)).map((a) => a.file)).toEqual([]);
});

let tmp: string;
let tiny: TinyCheckpoint;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-cli-env-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 7, hiddenSize: 32, intermediateSize: 64, numLayers: 2, maxPositions: 64 });
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('LLM_PRUNE_SHARED and LLM_PRUNE_MODEL reach demo (--dry-run): its data folder and model come from them', async () => {
  const shared = join(tmp, 'my-shared');
  writeSyntheticData(join(shared, 'data'), { docs: 40, articles: 3, items: 5 });
  const out = join(tmp, 'demo-plan');
  const r = await cli(['demo', '--dry-run', '--set', `output=${out}`, '--set', 'calibration.seqlen=32', '--set', 'eval.seqlen=32'], { LLM_PRUNE_SHARED: shared, LLM_PRUNE_MODEL: tiny.dir, LLM_PRUNE_CACHE: join(tmp, 'cache') });
  expect({ code: r.code, stderr: r.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.stringContaining(`demo model: ${tiny.dir} (from $LLM_PRUNE_MODEL); data: ${join(shared, 'data')}`) });
  const plan = JSON.parse(r.stdout) as { model: string; output: string };
  expect(plan).toMatchObject({ model: tiny.dir, output: out });
});

test('LLM_PRUNE_CACHE reaches eval: the tokenized set is cached there', async () => {
  const data = join(tmp, 'data');
  mkdirSync(join(data, 'wikitext-2-raw-v1'), { recursive: true });
  const rows = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `Row ${i}: once upon a time there was a little dog.` }));
  writeFileSync(join(data, 'wikitext-2-raw-v1', 'test.jsonl'), rows.join('\n') + '\n');
  const cache = join(tmp, 'eval-cache');
  const r = await cli(['eval', '--model', tiny.dir, '--ppl', 'wikitext2', '--seqlen', '32', '--max-windows', '1', '--data-dir', data], { LLM_PRUNE_CACHE: cache });
  expect({ code: r.code, stderr: r.stderr.slice(-1500) }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(readdirSync(join(cache, 'tokens')).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
});

test('HF_TOKEN reaches the hub request of inspect (never printed); without it the error says how to give one', async () => {
  const secret = 'hf_EnvTokenNotRealButSecret456';
  const hub = join(tmp, 'hub');
  const withToken = await cli(['inspect', '--model', 'meta-llama/Llama-3.2-1B'], { HF_TOKEN: secret, HF_HUB_CACHE: hub });
  const without = await cli(['inspect', '--model', 'meta-llama/Llama-3.2-1B'], { HF_HUB_CACHE: hub });
  for (const r of [withToken, without]) {
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: --model 'meta-llama\/Llama-3\.2-1B': not a local folder, and fetching it from the Hugging Face hub failed/m);
  }
  expect(withToken.stderr + withToken.stdout).not.toContain(secret);
  expect(withToken.stderr).not.toContain('set HF_TOKEN or pass --hf-token');
  expect(without.stderr).toContain('set HF_TOKEN or pass --hf-token');
});
