/**
 * What users expect of the command line: `run CONFIG` (positional) and `--dry-run` (a plan, nothing computed or
 * written), warnings for options a method ignores, a short error for an unknown flag, --version from the package,
 * a hub token that is used but never printed. Each case is one `node --import tsx lib/bin.ts ...` process.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliRun } from '../helpers/cli.js';
import { writeStandInShared } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

/** The `llm-prune` command (lib/bin.ts) with a token cache of its own and these variables added. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, { entry: 'bin', env: { ...process.env, LLM_PRUNE_CACHE: join(tmp, 'cache'), ...env } });
}

let tmp: string;
let tiny: TinyCheckpoint;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-habits-'));
  tiny = writeTinyCheckpoint(join(tmp, 'tiny'), { seed: 3, hiddenSize: 32, intermediateSize: 64, numLayers: 2, maxPositions: 64 });
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('--version is the package version', async () => {
  const r = await cli(['--version']);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  expect({ code: r.code, out: r.stdout.trim() }).toEqual({ code: 0, out: pkg.version });
});

test('run CONFIG --dry-run prints the plan (settings, actions, estimate) and writes nothing', async () => {
  // a stand-in for the shared folder: a tiny checkpoint named c4-llama-7m and seeded data
  const shared = writeStandInShared(join(tmp, 'stand-in-shared'), ['c4-llama-7m'], (d) => void writeTinyCheckpoint(d, { maxPositions: 512 }));
  const out = join(tmp, 'demo-plan');
  const r = await cli(['run', join('configs', 'demo.yaml'), '--dry-run', '--set', `output=${out}`, '--shared', shared]);
  expect({ code: r.code, stderr: r.stderr.slice(-800) }).toEqual({ code: 0, stderr: expect.stringContaining('estimated time: ~') });
  const plan = JSON.parse(r.stdout) as { output: string; settings: { id: string; action: string; estimatedSeconds: number }[]; estimatedSeconds: number };
  expect(plan.output).toBe(out);
  expect(plan.settings.map((s) => [s.id, s.action])).toEqual([
    ['dense', 'compute'],
    ['wanda-unstructured-0.5', 'compute'],
    ['magnitude-unstructured-0.5', 'compute'],
  ]);
  expect(plan.settings.every((s) => s.estimatedSeconds > 0)).toBe(true);
  expect(plan.estimatedSeconds).toBe(plan.settings.reduce((a, s) => a + s.estimatedSeconds, 0));
  expect(existsSync(out)).toBe(false);
});

test('run without a file says how to give it; --config is still accepted', async () => {
  const none = await cli(['run']);
  expect({ code: none.code, err: none.stderr.trim() }).toEqual({ code: 1, err: 'error: run: give the experiment file: llm-prune run CONFIG (.yaml or .json, or a shipped config by name such as demo)' });
  const flag = await cli(['run', '--config', join(tmp, 'missing.yaml'), '--dry-run']);
  expect({ code: flag.code, err: flag.stderr.trim() }).toEqual({ code: 1, err: `error: ${join(tmp, 'missing.yaml')}: cannot read experiment file (ENOENT)` });
});

test('an unknown flag: the error and a one-line hint, not the whole help', async () => {
  const r = await cli(['prune', '--model', tiny.dir, '--method', 'magnitude', '--out', join(tmp, 'x'), '--nsample', '8']);
  expect({ code: r.code, err: r.stderr }).toEqual({ code: 1, err: 'error: Unknown argument: nsample\n(llm-prune prune --help lists the options)\n' });
});

test('options that magnitude ignores give a warning, and the run goes on', async () => {
  const r = await cli(['prune', '--model', tiny.dir, '--method', 'magnitude', '--out', join(tmp, 'mag'), '--nsamples', '8', '--seed', '3']);
  expect({ code: r.code, stderr: r.stderr.slice(-800) }).toEqual({
    code: 0,
    stderr: expect.stringContaining('warning: --nsamples, --seed are ignored: method magnitude uses no calibration data (nor does any --layerwise or --refine)\n'),
  });
  expect(existsSync(join(tmp, 'mag', 'report.json'))).toBe(true);
});

test('--hf-token reaches the hub request path but is never printed', async () => {
  const secret = 'hf_NotARealTokenButSecret123';
  const r = await cli(['inspect', '--model', 'meta-llama/Llama-3.2-1B', '--hf-token', secret], { HF_HUB_CACHE: join(tmp, 'hub'), HF_TOKEN: '' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: --model 'meta-llama\/Llama-3\.2-1B': not a local folder, and fetching it from the Hugging Face hub failed/m);
  expect(r.stderr + r.stdout).not.toContain(secret);
});

test('eval --adapter labels its row and its JSON with the adapter', async () => {
  const model = tiny.dir;
  const data = join(tmp, 'train.jsonl');
  writeFileSync(data, Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `Once upon a time there was a cat number ${i}. It liked to play in the sun with its friends every day.` })).join('\n') + '\n');
  const ft = join(tmp, 'ft');
  const train = await cli(['finetune', '--model', model, '--data', data, '--seqlen', '16', '--max-steps', '2', '--out', ft]);
  expect({ code: train.code, stderr: train.stderr.slice(-500) }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(existsSync(join(ft, 'merged', 'config.json'))).toBe(true); // the default merge (masked) writes the merged checkpoint
  const task = join(tmp, 'mine.jsonl');
  writeFileSync(task, [{ query: 'The cat sat on the', choices: [' mat', ' sky'], gold: 0 }, { query: 'Once upon a', choices: [' time', ' chair'], gold: 0 }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const r = await cli(['eval', '--model', model, '--adapter', ft, '--tasks', task]);
  expect({ code: r.code, stderr: r.stderr.slice(-500) }).toEqual({ code: 0, stderr: expect.stringContaining(`| ${model} + LoRA ${ft} |`) });
  expect(JSON.parse(r.stdout)).toMatchObject({ model, adapter: ft });
});

test('run --reuse-any-version keeps a result stored by another version (with a warning); without it the setting is redone', async () => {
  const config = join(tmp, 'versions.json');
  const out = join(tmp, 'versions-out');
  // magnitude reads no calibration data: the source only has to exist
  const experiment = { model: tiny.dir, backend: 'wasm', calibration: { source: config }, prune: { method: 'magnitude', sparsity: 0.5 }, dense: false, eval: { ppl: [] }, output: out };
  writeFileSync(config, JSON.stringify(experiment));
  const first = await cli(['run', config]);
  expect({ code: first.code, stderr: first.stderr.slice(-800) }).toEqual({ code: 0, stderr: expect.any(String) });
  const file = join(out, 'settings', 'magnitude-unstructured-0.5.json');
  const stored = JSON.parse(readFileSync(file, 'utf8')) as { versions: { package: string } };
  writeFileSync(file, JSON.stringify({ ...stored, versions: { ...stored.versions, package: '0.0.1' } }));
  const plan = async (...flags: string[]): Promise<[string, string]> => {
    const r = await cli(['run', config, '--dry-run', ...flags]);
    expect(r.code).toBe(0);
    return [(JSON.parse(r.stdout) as { settings: { action: string }[] }).settings[0]!.action, r.stderr];
  };
  const [kept, keptErr] = await plan('--reuse-any-version');
  expect(kept).toBe('reuse');
  expect(keptErr).toContain('magnitude-unstructured-0.5: warning: reusing a result computed by another version (package 0.0.1 -> ');
  const [redone, redoneErr] = await plan();
  expect(redone).toBe('compute');
  expect(redoneErr).toContain('magnitude-unstructured-0.5: redoing: the stored result was computed by another version (package 0.0.1 -> ');
});
