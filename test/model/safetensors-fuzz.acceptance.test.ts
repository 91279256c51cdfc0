/** The reader's long fuzz run: 100,000 malformed files (test/helpers/safetensors-fuzz.ts). */
import { fuzzReader } from '../helpers/safetensors-fuzz.js';

test('100,000 malformed files: CheckpointErrors naming the tensor or field, nothing else', async () => {
  await fuzzReader(100_000);
});
