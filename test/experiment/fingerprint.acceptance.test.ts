/**
 * Results folders written by an older runner still resume: the settings/<id>.json files in
 * test/fixtures/experiment-pin/ were written by the runner as it was before lib/experiment/run.ts was split into
 * steps (see test/helpers/fingerprint-pin.ts); with the same model and data files (same paths, sizes, mtimes) every
 * setting, fine-tune included, must be taken as finished: same ids, same fingerprints.
 */
import { cpSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalSha256 } from '../../lib/canonical.js';
import { planSettings, runExperiment } from '../../lib/experiment/run.js';
import { expandSettings, loadExperiment } from '../../lib/experiment/schema.js';
import { lockPinFolder, PIN_FIXTURE, PIN_ROOT, writePinFolder } from '../helpers/fingerprint-pin.js';

/** id -> [setting fingerprint, fine-tune fingerprint], as the old runner computed them. */
const PINNED: Record<string, [string, string | undefined]> = {
  dense: ['93e5f4298e7fea0ed676031a8562cec05329db265668cbb13e2703c4cd0458c3', undefined],
  'magnitude-unstructured-0.5': [
    '6bf2cc10f4e1ccb5225cec4d0b0ab1a6556776e6150a0cebb20073fc9c75bb3c',
    '2d7857ffcd775e1b56d7b8fb66026a35c3c86fa73bcc28074e50f85bb1714bf4',
  ],
  'wanda-2of4': [
    '7116ea78b815d61fb23175ff0ba28c2f9e414b812c25ecc820f94337910741c1',
    '7b1d5c47a21580c2a155a26b4b91377d3b0789e43e89b490c1a4b324bd34ab63',
  ],
  'wanda-sel4221379e-unstructured-0.5': [
    '4f99adeefa2e8b0b33fc390e3aaaa4344751d5d3425fd516fc556ed8297c3802',
    '40cea0f6c519e7addd8b391428242c93e2ce33abdc0474293c552340087cea4b',
  ],
};

interface Stored {
  id: string;
  fingerprint: string;
  inputs: unknown;
  finetune?: { fingerprint: string; inputs: unknown };
}

function fixture(id: string): Stored {
  return JSON.parse(readFileSync(join(PIN_FIXTURE, `${id}.json`), 'utf8')) as Stored;
}

let configFile: string;
let unlock: () => void = () => undefined;

beforeAll(async () => {
  unlock = await lockPinFolder();
  configFile = writePinFolder();
});

afterAll(() => {
  rmSync(PIN_ROOT, { recursive: true, force: true });
  unlock();
});

describe('settings written by the old runner', () => {
  test('the ids and fingerprints are the pinned ones, and each is the sha256 of its canonical inputs', async () => {
    expect(readdirSync(PIN_FIXTURE).sort()).toEqual(Object.keys(PINNED).map((id) => `${id}.json`).sort());
    expect(['dense', ...expandSettings(loadExperiment(configFile)).map((s) => s.id)]).toEqual(Object.keys(PINNED));
    for (const [id, [print, ftPrint]] of Object.entries(PINNED)) {
      const s = fixture(id);
      expect(s.id).toBe(id);
      expect(s.fingerprint).toBe(print);
      expect(await canonicalSha256(s.inputs)).toBe(print);
      expect(s.finetune?.fingerprint).toBe(ftPrint);
      if (s.finetune) expect(await canonicalSha256({ setting: print, finetune: s.finetune.inputs })).toBe(ftPrint);
    }
  });

  test('a dry run plans to reuse every setting; a run reuses them all and computes nothing', async () => {
    const exp = loadExperiment(configFile);
    cpSync(PIN_FIXTURE, join(exp.output, 'settings'), { recursive: true });
    const planned = await planSettings(exp);
    expect(planned.map((p) => [p.id, p.action])).toEqual(Object.keys(PINNED).map((id) => [id, 'reuse']));
    const notes: string[] = [];
    const r = await runExperiment(exp, { onNote: (line) => notes.push(line) });
    expect(notes.filter((l) => l.includes('redoing'))).toEqual([]);
    expect(r.computed).toEqual([]);
    expect(r.finetuned).toEqual([]);
    expect(r.reused).toEqual(Object.keys(PINNED));
    for (const id of Object.keys(PINNED)) {
      expect(readFileSync(join(exp.output, 'settings', `${id}.json`), 'utf8')).toBe(readFileSync(join(PIN_FIXTURE, `${id}.json`), 'utf8'));
    }
  });
});
