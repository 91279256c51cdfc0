/**
 * The shared real models and data, for acceptance tests only (`*.acceptance.test.ts`, `npm run test:acceptance`).
 * The fast suite (`npm test`) must pass in a fresh clone without them: its tests use fixtures the helpers write
 * (tiny-checkpoint.ts, tiny-tokenizer.ts, synthetic-text.ts). test/structure.test.ts fails when a fast test imports
 * this module, and sharedPath throws when a fast test calls it.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The shared models and data: $LLM_PRUNE_SHARED, else ../shared beside the project root. */
export const SHARED_DIR = resolve(process.env['LLM_PRUNE_SHARED'] ?? join(process.cwd(), '..', 'shared'));

/** The test file jest is running, if any. */
function currentTestPath(): string | undefined {
  const expectGlobal = (globalThis as { expect?: { getState?: () => { testPath?: string } } }).expect;
  return expectGlobal?.getState?.().testPath;
}

/**
 * Path of a file or folder inside shared/. Throws (the test fails, loudly) when it is absent: tests that need
 * real models or data never pass silently without them; and when the calling test is not an acceptance test.
 */
export function sharedPath(...parts: string[]): string {
  const testPath = currentTestPath();
  if (testPath !== undefined && !testPath.endsWith('.acceptance.test.ts')) {
    throw new Error(`${testPath}: a fast test asked for the shared file ${join(...parts)}; the fast suite must pass without ../shared (move the test to a *.acceptance.test.ts file or use the fixture helpers)`);
  }
  const p = join(SHARED_DIR, ...parts);
  if (!existsSync(p)) {
    throw new Error(
      `missing shared file ${p}: these tests need the shared models and data; ` +
        'put them at ../shared beside the project root or set LLM_PRUNE_SHARED to their folder',
    );
  }
  return p;
}
