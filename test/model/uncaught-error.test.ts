/**
 * An uncaught library error in a user's ESM script ends the process the way Node ends any uncaught error: exit 1,
 * the library's message and stack, a few hundred bytes on stderr. The wasm backend's Emscripten glue installs
 * process-wide handlers that rethrow from inside the glue (exit 7, the glue's source under tsx); initBackend removes
 * them (lib/model/wasm-threads.ts). The same check on the installed package under plain `node` is in
 * test/package.acceptance.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = process.cwd();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llm-prune-uncaught-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A user's script: start the wasm backend with `threads`, then load a model folder that does not exist, uncaught. */
function userScript(threads: number): string {
  const file = join(dir, `user-${threads}.mts`);
  const lib = JSON.stringify(resolve(ROOT, 'lib', 'index.ts'));
  writeFileSync(file, `import { initBackend, loadModel } from ${lib};\nawait initBackend('wasm', { threads: ${threads} });\nawait loadModel('/missing');\n`);
  return file;
}

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 }, (error, _stdout, stderr) =>
      res({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stderr }),
    );
  });
}

const RUNNERS: [string, (script: string) => string[]][] = [
  ['tsx', (s) => [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), s]],
  ['node --import tsx', (s) => ['--import', 'tsx', s]],
];

describe.each(RUNNERS)('an uncaught loadModel error under %s', (_name, argv) => {
  test.each([1, 2])('exits 1 with the library message first (wasm, %i thread(s))', async (threads) => {
    const r = await run(argv(userScript(threads)));
    expect({ code: r.code, bytes: r.stderr.length < 700 }).toEqual({ code: 1, bytes: true });
    expect(r.stderr).toMatch(/^CheckpointError: model '\/missing': folder does not exist/m);
    expect(r.stderr).toMatch(/at loadModel \(.*lib\/model\/load\.ts/);
    expect(r.stderr).not.toMatch(/tf-backend-wasm|tfjs-backend-wasm\.js/);
  });
});
