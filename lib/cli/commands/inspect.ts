/** `llm-prune inspect`: a checkpoint's architecture, sizes, dtype, parameters and tokenizer as JSON. */
import { inspectModel } from '../../generate.js';
import { loadModel } from '../../model/load.js';
import { backendOptions, defineCommand, hubOptions, useBackend, type CliContext } from '../command.js';
import { hubTokenOf } from '../env.js';
import { print } from '../output.js';
import { localModel } from '../hub.js';

export function inspectCommand(ctx: CliContext) {
  return defineCommand({
    command: 'inspect',
    describe: 'Show a checkpoint: architecture, sizes, dtype, parameters, tokenizer',
    builder: (y) => hubOptions(backendOptions(y.option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' }))),
    examples: [
      ['llm-prune inspect --model ./c4-llama-7m', 'a local checkpoint folder'],
      ['llm-prune inspect --model HuggingFaceTB/SmolLM2-135M', 'a hub model (downloaded once, then cached)'],
    ],
    handler: async (argv) => {
      await useBackend(argv);
      const m = await loadModel(await localModel(argv.model, argv, ctx.env), { hubToken: hubTokenOf(argv, ctx.env) });
      try {
        print(inspectModel(m));
      } finally {
        m.dispose();
      }
    },
  });
}
