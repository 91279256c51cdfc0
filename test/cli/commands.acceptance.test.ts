/** `inspect` on the real TinyStories-656K checkpoint. test/cli/commands.test.ts runs the commands on tiny checkpoints. */
import { runCli } from '../helpers/cli.js';
import { sharedPath } from '../helpers/shared.js';

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args);
}
function brief(r: { code: number | null; stderr: string }): { code: number | null; stderr: string } {
  return { code: r.code, stderr: r.stderr.slice(-1500) };
}
const tinyStories = (): string => sharedPath('models', 'TinyStories-656K');

test('inspect prints the checkpoint as JSON (TinyStories-656K: 656,000 parameters)', async () => {
  const r = await cli('inspect', '--model', tinyStories());
  expect(brief(r)).toEqual({ code: 0, stderr: expect.any(String) });
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  expect(info).toMatchObject({
    parameters: 656000,
    architecture: 'LlamaForCausalLM',
    layers: 2,
    hiddenSize: 128,
    vocabSize: 2048,
    maxPositions: 512,
    tiedEmbeddings: true,
    dtype: 'F32',
  });
});
