/** The reader's fuzz run, short (test/helpers/safetensors-fuzz.ts; the long run is the acceptance test beside this). */
import { SafetensorsFile } from '../../lib/model/safetensors.js';
import { bytesSource } from '../../lib/platform/bytes.js';
import { fuzzReader, seedFile } from '../helpers/safetensors-fuzz.js';

test('the seed file is valid and reads', async () => {
  const f = await SafetensorsFile.openSource(bytesSource(seedFile, 'seed'));
  expect([...f.entries.keys()].sort()).toEqual(['a.weight', 'b', 'c', 'empty', 'scalar']);
  expect([...(await f.readFloat32Async('b'))]).toEqual([-1.5, -0.5, 0.5, 1.5, 2.5]);
});

test('2,000 malformed files: CheckpointErrors naming the tensor or field, nothing else', async () => {
  await fuzzReader(2000);
});
