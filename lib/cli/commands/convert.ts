/** `llm-prune convert`: write a checkpoint again, dense or compressed (compressed-tensors), resharded or recast. */
import { resolve } from 'node:path';
import { Checkpoint } from '../../model/checkpoint.js';
import { cliFlag } from '../../errors.js';
import { CHECKPOINT_FORMATS, type CheckpointFormat } from '../../model/compressed-tensors.js';
import { DTYPES, type DType } from '../../model/safetensors.js';
import { saveCheckpoint } from '../../model/save.js';
import { parseStructure } from '../../prune/prune.js';
import { defineCommand, FORCE_UNLOCK, hubOptions, type CliContext } from '../command.js';
import { localModel } from '../hub.js';
import { print } from '../output.js';
import { parseSize } from '../values.js';

export function convertCommand(ctx: CliContext) {
  return defineCommand({
    command: 'convert',
    describe: 'Write a checkpoint again as dense or compressed (compressed-tensors) safetensors',
    builder: (y) =>
      hubOptions(y)
        .option('model', { type: 'string', demandOption: true, describe: 'checkpoint folder (dense or compressed-tensors) or a hub id' })
        .option('out', { type: 'string', demandOption: true, describe: 'output checkpoint folder' })
        .option('format', { choices: CHECKPOINT_FORMATS as unknown as string[], demandOption: true, describe: 'dense or compressed' })
        .option('structure', { type: 'string', describe: 'sparsity structure for compressed (default: detected; 2:4 gets sparse-24-bitmask)' })
        .option('dtype', { choices: DTYPES as unknown as string[], describe: 'output dtype (default: the input one)' })
        .option('max-shard-size', { type: 'string', describe: 'shard the output, e.g. 2GB' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing --out folder' })
        .option('force-unlock', FORCE_UNLOCK),
    examples: [
      ['llm-prune convert --model runs/wanda-2of4 --out runs/wanda-2of4-compressed --format compressed', 'store a 2:4 model as sparse-24-bitmask'],
      ['llm-prune convert --model runs/wanda-50 --out runs/wanda-50-bf16 --format dense --dtype BF16', 'recast to BF16'],
    ],
    handler: async (argv) => {
      if (argv.structure !== undefined) parseStructure(argv.structure); // 'unstructured' or N:M, before any work
      const ckpt = Checkpoint.open(await localModel(argv.model, argv, ctx.env));
      try {
        const storage = saveCheckpoint(ckpt, {
          out: argv.out,
          format: argv.format as CheckpointFormat,
          ...(argv.structure !== undefined ? { structure: argv.structure } : {}),
          ...(argv.dtype !== undefined ? { dtype: argv.dtype as DType } : {}),
          ...(argv.maxShardSize !== undefined ? { maxShardBytes: parseSize('--max-shard-size', argv.maxShardSize) } : {}),
          overwrite: argv.overwrite,
          optionName: cliFlag,
          forceUnlock: argv.forceUnlock,
        });
        print({ model: ckpt.dir, out: resolve(argv.out), storage });
      } finally {
        ckpt.close();
      }
    },
  });
}
