/**
 * The whole GPU check on this machine (it names the shared c4-llama-7m): on a machine whose only adapter is a
 * software one, `--require-hardware` fails within seconds with one JSON line, no stack trace; a bad option is a JSON
 * line too.
 */
import { spawnSync } from 'node:child_process';
import { sharedPath } from '../helpers/shared.js';

describe('scripts/gpu-check.ts on this machine', () => {
  test('--require-hardware with only a software adapter (or none): one JSON line, exit 1, within seconds', () => {
    const args = ['--model', sharedPath('models', 'c4-llama-7m'), '--calibration', sharedPath('data', 'c4', 'c4-train.00000-of-01024.head1000.jsonl'), '--require-hardware'];
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gpu-check.ts', ...args], { encoding: 'utf8', env: { ...process.env, EGL_PLATFORM: 'surfaceless' }, timeout: 120_000 });
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    if (out['ok'] === true) return; // this machine has a GPU: the whole check ran
    expect(r.status).toBe(1);
    expect(out).toMatchObject({ check: 'gpu-check', ok: false, stage: 'adapter' });
    expect(out['error']).toMatch(/^no hardware WebGPU adapter: /);
    expect(out['seconds']).toBeLessThan(30); // from the start of the script (compiling it is extra)
    expect(r.stderr).not.toMatch(/^\s+at .*\.(?:ts|js|mjs|cjs):\d+/m); // no JavaScript stack trace (Dawn prints its own warnings)
  });

  test('a bad option is a JSON line too', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gpu-check.ts', '--bogus'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ ok: false, stage: 'arguments', error: "Unknown option '--bogus'" });
  });
});
