/**
 * The results folder whose settings/<id>.json files test/fixtures/experiment-pin/ holds: written once by the runner
 * as it was before lib/experiment/run.ts was split into steps (commit 7116844), kept so that a later runner must
 * still take them as finished (same setting ids, same fingerprints). A fingerprint covers the absolute paths, sizes
 * and mtimes of the model and data files, so this writes them at one fixed path with fixed mtimes. It writes its
 * own files (not test/helpers/experiment-folder.ts's writeExperimentFolder): a change there must not move the pin.
 */
import { mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstLines } from './experiment-folder.js';
import { sharedPath } from './shared.js';
import { writeTinyCheckpoint } from './tiny-checkpoint.js';

export const PIN_ROOT = '/tmp/llm-prune-fingerprint-pin';
export const PIN_FIXTURE = join(process.cwd(), 'test', 'fixtures', 'experiment-pin');
const MTIME = 1_700_000_000; // seconds: every input file's mtime

const LOCK = `${PIN_ROOT}.lock`;

/**
 * Take PIN_ROOT for this process (test runs of several checkouts on one machine share the path): waits while
 * another process holds it, takes over a lock older than 10 minutes. Returns the function that releases it.
 */
export async function lockPinFolder(): Promise<() => void> {
  for (const t0 = Date.now(); ; ) {
    try {
      mkdirSync(LOCK);
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = 0;
      try {
        age = Date.now() - statSync(LOCK).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      if (age > 600_000 || Date.now() - t0 > 600_000) rmSync(LOCK, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Write the model, the data files and the experiment file at PIN_ROOT (replacing what is there); returns the
 * experiment file. */
export function writePinFolder(): string {
  rmSync(PIN_ROOT, { recursive: true, force: true });
  const model = join(PIN_ROOT, 'model');
  writeTinyCheckpoint(model, { tokenizerFrom: sharedPath('models', 'TinyStories-656K') });
  const data = join(PIN_ROOT, 'data');
  for (const d of ['c4', 'wikitext-2-raw-v1', 'tasks/arc_easy']) mkdirSync(join(data, d), { recursive: true });
  writeFileSync(join(data, 'c4', 'train.jsonl'), firstLines(sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'), 60));
  writeFileSync(join(data, 'wikitext-2-raw-v1', 'test.jsonl'), firstLines(sharedPath('data', 'wikitext-2-raw-v1', 'test.jsonl'), 50));
  writeFileSync(join(data, 'tasks', 'arc_easy', 'test.jsonl'), firstLines(sharedPath('data', 'tasks', 'arc_easy', 'test.jsonl'), 20));
  const files = [
    ...readdirSync(model).map((f) => join(model, f)),
    join(data, 'c4', 'train.jsonl'),
    join(data, 'wikitext-2-raw-v1', 'test.jsonl'),
    join(data, 'tasks', 'arc_easy', 'test.jsonl'),
  ];
  for (const f of files) utimesSync(f, MTIME, MTIME);
  const configFile = join(PIN_ROOT, 'pin.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      name: 'fingerprint pin',
      model: './model',
      backend: 'cpu',
      calibration: { source: './data/c4/train.jsonl', nsamples: 2, seqlen: 32, seed: 0 },
      prune: [
        { method: 'magnitude', sparsity: 0.5 }, // no calibration in its fingerprint
        { method: 'wanda', structure: '2:4' },
        { method: 'wanda', sparsity: 0.5, ignore: ['re:.*down_proj'] }, // a plan in its fingerprint
      ],
      dense: true,
      eval: { ppl: ['wikitext2'], seqlen: 32, maxWindows: 1, tasks: ['arc_easy'], limit: 2, dataDir: './data' },
      // only the required keys: the fine-tune fingerprint covers every default the runner resolves
      finetune: { data: './data/c4/train.jsonl', maxSteps: 1 },
      output: './out',
    }),
  );
  return configFile;
}
