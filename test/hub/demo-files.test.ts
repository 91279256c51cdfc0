/**
 * `llm-prune demo` on a machine without the shared folder, end to end through the download code: a local server in
 * the hub's URL layout (test/helpers/hub-server.ts) serves a tiny generated checkpoint under the demo model's id and
 * seeded data in the hub's file forms (parquet, a gzipped JSON-lines shard); HF_ENDPOINT points at it; the CLI runs
 * in a child process from an empty working directory, with empty caches. The acceptance suite runs the same on the
 * real model and data (test/hub/demo-files.acceptance.test.ts).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRows } from '../../lib/data/sources.js';
import { DEMO_HUB_MODEL } from '../../lib/hub/demo-files.js';
import { repoCacheDir } from '../../lib/hub/download.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { demoRepos, type DemoRows } from '../helpers/demo-hub.js';
import { deadEndpoint, startHubServer, type HubServer } from '../helpers/hub-server.js';
import { jsonl, syntheticDocs, syntheticTaskRows, syntheticWikiRows } from '../helpers/synthetic-text.js';
import { writeTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

let tmp: string;
let hub: HubServer;
let rows: DemoRows;
let modelDir: string;

const SHRINK = ['--set', 'calibration.nsamples=2', '--set', 'calibration.seqlen=32', '--set', 'eval.seqlen=32', '--set', 'eval.maxWindows=2', '--set', 'eval.limit=4'];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-demo-hub-'));
  modelDir = writeTinyCheckpoint(join(tmp, 'model'), { seed: 11, hiddenSize: 32, intermediateSize: 64, numHeads: 2 }).dir;
  const tasks = syntheticTaskRows(12, 5);
  rows = {
    wikitext: syntheticWikiRows(8, 4),
    c4: jsonl(syntheticDocs(1100, 6)), // more than the 1,000 documents the demo keeps
    boolq: tasks['tasks/boolq/validation.jsonl']!,
    arcEasy: tasks['tasks/arc_easy/test.jsonl']!,
  };
  hub = await startHubServer(demoRepos(modelDir, rows));
});
afterAll(async () => {
  await hub?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The CLI from `cwd` (no ./shared or ../shared there) with only these LLM_PRUNE_*, HF_* variables and HOME. */
function demo(args: string[], cwd: string, env: Record<string, string>): Promise<CliRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LLM_PRUNE_|HF_|HUGGING_FACE_|XDG_)/.test(k)));
  mkdirSync(cwd, { recursive: true });
  return runCli(['demo', ...args], { cwd, env: { ...base, HOME: join(tmp, 'home'), ...env } });
}

test('without a shared folder the demo downloads the model and data, says where they went, and runs', async () => {
  const cwd = join(tmp, 'work');
  const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(tmp, 'hub-cache'), LLM_PRUNE_CACHE: join(tmp, 'cache') };
  const r = await demo(SHRINK, cwd, env);
  expect({ code: r.code, stderr: r.stderr.slice(-3000) }).toEqual({ code: 0, stderr: expect.any(String) });
  const snapshot = join(repoCacheDir({ type: 'model', name: DEMO_HUB_MODEL }, env.HF_HUB_CACHE), 'snapshots', hub.commitOf(DEMO_HUB_MODEL));
  const dataDir = join(env.LLM_PRUNE_CACHE, 'demo', 'data');
  expect(r.stderr).toContain(`demo: no shared folder; downloading the model ${DEMO_HUB_MODEL} and the data from ${hub.endpoint}\n`);
  expect(r.stderr).toContain(`demo model: ${snapshot} (${DEMO_HUB_MODEL}, in the hub cache ${env.HF_HUB_CACHE})\n`);
  expect(r.stderr).toContain(`demo data: ${dataDir}\n`);
  expect(r.stderr).toMatch(/download raincandy-u\/TinyStories-656K: model\.safetensors \(MB\): [\d.]+\/[\d.]+ \(100%\)/); // the progress line
  // the model is the served one; the data are the served rows in the shared layout
  expect(readFileSync(join(snapshot, 'model.safetensors')).equals(readFileSync(join(modelDir, 'model.safetensors')))).toBe(true);
  const c4 = readFileSync(join(dataDir, 'c4', 'c4-train.00000-of-01024.head1000.jsonl'), 'utf8');
  expect(c4).toBe(rows.c4.split('\n').slice(0, 1000).join('\n') + '\n');
  expect(await readRows(join(dataDir, 'wikitext-2-raw-v1', 'test-00000-of-00001.parquet'))).toEqual(rows.wikitext);
  expect(await readRows(join(dataDir, 'tasks', 'boolq', 'validation.jsonl'))).toEqual(rows.boolq);
  expect(await readRows(join(dataDir, 'tasks', 'arc_easy', 'test.jsonl'))).toEqual(rows.arcEasy);
  const results = JSON.parse(r.stdout) as { output: string; computed: string[] };
  expect(results.output).toBe(join(cwd, 'runs', 'demo'));
  expect(results.computed).toEqual(['dense', 'wanda-unstructured-0.5', 'magnitude-unstructured-0.5']);
  const file = JSON.parse(readFileSync(join(cwd, 'runs', 'demo', 'results.json'), 'utf8')) as { results: { perplexity: Record<string, { ppl: number }>; tasks: Record<string, unknown> }[] };
  for (const x of file.results) {
    expect(x.perplexity['wikitext2']?.ppl).toBeGreaterThan(1);
    expect(Object.keys(x.tasks).sort()).toEqual(['arc_easy', 'boolq']);
  }

  // offline afterwards: everything comes from the caches
  const again = await demo([...SHRINK, '--dry-run'], join(tmp, 'work2'), { ...env, HF_ENDPOINT: await deadEndpoint() });
  expect({ code: again.code, stderr: again.stderr.slice(-2000) }).toEqual({ code: 0, stderr: expect.stringContaining(`demo model: ${snapshot}`) });
});

test('offline with empty caches and no shared folder: one error line saying what to do, no stack trace', async () => {
  const dead = await deadEndpoint();
  const r = await demo([], join(tmp, 'work-offline'), { HF_ENDPOINT: dead, HF_HUB_CACHE: join(tmp, 'hub-cache-empty'), LLM_PRUNE_CACHE: join(tmp, 'cache-empty') });
  expect(r.code).toBe(1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(
    new RegExp(`^error: demo: .*the Hugging Face hub at ${dead.replace(/[.]/g, '\\.')} cannot be reached \\(ECONNREFUSED\\); connect to the network once \\(the files are then cached\\), point HF_ENDPOINT at a hub mirror, or set LLM_PRUNE_SHARED=`),
  );
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(join(tmp, 'work-offline', 'runs'))).toBe(false);
});
