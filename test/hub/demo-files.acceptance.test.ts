/**
 * `llm-prune demo` end to end through the hub download code on the real model and data: a local server in the hub's
 * URL layout (test/helpers/hub-server.ts) serves the shared TinyStories-656K under its hub id (it is
 * raincandy-u/TinyStories-656K) and the shared data in the hub's file forms (WikiText-2 and the tasks as Parquet, the
 * C4 head as a gzipped shard); HF_ENDPOINT points at it; the CLI runs from an empty folder with empty caches. The
 * downloaded data must be the shared data, and the demo's results those of the same demo run on the shared folder.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRows } from '../../lib/data/sources.js';
import { DEMO_HUB_MODEL } from '../../lib/hub/demo-files.js';
import { repoCacheDir } from '../../lib/hub/download.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { demoRepos } from '../helpers/demo-hub.js';
import { startHubServer, type HubServer } from '../helpers/hub-server.js';
import { sharedPath } from '../helpers/shared.js';

let tmp: string;
let hub: HubServer;
const SHRINK = ['--set', 'calibration.nsamples=4', '--set', 'eval.maxWindows=2', '--set', 'eval.limit=4'];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'llm-prune-demo-hub-acc-'));
  const data = (f: string) => sharedPath('data', f);
  hub = await startHubServer(
    demoRepos(sharedPath('models', 'TinyStories-656K'), {
      wikitext: await readRows(data('wikitext-2-raw-v1/test.jsonl')),
      c4: readFileSync(data('c4/c4-train.00000-of-01024.head1000.jsonl'), 'utf8'),
      boolq: await readRows(data('tasks/boolq/validation.jsonl')),
      arcEasy: await readRows(data('tasks/arc_easy/test.jsonl')),
    }),
  );
});
afterAll(async () => {
  await hub?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function demo(args: string[], cwd: string, env: Record<string, string>): Promise<CliRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LLM_PRUNE_|HF_|HUGGING_FACE_|XDG_)/.test(k)));
  mkdirSync(cwd, { recursive: true });
  return runCli(['demo', ...args], { cwd, env: { ...base, HOME: join(tmp, 'home'), ...env }, timeout: 1_500_000 });
}

type Results = { results: { id: string; perplexity: Record<string, { ppl: number }>; tasks: Record<string, { acc: number }> }[] };
const numbers = (file: string) =>
  (JSON.parse(readFileSync(file, 'utf8')) as Results).results.map((r) => ({ id: r.id, perplexity: r.perplexity, tasks: r.tasks }));

test('the demo downloads TinyStories-656K and the data through the hub layout, and gives the results of the shared folder', async () => {
  const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(tmp, 'hub-cache'), LLM_PRUNE_CACHE: join(tmp, 'cache') };
  const r = await demo(SHRINK, join(tmp, 'downloaded'), env);
  expect({ code: r.code, stderr: r.stderr.slice(-3000) }).toEqual({ code: 0, stderr: expect.any(String) });
  const snapshot = join(repoCacheDir({ type: 'model', name: DEMO_HUB_MODEL }, env.HF_HUB_CACHE), 'snapshots', hub.commitOf(DEMO_HUB_MODEL));
  const dataDir = join(env.LLM_PRUNE_CACHE, 'demo', 'data');
  expect(r.stderr).toContain(`demo model: ${snapshot} (${DEMO_HUB_MODEL}, in the hub cache ${env.HF_HUB_CACHE})\n`);
  expect(r.stderr).toContain(`demo data: ${dataDir}\n`);
  // the downloaded files are the shared ones
  expect(readFileSync(join(snapshot, 'model.safetensors')).equals(readFileSync(sharedPath('models', 'TinyStories-656K', 'model.safetensors')))).toBe(true);
  expect(readFileSync(join(dataDir, 'c4', 'c4-train.00000-of-01024.head1000.jsonl')).equals(readFileSync(sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl')))).toBe(true);
  expect(await readRows(join(dataDir, 'wikitext-2-raw-v1', 'test-00000-of-00001.parquet'))).toEqual(await readRows(sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl')));
  expect(await readRows(join(dataDir, 'tasks', 'boolq', 'validation.jsonl'))).toEqual(await readRows(sharedPath('data', 'tasks', 'boolq', 'validation.jsonl')));
  expect(await readRows(join(dataDir, 'tasks', 'arc_easy', 'test.jsonl'))).toEqual(await readRows(sharedPath('data', 'tasks', 'arc_easy', 'test.jsonl')));

  // the same demo on the shared folder (same model, same settings): the same numbers
  const local = await demo(SHRINK, join(tmp, 'shared'), {
    LLM_PRUNE_SHARED: sharedPath(),
    LLM_PRUNE_MODEL: sharedPath('models', 'TinyStories-656K'),
    LLM_PRUNE_CACHE: join(tmp, 'cache-shared'),
  });
  expect({ code: local.code, stderr: local.stderr.slice(-2000) }).toEqual({ code: 0, stderr: expect.any(String) });
  const downloaded = numbers(join(tmp, 'downloaded', 'runs', 'demo', 'results.json'));
  expect(downloaded.map((x) => x.id)).toEqual(['dense', 'wanda-unstructured-0.5', 'magnitude-unstructured-0.5']);
  expect(downloaded).toEqual(numbers(join(tmp, 'shared', 'runs', 'demo', 'results.json')));
});
