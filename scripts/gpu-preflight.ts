/**
 * The GPU check's preflight: what a Linux machine needs before Dawn's `dawn.node` (npm `webgpu` 0.6.2) can run a
 * GPU, checked in well under a second, each failure one JSON line (scripts/gpu-check.ts prints it):
 *   - x86-64 Linux;
 *   - glibc >= 2.34 (dawn.node's newest GLIBC symbol version; Node's own binary needs 2.28);
 *   - a libstdc++.so.6 with GLIBCXX_3.4.30 (GCC 12's: Debian 12, Ubuntu 22.04 and newer; RHEL 9's GCC 11 has 3.4.29);
 *   - on an NVIDIA machine, its Vulkan ICD: the manifest nvidia_icd.json (or, in a container, the driver library
 *     libGLX_nvidia.so.0, for which a manifest is written here) and, in a container, NVIDIA_DRIVER_CAPABILITIES
 *     including `graphics` (or `all`): the NVIDIA container toolkit mounts the Vulkan driver only then.
 * Then the adapter itself (gpu-check.ts): with --require-hardware a software adapter (llvmpipe, lavapipe,
 * SwiftShader) is a failure.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MIN_GLIBC = '2.34';
export const NEEDED_GLIBCXX = 'GLIBCXX_3.4.30';
export const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/usr/lib', '/lib'];

/** A failed requirement: `stage` names it, `error` says what is wrong, `fix` what to do. */
export class PreflightError extends Error {
  constructor(
    readonly stage: string,
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/** What the preflight reads of the machine (injected by tests). */
export interface Machine {
  platform: string; // process.platform-process.arch
  glibc: string | null; // runtime glibc version, null when not glibc (musl)
  env: Record<string, string | undefined>;
  exists(path: string): boolean;
  read(path: string): Buffer;
  list(dir: string): string[];
  ldconfig(): string; // `ldconfig -p` output ('' when unavailable)
}

export function thisMachine(): Machine {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return {
    platform: `${process.platform}-${process.arch}`,
    glibc: header?.glibcVersionRuntime ?? null,
    env: process.env,
    exists: existsSync,
    read: (p) => readFileSync(p),
    list: (d) => (existsSync(d) ? readdirSync(d) : []),
    ldconfig: () => {
      for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
        try {
          return execFileSync(bin, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        } catch {
          // try the next
        }
      }
      return '';
    },
  };
}

/** a >= b for dotted versions. */
export function versionAtLeast(a: string, b: string): boolean {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Where the dynamic loader finds `lib`: LD_LIBRARY_PATH first, then the ldconfig cache, then the usual folders. */
export function findLibrary(m: Machine, lib: string): string | null {
  for (const d of (m.env['LD_LIBRARY_PATH'] ?? '').split(':').filter((s) => s !== '')) if (m.exists(join(d, lib))) return join(d, lib);
  const line = m.ldconfig().split('\n').find((l) => l.trim().startsWith(`${lib} `) && l.includes('x86-64'));
  const cached = line?.split('=>')[1]?.trim();
  if (cached && m.exists(cached)) return cached;
  for (const d of LIB_DIRS) if (m.exists(join(d, lib))) return join(d, lib);
  return null;
}

/** Whether this is an NVIDIA machine: its kernel driver, device nodes, or a container started for one. */
export function nvidiaPresent(m: Machine): boolean {
  return m.exists('/proc/driver/nvidia/version') || m.exists('/dev/nvidia0') || m.env['NVIDIA_VISIBLE_DEVICES'] !== undefined;
}

/** The NVIDIA Vulkan ICD manifest already installed, or null. VK_ICD_FILENAMES / VK_DRIVER_FILES count. */
function nvidiaManifest(m: Machine): string | null {
  const given = (m.env['VK_DRIVER_FILES'] ?? m.env['VK_ICD_FILENAMES'] ?? '').split(':').filter((s) => s !== '');
  for (const f of given) if (/nvidia/i.test(f) && m.exists(f)) return f;
  for (const d of ICD_DIRS) for (const f of m.list(d)) if (/^nvidia.*\.json$/i.test(f)) return join(d, f);
  return null;
}

/** Checks the NVIDIA Vulkan route; returns the manifest to use (one written here when the driver has none). */
export function checkNvidiaVulkan(m: Machine, writeManifest: (json: string) => string): { manifest: string; written: boolean } {
  const caps = m.env['NVIDIA_DRIVER_CAPABILITIES'];
  if (caps !== undefined && !caps.split(',').map((s) => s.trim()).some((c) => c === 'graphics' || c === 'all')) {
    throw new PreflightError(
      'nvidia-vulkan',
      `NVIDIA_DRIVER_CAPABILITIES is '${caps}': without 'graphics' the NVIDIA container toolkit does not mount the Vulkan driver (libGLX_nvidia.so.0, nvidia_icd.json)`,
      "start the container with NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (or all), e.g. docker run --gpus all -e NVIDIA_DRIVER_CAPABILITIES=all",
    );
  }
  const manifest = nvidiaManifest(m);
  if (manifest) return { manifest, written: false };
  const lib = findLibrary(m, 'libGLX_nvidia.so.0');
  if (!lib) {
    throw new PreflightError(
      'nvidia-vulkan',
      `an NVIDIA GPU is present but its Vulkan driver is not: no nvidia_icd.json in ${ICD_DIRS.join(', ')} and no libGLX_nvidia.so.0`,
      'install the NVIDIA driver with its Vulkan/GLX libraries (not only the compute libraries), or in a container set NVIDIA_DRIVER_CAPABILITIES to include graphics',
    );
  }
  const json = JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: lib, api_version: '1.3.0' } });
  return { manifest: writeManifest(json), written: true };
}

/** Write an ICD manifest to a temporary folder; returns its path. */
export function writeTempManifest(json: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'gpu-check-icd-')), 'nvidia_icd.json');
  writeFileSync(file, json);
  return file;
}

/** What the preflight found (part of the check's JSON output). */
export interface PreflightReport {
  platform: string;
  glibc: string;
  libstdcxx: string;
  nvidia: null | { manifest: string; written: boolean; driverCapabilities: string | null };
  requirements: string;
}

export const REQUIREMENTS =
  `x86-64 Linux, glibc >= ${MIN_GLIBC}, libstdc++ with ${NEEDED_GLIBCXX} (Debian 12 / Ubuntu 22.04 or newer), ` +
  'a GPU with a Vulkan driver (NVIDIA: the driver\'s Vulkan ICD; in a container NVIDIA_DRIVER_CAPABILITIES including graphics)';

/** Run every check; throws a PreflightError on the first failure. May set VK_ICD_FILENAMES in `m.env` (NVIDIA). */
export function preflight(m: Machine = thisMachine(), writeManifest = writeTempManifest): PreflightReport {
  if (m.platform !== 'linux-x64') {
    throw new PreflightError('platform', `this is ${m.platform}; the bundle carries Dawn for linux-x64 only`, 'run it on x86-64 Linux');
  }
  if (m.glibc === null || !versionAtLeast(m.glibc, MIN_GLIBC)) {
    throw new PreflightError(
      'glibc',
      `glibc ${m.glibc ?? 'not found (musl?)'}: dawn.node needs glibc >= ${MIN_GLIBC}`,
      'use an image based on Debian 12, Ubuntu 22.04, RHEL 9 or newer',
    );
  }
  const stdcxx = findLibrary(m, 'libstdc++.so.6');
  if (!stdcxx || !m.read(stdcxx).includes(NEEDED_GLIBCXX)) {
    throw new PreflightError(
      'libstdc++',
      `${stdcxx ?? 'libstdc++.so.6 (not found)'} lacks ${NEEDED_GLIBCXX}, which dawn.node needs`,
      'install libstdc++6 from GCC 12 or newer (Debian 12 / Ubuntu 22.04 have it), or put such a libstdc++.so.6 on LD_LIBRARY_PATH',
    );
  }
  let nvidia: PreflightReport['nvidia'] = null;
  if (nvidiaPresent(m)) {
    const r = checkNvidiaVulkan(m, writeManifest);
    if (r.written) m.env['VK_ICD_FILENAMES'] = r.manifest; // read by the Vulkan loader when Dawn starts
    nvidia = { ...r, driverCapabilities: m.env['NVIDIA_DRIVER_CAPABILITIES'] ?? null };
  }
  return { platform: m.platform, glibc: m.glibc, libstdcxx: stdcxx, nvidia, requirements: REQUIREMENTS };
}
