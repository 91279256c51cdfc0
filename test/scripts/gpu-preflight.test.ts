/**
 * The GPU check's preflight (scripts/gpu-preflight.ts) on described machines, and the whole check here: on a machine
 * whose only adapter is a software one, `--require-hardware` fails within seconds with one JSON line, no stack trace.
 */
import { spawnSync } from 'node:child_process';
import { PreflightError, preflight, versionAtLeast, type Machine } from '../../scripts/gpu-preflight.js';
import { sharedPath } from '../helpers/shared.js';

const GOOD_STDCXX = Buffer.from('...GLIBCXX_3.4.29\0GLIBCXX_3.4.30\0...');

/** A machine described by its files and environment. */
function machine(o: { glibc?: string | null; files?: Record<string, Buffer | string>; dirs?: Record<string, string[]>; env?: Record<string, string> } = {}): Machine {
  const files: Record<string, Buffer | string> = { '/usr/lib/x86_64-linux-gnu/libstdc++.so.6': GOOD_STDCXX, ...o.files };
  return {
    platform: 'linux-x64',
    glibc: o.glibc === undefined ? '2.36' : o.glibc,
    env: { ...o.env },
    exists: (p) => p in files || p in (o.dirs ?? {}),
    read: (p) => Buffer.from(files[p] ?? ''),
    list: (d) => o.dirs?.[d] ?? [],
    ldconfig: () => '',
  };
}

function failure(m: Machine): PreflightError {
  try {
    preflight(m, () => '/tmp/written.json');
  } catch (e) {
    if (e instanceof PreflightError) return e;
    throw e;
  }
  throw new Error('the preflight passed');
}

describe('the preflight: the real minimum, each failure named with its fix', () => {
  test('versions compare as numbers', () => {
    expect([versionAtLeast('2.36', '2.34'), versionAtLeast('2.34', '2.34'), versionAtLeast('2.4', '2.34'), versionAtLeast('3.0', '2.34')]).toEqual([true, true, false, true]);
  });

  test('a machine without a GPU but with the libraries passes (no NVIDIA section)', () => {
    const r = preflight(machine(), () => 'x');
    expect(r).toMatchObject({ glibc: '2.36', libstdcxx: '/usr/lib/x86_64-linux-gnu/libstdc++.so.6', nvidia: null });
  });

  test('another platform, old glibc, musl, a libstdc++ without GLIBCXX_3.4.30', () => {
    expect(failure({ ...machine(), platform: 'darwin-arm64' }).stage).toBe('platform');
    expect(failure(machine({ glibc: '2.31' })).message).toBe('glibc 2.31: dawn.node needs glibc >= 2.34');
    expect(failure(machine({ glibc: null })).stage).toBe('glibc');
    const old = failure(machine({ files: { '/usr/lib/x86_64-linux-gnu/libstdc++.so.6': 'GLIBCXX_3.4.29' } }));
    expect([old.stage, old.message]).toEqual(['libstdc++', '/usr/lib/x86_64-linux-gnu/libstdc++.so.6 lacks GLIBCXX_3.4.30, which dawn.node needs']);
    // LD_LIBRARY_PATH comes first, as for the dynamic loader
    const viaPath = machine({ env: { LD_LIBRARY_PATH: '/opt/gcc12/lib' }, files: { '/opt/gcc12/lib/libstdc++.so.6': GOOD_STDCXX, '/usr/lib/x86_64-linux-gnu/libstdc++.so.6': 'old' } });
    expect(preflight(viaPath, () => 'x').libstdcxx).toBe('/opt/gcc12/lib/libstdc++.so.6');
  });

  test('NVIDIA: a container without graphics capability, a driver without Vulkan, a manifest written for a driver without one', () => {
    const container = { NVIDIA_VISIBLE_DEVICES: 'all', NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' };
    const noGraphics = failure(machine({ env: container }));
    expect(noGraphics.stage).toBe('nvidia-vulkan');
    expect(noGraphics.message).toContain("NVIDIA_DRIVER_CAPABILITIES is 'compute,utility': without 'graphics'");
    expect(noGraphics.fix).toContain('NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics');
    const noVulkan = failure(machine({ env: { ...container, NVIDIA_DRIVER_CAPABILITIES: 'all' } }));
    expect(noVulkan.message).toContain('its Vulkan driver is not: no nvidia_icd.json');
    const installed = preflight(machine({ env: { ...container, NVIDIA_DRIVER_CAPABILITIES: 'graphics,compute' }, dirs: { '/etc/vulkan/icd.d': ['nvidia_icd.json'] } }), () => 'x');
    expect(installed.nvidia).toEqual({ manifest: '/etc/vulkan/icd.d/nvidia_icd.json', written: false, driverCapabilities: 'graphics,compute' });
    const libOnly = machine({ env: { NVIDIA_VISIBLE_DEVICES: 'all' }, files: { '/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0': '' } });
    let written = '';
    const r = preflight(libOnly, (json) => ((written = json), '/tmp/icd/nvidia_icd.json'));
    expect(r.nvidia).toMatchObject({ manifest: '/tmp/icd/nvidia_icd.json', written: true });
    expect(JSON.parse(written)).toEqual({ file_format_version: '1.0.0', ICD: { library_path: '/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0', api_version: '1.3.0' } });
    expect(libOnly.env['VK_ICD_FILENAMES']).toBe('/tmp/icd/nvidia_icd.json');
  });
});

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
