/** `llm-prune report`: merge the results folders of `run` (shards of one experiment) into one report. */
import { join } from 'node:path';
import { mergeResults } from '../../experiment/shard.js';
import { defineCommand, type CliContext } from '../command.js';
import { print, progress } from '../output.js';

export function reportCommand(_ctx: CliContext) {
  return defineCommand({
    command: 'report <dirs..>',
    describe: 'Merge the results folders of `run` (shards of one experiment) into one results.json/md/csv with charts',
    builder: (y) =>
      y
        .positional('dirs', { type: 'string', default: undefined, describe: 'results folders (each with experiment.json and settings/)' })
        .option('out', { type: 'string', demandOption: true, describe: 'folder for the merged report (may be one of the inputs)' })
        .option('allow-missing', { type: 'boolean', default: false, describe: 'write the report even when settings of the grid are in no folder' }),
    examples: [['llm-prune report runs/grid-0 runs/grid-1 --out runs/grid', 'merge two shards of one experiment']],
    handler: async (argv) => {
      const r = await mergeResults(argv.dirs as unknown as string[], argv.out, { allowMissing: argv.allowMissing });
      if (r.missing.length) progress.note(`missing settings: ${r.missing.join(', ')}`);
      progress.note(`wrote ${join(argv.out, 'results.md')} (${r.results.results.length} settings)`);
      print({ out: argv.out, files: r.files, settings: r.results.results.map((x) => x.id), missing: r.missing, sources: r.sources });
    },
  });
}
