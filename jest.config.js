/**
 * Jest runs the TypeScript sources as ESM (ts-jest; transpile-only because tsconfig sets isolatedModules; `tsc --noEmit` type-checks first).
 *
 * Two suites (test/ mirrors lib/: the tests of lib/x/y.ts are test/x/y.test.ts):
 *   - `npm test`: the fast suite, every `*.test.ts` except `*.acceptance.test.ts` (unit and small integration tests);
 *     it needs no shared folder, network or cache: its fixtures are written by test/helpers/ (tiny checkpoints, a
 *     trained BPE tokenizer, seeded data, a local server in the hub's URL layout), and test/structure.test.ts fails
 *     when a fast test imports test/helpers/shared.ts;
 *   - `npm run test:acceptance`: `*.acceptance.test.ts` only (jest.acceptance.config.js), the long checks on the shared
 *     real models (WikiText-2 protocol values, end-to-end prunes), then the notebooks.
 */
export const ACCEPTANCE = '\\.acceptance\\.test\\.ts$';

// The WebGPU tests (test/model/webgpu.acceptance.test.ts) reach Mesa's software adapter through EGL without a display.
// Mesa reads this from the real environment, which a test cannot set (jest gives each test a copy of process.env);
// this file runs in jest's own process, before any test.
process.env.EGL_PLATFORM ??= 'surfaceless';

export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', ACCEPTANCE],
  testTimeout: 600000,
};
