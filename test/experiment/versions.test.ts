/**
 * Results reuse keyed by what computed them: the version stamp (package version, each method's, allocator's and
 * refiner's version) recorded beside a stored setting, and the reuse decision that checks it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalSha256 } from '../../lib/canonical.js';
import { LEGACY_PACKAGE, versionChange, versionStamp, type VersionStamp } from '../../lib/experiment/fingerprint.js';
import { FORMAT, reusableSetting, settingPaths, type SettingJob, type StoredSetting } from '../../lib/experiment/output-folder.js';
import { expandSettings, loadExperiment, type PruneSetting } from '../../lib/experiment/schema.js';
import { packageVersion } from '../../lib/paths.js';
import { getLayerwise, getMethod, getRefiner, LAYERWISE_NAMES, METHOD_NAMES, REFINER_NAMES } from '../../lib/prune/registry.js';

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'versions-test-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The settings of a prune entry, through the experiment schema (as a run expands them; the model is never read). */
function settingsOf(prune: unknown): PruneSetting[] {
  const file = join(tmp, 'exp.json');
  writeFileSync(file, JSON.stringify({ model: 'owner/model', calibration: { source: './c4.jsonl' }, prune, output: './out' }));
  writeFileSync(join(tmp, 'c4.jsonl'), '{"text": "a"}\n');
  return expandSettings(loadExperiment(file));
}

describe('version stamp', () => {
  test('every method, layerwise allocator and refiner declares its version: a positive integer', () => {
    const all = [...METHOD_NAMES.map((n) => getMethod(n)), ...LAYERWISE_NAMES.map((n) => getLayerwise(n)), ...REFINER_NAMES.map((n) => getRefiner(n))];
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const c of all) expect(Number.isInteger(c.version) && c.version >= 1).toBe(true);
  });

  test('a setting is stamped with the package version and the versions of what it ran; the dense model with none', () => {
    const [owlDsnot] = settingsOf({ method: 'wanda', sparsity: 0.6, layerwise: 'owl', refine: 'dsnot' });
    expect(versionStamp(owlDsnot!)).toEqual({
      package: packageVersion(),
      methods: { wanda: getMethod('wanda').version, owl: getLayerwise('owl').version, dsnot: getRefiner('dsnot').version },
    });
    const [mag] = settingsOf({ method: 'magnitude', sparsity: 0.5 });
    expect(versionStamp(mag!, '9.9.9')).toEqual({ package: '9.9.9', methods: { magnitude: getMethod('magnitude').version } });
    expect(versionStamp(null)).toEqual({ package: packageVersion(), methods: {} });
  });

  test('versionChange names every difference; a file stored before stamps counts as 0.1.0 with every version 1', () => {
    const now: VersionStamp = { package: '0.2.0', methods: { wanda: 2, owl: 1 } };
    expect(versionChange(now, now)).toBeNull();
    expect(versionChange({ package: '0.1.0', methods: { wanda: 1, owl: 1 } }, now)).toBe('package 0.1.0 -> 0.2.0, wanda 1 -> 2');
    expect(versionChange({ package: '0.2.0', methods: { wanda: 2 } }, now)).toBe('owl none -> 1');
    expect(versionChange(undefined, { package: LEGACY_PACKAGE, methods: { wanda: 1 } })).toBeNull();
    expect(versionChange(undefined, { package: LEGACY_PACKAGE, methods: { wanda: 2 } })).toBe('wanda 1 -> 2');
    expect(versionChange(undefined, { package: '0.3.0', methods: {} })).toBe(`package ${LEGACY_PACKAGE} -> 0.3.0`);
  });
});

describe('reusableSetting and the version stamp', () => {
  const inputs = { setting: { id: 'wanda-unstructured-0.5' }, model: { ref: 'm', files: [] } };
  let print = '';
  beforeAll(async () => {
    print = await canonicalSha256(inputs);
  });
  const result = {
    id: 'wanda-unstructured-0.5',
    method: 'wanda',
    structure: 'unstructured',
    sparsity: 0.5,
    useVariant: false,
    actualSparsity: 0.5,
    perplexity: {},
    tasks: {},
    mean: null,
    blockSparsity: [0.5],
    timings: { prune: 1 },
  };
  const current: VersionStamp = { package: '0.2.0', methods: { wanda: 3 } };

  /** A job for the running code (stamp `current`) and its settings file holding a result stamped `stored`. */
  function folder(name: string, stored: VersionStamp | undefined): SettingJob {
    const out = join(tmp, name);
    const job: SettingJob = {
      id: result.id,
      setting: null,
      tag: `[1/1] ${result.id}`,
      inputs: inputs as unknown as SettingJob['inputs'],
      print,
      versions: current,
      ftInputs: null,
      ftPrint: null,
      ...settingPaths(out, result.id),
    };
    mkdirSync(join(out, 'settings'), { recursive: true });
    const record = { format: FORMAT, id: job.id, fingerprint: job.print, inputs, result, calibrationHash: null, ...(stored ? { versions: stored } : {}) };
    writeFileSync(job.file, JSON.stringify(record));
    return job;
  }

  function decide(job: SettingJob, reuseAnyVersion: boolean, dry = false): { stored: StoredSetting | null; notes: string[] } {
    const notes: string[] = [];
    const stored = reusableSetting(job, { keepCheckpoints: false, reuseAnyVersion }, dry, (l) => notes.push(l));
    return { stored, notes };
  }

  test('the same stamp: reused, no note', () => {
    const { stored, notes } = decide(folder('same', current), false);
    expect(stored?.result.id).toBe(result.id);
    expect(notes).toEqual([]);
  });

  test('another package version: redone (the note names both versions and the flag), the stale file removed', () => {
    const job = folder('package', { package: '0.1.0', methods: { wanda: 3 } });
    const dry = decide(job, false, true);
    expect(dry.stored).toBeNull();
    expect(existsSync(job.file)).toBe(true); // a dry run removes nothing
    const { stored, notes } = decide(job, false);
    expect(stored).toBeNull();
    expect(notes).toEqual([
      '[1/1] wanda-unstructured-0.5: redoing: the stored result was computed by another version (package 0.1.0 -> 0.2.0); --reuse-any-version (reuseAnyVersion: true) keeps it',
    ]);
    expect(existsSync(job.file)).toBe(false);
  });

  test("another method version (a bumped module): redone; a file without a stamp counts as 0.1.0, every version 1", () => {
    expect(decide(folder('method', { package: '0.2.0', methods: { wanda: 2 } }), false).notes[0]).toContain('computed by another version (wanda 2 -> 3)');
    expect(decide(folder('legacy', undefined), false).notes[0]).toContain('computed by another version (package 0.1.0 -> 0.2.0, wanda 1 -> 3)');
  });

  test('reuseAnyVersion: the result of another version is kept, with a warning naming the versions', () => {
    const job = folder('any', { package: '0.1.0', methods: { wanda: 1 } });
    const { stored, notes } = decide(job, true);
    expect(stored?.result).toEqual(result);
    expect(notes).toEqual([
      '[1/1] wanda-unstructured-0.5: warning: reusing a result computed by another version (package 0.1.0 -> 0.2.0, wanda 1 -> 3) as reuseAnyVersion asks; this version may compute other numbers',
    ]);
    expect(JSON.parse(readFileSync(job.file, 'utf8')).versions).toEqual({ package: '0.1.0', methods: { wanda: 1 } });
  });

  test('reuseAnyVersion does not keep a result made from other inputs', () => {
    const job = folder('inputs', current);
    const { stored, notes } = decide({ ...job, print: 'other' }, true);
    expect(stored).toBeNull();
    expect(notes[0]).toContain('redoing: the stored result was made from different inputs');
  });

  test('a malformed stamp is named', () => {
    const job = folder('malformed', current);
    writeFileSync(job.file, JSON.stringify({ ...JSON.parse(readFileSync(job.file, 'utf8')), versions: 'x' }));
    expect(decide(job, true).notes).toEqual(['[1/1] wanda-unstructured-0.5: redoing: settings/wanda-unstructured-0.5.json its version stamp is malformed']);
  });
});
