import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../lib/model/backend.js';

/**
 * Tests run on the wasm backend unless LLM_PRUNE_TEST_BACKEND says otherwise, single-threaded unless
 * LLM_PRUNE_TEST_THREADS says otherwise: jest gives every test file a fresh tfjs, and each threaded instance would keep
 * its pool of 8 workers until the process ends. Results do not depend on the thread count (test/model/wasm-threads.test.ts).
 */
export async function useTestBackend(): Promise<typeof tf> {
  const threads = Number(process.env['LLM_PRUNE_TEST_THREADS'] ?? 1);
  await initBackend((process.env['LLM_PRUNE_TEST_BACKEND'] as BackendName | undefined) ?? 'wasm', { threads });
  return tf;
}
