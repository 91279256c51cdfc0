/** `llm-prune generate`: greedy generation, to show that a checkpoint (pruned or not) is usable. */
import { generate } from '../../generate.js';
import { loadModel } from '../../model/load.js';
import { backendOptions, defineCommand, hubOptions, useBackend, type CliContext } from '../command.js';
import { hubTokenOf } from '../env.js';
import { print } from '../output.js';
import { localModel } from '../hub.js';

export function generateCommand(ctx: CliContext) {
  return defineCommand({
    command: 'generate',
    describe: 'Greedy generation (proves a checkpoint, pruned or not, is usable)',
    builder: (y) =>
      hubOptions(
        backendOptions(
          y
            .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder or hub id' })
            .option('prompt', { type: 'string', default: '', describe: 'text to continue (BOS is added)' })
            .option('max-new-tokens', { type: 'number', default: 30, describe: 'tokens to generate' })
            .option('stop-at-eos', { type: 'boolean', default: false, describe: 'stop at the EOS token' }),
        ),
      ),
    examples: [['llm-prune generate --model runs/wanda-50 --prompt "Once upon a time" --max-new-tokens 20', 'continue a prompt with a pruned model']],
    handler: async (argv) => {
      await useBackend(argv);
      const m = await loadModel(await localModel(argv.model, argv, ctx.env), { hubToken: hubTokenOf(argv, ctx.env) });
      try {
        print(await generate(m, argv.prompt, argv.maxNewTokens, { stopAtEos: argv.stopAtEos }));
      } finally {
        m.dispose();
      }
    },
  });
}
