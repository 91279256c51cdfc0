/**
 * Block-level resume of `llm-prune prune` (lib/prune/resume.ts): a run SIGKILLed at each kind of point (before the
 * first block, mid-block, between blocks, while writing the block, while committing the state) and continued with
 * --resume writes the same bytes as a run in one go: every file of the checkpoint, and report.json apart from its
 * run-dependent fields (times, peakRssMB, resumedAt). The kills are real SIGKILLs of the CLI process, placed
 * exactly by the LLM_PRUNE_FAILPOINT hook.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaConfig } from '../../lib/model/config.js';
import { ResumeStore } from '../../lib/prune/resume.js';
import { makeSyntheticLlama } from '../../scripts/make-synthetic-llama.js';
import { jsonl, syntheticDocs } from '../helpers/synthetic-text.js';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

let tmp: string;
let model: string;
let c4: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-resume-'));
  c4 = join(tmp, 'c4.jsonl');
  writeFileSync(c4, jsonl(syntheticDocs(200, 3)));
  model = join(tmp, 'model');
  writeTinyTokenizer(join(tmp, 'tokenizer'), { vocabSize: 4096 }); // the tiny shape's vocabulary
  // 4 blocks, sharded in ~6 files: resuming must reopen every shard without truncating it
  makeSyntheticLlama({ shape: 'tiny', out: model, layers: 4, seed: 7, maxShardBytes: 200_000, tokenizerFrom: join(tmp, 'tokenizer') });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function prune(out: string, extra: string[] = [], failpoint?: string): Run {
  // a flag given in `extra` replaces its default here; the last of a flag given twice in `extra` wins
  const defaults: [string, string][] = [['--method', 'wanda'], ['--sparsity', '0.5']];
  const flags = defaults.filter(([f]) => !extra.includes(f)).flat();
  const last = new Map<string, number>();
  extra.forEach((a, i) => a.startsWith('--') && i + 1 < extra.length && !extra[i + 1]!.startsWith('--') && last.set(a, i));
  const given = extra.filter((a, i) => {
    const at = (j: number): boolean => extra[j]!.startsWith('--') && last.has(extra[j]!) && last.get(extra[j]!) !== j;
    return !(at(i) || (i > 0 && at(i - 1) && !a.startsWith('--')));
  });
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join('lib', 'cli.ts'), 'prune', '--model', model, '--out', out, ...flags,
      '--calibration', c4, '--nsamples', '4', '--seqlen', '32', '--batch-size', '2', ...given],
    { cwd: process.cwd(), encoding: 'utf8', timeout: 180_000, env: { ...process.env, LLM_PRUNE_FAILPOINT: failpoint ?? '' } },
  );
  return { status: r.status, signal: r.signal, stderr: r.stderr.slice(-2000) };
}

const RUN_FIELDS = ['times', 'peakRssMB', 'resumedAt', 'out'];

function deterministicReport(dir: string): Record<string, unknown> {
  const r = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Record<string, unknown>;
  for (const k of RUN_FIELDS) delete r[k];
  return r;
}

function expectSameFolder(a: string, b: string): void {
  const files = readdirSync(a).sort();
  expect(readdirSync(b).sort()).toEqual(files);
  for (const f of files) {
    if (f === 'report.json') continue;
    expect({ file: f, same: readFileSync(join(a, f)).equals(readFileSync(join(b, f))) }).toEqual({ file: f, same: true });
  }
  expect(deterministicReport(b)).toEqual(deterministicReport(a));
}

let reference: string;

test('a run in one go: sharded output, report with resumedAt [] and no resume state left', () => {
  reference = join(tmp, 'reference');
  const r = prune(reference, ['--max-shard-size', '200KB']);
  expect(r).toMatchObject({ status: 0 });
  expect(readdirSync(reference)).toContain('model.safetensors.index.json');
  expect(existsSync(`${reference}.partial`)).toBe(false);
  expect(JSON.parse(readFileSync(join(reference, 'report.json'), 'utf8')).resumedAt).toEqual([]);
});

// [failpoint, block the resumed run starts at (0-based), what the point is]
const POINTS: [string, number | null, string][] = [
  ['after-setup:0', null, 'before the first block, before any state: --resume starts over'],
  ['mid-block:0', 0, 'in the first block, after its statistics'],
  ['mid-block:2', 2, 'mid-block'],
  ['between-blocks:1', 2, 'between blocks, right after a committed state'],
  ['writing:2', 2, 'while writing the block into the shards'],
  ['state-commit:3', 2, 'while committing the state (activations written, state.json not yet replaced)'],
];

test.each(POINTS)('SIGKILL at %s, then --resume: byte-identical checkpoint and report (resumed at %s: %s)', (point, resumedAt) => {
  const out = join(tmp, `killed-${point.replace(':', '-')}`);
  const killed = prune(out, ['--max-shard-size', '200KB'], point);
  expect(killed).toMatchObject({ signal: 'SIGKILL' });
  expect(existsSync(out)).toBe(false);
  expect(existsSync(`${out}.partial`)).toBe(true);
  const resumed = prune(out, ['--max-shard-size', '200KB', '--resume']);
  expect(resumed).toMatchObject({ status: 0 });
  expect(resumed.stderr).toContain(resumedAt === null ? 'no resume state' : `resuming ${out}.partial at block ${resumedAt + 1} of 4`);
  expectSameFolder(reference, out);
  expect(existsSync(`${out}.partial`)).toBe(false);
  expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).resumedAt).toEqual(resumedAt === null ? [] : [resumedAt]);
});

test('killed twice and resumed twice: still byte-identical; resumedAt lists both', () => {
  const out = join(tmp, 'killed-twice');
  const args = ['--max-shard-size', '200KB'];
  expect(prune(out, args, 'between-blocks:0')).toMatchObject({ signal: 'SIGKILL' });
  expect(prune(out, [...args, '--resume'], 'writing:2')).toMatchObject({ signal: 'SIGKILL' });
  expect(prune(out, [...args, '--resume'])).toMatchObject({ status: 0 });
  expectSameFolder(reference, out);
  expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).resumedAt).toEqual([1, 2]);
});

test('a state made from other options is refused and kept; without --resume the run starts over', () => {
  const out = join(tmp, 'other-options');
  expect(prune(out, ['--max-shard-size', '200KB'], 'between-blocks:1')).toMatchObject({ signal: 'SIGKILL' });
  const refused = prune(out, ['--max-shard-size', '200KB', '--resume', '--structure', '2:4']);
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toContain('made from other inputs');
  expect(refused.stderr).toContain('or without --resume to start over');
  expect(existsSync(join(`${out}.partial`, 'resume', 'state.json'))).toBe(true);
  expect(prune(out, ['--max-shard-size', '200KB'])).toMatchObject({ status: 0 });
  expectSameFolder(reference, out);
});

test('--resume on a finished output says so and changes nothing; --no-resumable leaves no state to resume', () => {
  const again = prune(reference, ['--max-shard-size', '200KB', '--resume']);
  expect(again.status).not.toBe(0);
  expect(again.stderr).toContain('already complete');
  const out = join(tmp, 'no-state');
  expect(prune(out, ['--max-shard-size', '200KB', '--no-resumable'], 'between-blocks:1')).toMatchObject({ signal: 'SIGKILL' });
  expect(existsSync(`${out}.partial`)).toBe(false); // staged under .partial-<pid> as before
  const r = prune(out, ['--max-shard-size', '200KB', '--resume']);
  expect(r).toMatchObject({ status: 0 });
  expect(r.stderr).toContain('no resume state');
  expectSameFolder(reference, out);
});

test('activations stored in the input dtype (BF16): half the disk, the resumed run completes with the same sparsity', () => {
  const out = join(tmp, 'bf16-state');
  const args = ['--max-shard-size', '200KB', '--resume-activations', 'input'];
  expect(prune(out, args, 'between-blocks:1')).toMatchObject({ signal: 'SIGKILL' });
  const state = JSON.parse(readFileSync(join(`${out}.partial`, 'resume', 'state.json'), 'utf8')) as { activations: string };
  const header = readFileSync(join(`${out}.partial`, 'resume', state.activations)).subarray(8, 200).toString('latin1');
  expect(header).toContain('"dtype":"BF16"');
  expect(prune(out, [...args, '--resume'])).toMatchObject({ status: 0 });
  const a = JSON.parse(readFileSync(join(reference, 'report.json'), 'utf8'));
  const b = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  expect(b.sparsity.overall).toBe(a.sparsity.overall);
  expect(b.sparsity.blocks.slice(0, 2)).toEqual(a.sparsity.blocks.slice(0, 2)); // blocks before the kill: same
});

test.each([
  ['--layerwise owl (its allocation kept in the state: pass 1 is not rerun)', ['--layerwise', 'owl', '--owl-lambda', '0.1'], ['--owl-lambda', '0.05']],
  ['ria --permute 2:4 (the permutations of finished blocks kept in the state)', ['--method', 'ria', '--sparsity', '0.5', '--structure', '2:4', '--permute'], ['--ria-alpha', '1']],
])('%s: SIGKILL between blocks, --resume: byte-identical; changed plan options are refused', (_what, plan, changed) => {
  const args = ['--max-shard-size', '200KB', ...plan];
  const ref = join(tmp, `plan-ref-${plan[1]}`);
  expect(prune(ref, args)).toMatchObject({ status: 0 });
  const out = join(tmp, `plan-killed-${plan[1]}`);
  expect(prune(out, args, 'between-blocks:1')).toMatchObject({ signal: 'SIGKILL' });
  const refused = prune(out, [...args, ...changed, '--resume']);
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toContain('made from other inputs');
  const resumed = prune(out, [...args, '--resume']);
  expect(resumed).toMatchObject({ status: 0 });
  expect(resumed.stderr).toContain(`resuming ${out}.partial at block 3 of 4`);
  if (plan[0] === '--layerwise') expect(resumed.stderr).not.toContain('OWL outlier pass');
  expectSameFolder(ref, out);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { resumedAt: number[]; plan: { layerwise: unknown }; permutations?: object };
  expect(report.resumedAt).toEqual([2]);
  if (plan[0] === '--layerwise') expect(report.plan.layerwise).toMatchObject({ name: 'owl', sparsities: expect.any(Array) });
  else expect(Object.keys(report.permutations ?? {}).length).toBe(4 * 7);
});

test("the resume state's refusals name the resume option as the caller spells it", () => {
  const staged = join(tmp, 'named.partial');
  const store = new ResumeStore(staged, 'fingerprint-a', 'F32');
  mkdirSync(store.dir, { recursive: true });
  const config = { numLayers: 2 } as LlamaConfig;
  writeFileSync(join(store.dir, 'state.json'), '{ not json');
  expect(() => store.load(config)).toThrow('rerun without --resume to start over');
  expect(() => store.load(config, 'prune.resume')).toThrow('rerun without prune.resume to start over');
  writeFileSync(join(store.dir, 'state.json'), JSON.stringify({ version: 0, fingerprint: 'fingerprint-b' }));
  expect(() => store.load(config, 'prune.resume')).toThrow('or without prune.resume to start over');
});
