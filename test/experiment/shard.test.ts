/**
 * Sweeps across machines (lib/experiment/shard.ts): `run --shard K/N` for N = 3, run one after another, merged by
 * `report` gives the same results.json as an unsharded run (timings aside), both with one results folder per shard
 * and with one folder shared by the shards. Each setting is computed by exactly one shard, chosen by its id.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runExperiment } from '../../lib/experiment/run.js';
import { expandSettings, loadExperiment, type Experiment } from '../../lib/experiment/schema.js';
import { mergeResults, parseShard, shardOf } from '../../lib/experiment/shard.js';
import { useTestBackend } from '../helpers/backend.js';
import { readResults, withoutTimings, writeExperimentFolder } from '../helpers/experiment-folder.js';

let tmp: string;
let configFile: string;
const IDS = ['dense', 'magnitude-unstructured-0.3', 'magnitude-unstructured-0.5', 'wanda-unstructured-0.3', 'wanda-unstructured-0.5', 'wanda-2of4'];

const load = (output: string): Experiment => loadExperiment(configFile, { output });

beforeAll(async () => {
  await useTestBackend();
  tmp = mkdtempSync(join(tmpdir(), 'shard-test-'));
  configFile = writeExperimentFolder(
    tmp,
    'grid.json',
    {
      name: 'shard grid',
      model: './model',
      backend: process.env['LLM_PRUNE_TEST_BACKEND'] ?? 'wasm',
      calibration: { source: './data/c4/calibration.jsonl', nsamples: 2, seqlen: 32, seed: 0 },
      prune: [
        { method: ['magnitude', 'wanda'], structure: 'unstructured', sparsity: [0.3, 0.5] },
        { method: 'wanda', structure: '2:4' },
      ],
      dense: true,
      eval: { ppl: ['wikitext2'], seqlen: 64, maxWindows: 2, dataDir: './data' },
      output: './unused',
    },
    { c4: ['calibration.jsonl', 100] },
  );
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The ids of `ids` in shard `k` of 3, in order. */
async function shardIds(ids: readonly string[], k: number): Promise<string[]> {
  const shards = await Promise.all(ids.map((id) => shardOf(id, 3)));
  return ids.filter((_, i) => shards[i] === k);
}

test('parseShard and shardOf: K/N 0-based, the shard of an id does not depend on the rest of the grid', async () => {
  expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
  expect(() => parseShard('3/3')).toThrow(/^shard: '3\/3' is not K\/N with 0 <= K < N/);
  expect(() => parseShard('1-3')).toThrow(/^shard: '1-3'/);
  expect(await shardOf('wanda-unstructured-0.5', 3)).toBe(await shardOf('wanda-unstructured-0.5', 3));
  const counts = [0, 0, 0];
  for (const id of IDS) counts[await shardOf(id, 3)]!++;
  expect(counts.reduce((a, b) => a + b, 0)).toBe(IDS.length);
});

test('3 shards run one after another, one folder each, merged: the results.json of an unsharded run', async () => {
  const whole = await runExperiment(load(join(tmp, 'whole')));
  expect(whole.computed).toEqual(IDS);
  const dirs = [0, 1, 2].map((k) => join(tmp, `shard-${k}`));
  const computed: string[][] = [];
  for (const [k, dir] of dirs.entries()) {
    const r = await runExperiment(load(dir), { shard: { index: k, count: 3 } });
    computed.push(r.computed);
    expect(r.computed).toEqual(await shardIds(IDS, k));
    expect(readdirSync(dir)).not.toContain('results.json'); // a shard alone is not the experiment's report
  }
  expect(computed.flat().sort()).toEqual([...IDS].sort());
  const merged = await mergeResults(dirs, join(tmp, 'merged'));
  expect(merged.missing).toEqual([]);
  expect(withoutTimings(readResults(join(tmp, 'merged')))).toEqual(withoutTimings(readResults(join(tmp, 'whole'))));
  expect(readdirSync(join(tmp, 'merged')).sort()).toEqual(readdirSync(join(tmp, 'whole')).filter((f) => f.startsWith('results') || f.endsWith('.svg')).sort());
  // a merge missing a shard is refused, or written partially when asked
  await expect(mergeResults(dirs.slice(0, 2), join(tmp, 'partial'))).rejects.toThrow(/settings are in none of the folders/);
  const partial = await mergeResults(dirs.slice(0, 2), join(tmp, 'partial'), { allowMissing: true });
  expect(partial.missing).toEqual(await shardIds(IDS, 2));
});

test('3 shards sharing one results folder, then report on it: the same results.json; a rerun reuses everything', async () => {
  const shared = join(tmp, 'shared');
  for (const k of [0, 1, 2]) await runExperiment(load(shared), { shard: { index: k, count: 3 } });
  await mergeResults([shared], shared);
  expect(withoutTimings(readResults(shared))).toEqual(withoutTimings(readResults(join(tmp, 'whole'))));
  const again = await runExperiment(load(shared), { shard: { index: 1, count: 3 } });
  expect(again.computed).toEqual([]);
  // folders of another experiment are not merged
  const other = join(tmp, 'other');
  await runExperiment(loadExperiment(configFile, { output: other, name: 'another grid' }), { shard: { index: 0, count: 3 } });
  await expect(mergeResults([shared, other], join(tmp, 'bad'))).rejects.toThrow(/not the same experiment/);
});

test('examples/cluster: shard.sh as SLURM array tasks and as a Kubernetes indexed pod, one folder each, then `llm-prune report`', () => {
  const cli = `${process.execPath} --import tsx ${join(process.cwd(), 'lib', 'cli.ts')}`;
  const results = join(tmp, 'cluster');
  const envs: Record<string, string>[] = [
    { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '3' },
    { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '3' },
    { JOB_COMPLETION_INDEX: '2', SHARDS: '3' },
  ];
  for (const env of envs) {
    const r = spawnSync(join('examples', 'cluster', 'shard.sh'), [configFile, results, 'per-shard'], {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, ...env, LLM_PRUNE: cli },
    });
    expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr.slice(-1500) }).toEqual({ status: 0, stderr: '' });
  }
  expect(readdirSync(results).sort()).toEqual(['shard-0', 'shard-1', 'shard-2']);
  const merged = join(results, 'merged');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('lib', 'cli.ts'), 'report', ...[0, 1, 2].map((k) => join(results, `shard-${k}`)), '--out', merged], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(JSON.parse(r.stdout).missing).toEqual([]);
  expect(withoutTimings(readResults(merged))).toEqual(withoutTimings(readResults(join(tmp, 'whole'))));
  // no index: a clear refusal
  const bare = spawnSync(join('examples', 'cluster', 'shard.sh'), [configFile, results], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' } });
  expect(bare.status).toBe(2);
  expect(bare.stderr).toContain('no shard index/count');
});

test('examples/cluster: the Kubernetes Jobs and the SLURM script are well-formed and call shard.sh / report', () => {
  const job = YAML.parse(readFileSync(join('examples', 'cluster', 'k8s-indexed-job.yaml'), 'utf8'));
  expect(job.spec.completionMode).toBe('Indexed');
  const c = job.spec.template.spec.containers[0];
  expect(c.command[0]).toBe('/app/examples/cluster/shard.sh');
  expect(c.env.find((e: { name: string }) => e.name === 'SHARDS').value).toBe(String(job.spec.completions));
  const merge = YAML.parse(readFileSync(join('examples', 'cluster', 'k8s-merge-job.yaml'), 'utf8'));
  expect(merge.spec.template.spec.containers[0].command).toContain('report');
  expect(spawnSync('bash', ['-n', join('examples', 'cluster', 'slurm-sweep.sbatch')]).status).toBe(0);
  expect(readFileSync(join('examples', 'cluster', 'slurm-sweep.sbatch'), 'utf8')).toContain('examples/cluster/shard.sh');
});

test('run CONFIG --shard K/N --dry-run: the plan of that shard only, nothing written', async () => {
  const out = join(tmp, 'dry');
  const grid = expandSettings(loadExperiment(configFile)).map((s) => s.id);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join('lib', 'cli.ts'), 'run', configFile, '--shard', '1/3', '--dry-run', '--set', `output=${out}`],
    { encoding: 'utf8', timeout: 120_000 },
  );
  expect({ status: r.status, stderr: r.status === 0 ? '' : r.stderr.slice(-1500) }).toEqual({ status: 0, stderr: '' });
  const plan = JSON.parse(r.stdout) as { settings: { id: string; action: string }[] };
  const mine = await shardIds(['dense', ...grid], 1);
  expect(mine.length).toBeGreaterThan(0);
  expect(plan.settings.map((s) => s.id)).toEqual(mine);
  expect(plan.settings.every((s) => s.action === 'compute')).toBe(true);
  expect(existsSync(out)).toBe(false);
});
