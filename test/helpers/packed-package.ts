/**
 * The package as users get it: `npm pack` of this repository, installed into a fresh project in a temporary folder
 * (not the clone). The install is OFFLINE: the project's package-lock.json is made from this repository's (the
 * runtime dependencies at the versions and integrity hashes locked here, the package itself as `file:` the tarball)
 * and `npm ci --offline` takes every tarball from the npm cache that this repository's own `npm ci` filled (as in
 * CI).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Lock {
  packages: Record<string, Record<string, unknown> & { dev?: boolean }>;
}

export const ROOT = process.cwd();
export const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown> & { version: string; name: string };

/** package-lock.json of a project that depends only on the tarball: this repository's runtime entries. */
function projectLock(tarball: string): Lock & Record<string, unknown> {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as Lock;
  const root = lock.packages['']!;
  const packages: Lock['packages'] = {
    '': { name: 'user-project', version: '9.9.9', dependencies: { [PKG.name]: `file:${tarball}` } },
    [`node_modules/${PKG.name}`]: {
      version: PKG.version,
      resolved: `file:${tarball}`,
      license: root['license'],
      dependencies: PKG['dependencies'],
      bin: PKG['bin'],
      engines: root['engines'],
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k !== '' && !v.dev) packages[k] = v;
  return { name: 'user-project', version: '9.9.9', lockfileVersion: 3, requires: true, packages };
}

/** `npm pack` into `tmp`, then a fresh project `tmp/user-project` with the tarball installed. */
export function installPackedPackage(tmp: string): { project: string; tarball: string } {
  const out = execFileSync('npm', ['pack', '--pack-destination', tmp, '--silent'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  const tarball = out[out.length - 1]!;
  const project = join(tmp, 'user-project');
  mkdirSync(project);
  copyFileSync(join(tmp, tarball), join(project, tarball));
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'user-project', version: '9.9.9', private: true, dependencies: { [PKG.name]: `file:${tarball}` } }, null, 2),
  );
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(projectLock(tarball), null, 2));
  execFileSync('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { project, tarball };
}
