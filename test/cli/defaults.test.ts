/**
 * One defaults object per stage (lib/prune/defaults.ts, lib/eval/defaults.ts, lib/finetune/defaults.ts): every CLI
 * flag that has a stage default shows that value (docs/cli.md is generated from these flags), and
 * the experiment schema fills in the same values (test/experiment/schema.test.ts).
 */
import { buildCli } from '../../lib/cli/index.js';
import { EVAL_DEFAULTS } from '../../lib/eval/defaults.js';
import { FINETUNE_DEFAULTS } from '../../lib/finetune/defaults.js';
import { PRUNE_DEFAULTS } from '../../lib/prune/defaults.js';

/** `--flag` -> its help text in `llm-prune <command> --help`. */
async function helpBlocks(command: string): Promise<Map<string, string>> {
  const help = (await buildCli([command], {}).getHelp()).split('\nExamples:')[0]!; // the option lists
  const out = new Map<string, string>();
  for (const block of help.split(/\n(?= +--)/)) {
    const flag = /^ +--([\w-]+)/.exec(block)?.[1];
    if (flag) out.set(flag, block.replace(/\s+/g, ' '));
  }
  return out;
}

const camel = (flag: string): string => flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
const shown = (v: unknown): string => (Array.isArray(v) ? JSON.stringify(v.join(',')) : JSON.stringify(v));

test.each([
  ['prune', PRUNE_DEFAULTS, {}],
  ['eval', EVAL_DEFAULTS, {}],
  ['finetune', FINETUNE_DEFAULTS, { format: 'mergeFormat' }],
] as const)('llm-prune %s: each flag with a stage default shows it', async (command, defaults, renamed) => {
  const flags = await helpBlocks(command);
  const checked: string[] = [];
  for (const [flag, block] of flags) {
    const key = (renamed as Record<string, string>)[flag] ?? camel(flag);
    if (!(key in defaults)) continue;
    checked.push(flag);
    const value = (defaults as Record<string, unknown>)[key];
    const text = /\[default: ([^\]]*)\]/.exec(block)?.[1];
    // a computed default (--sparsity: implied by N:M) is said in the description
    if (text === undefined) expect({ flag, block }).toEqual({ flag, block: expect.stringContaining(`default ${String(value)}`) });
    else expect({ flag, default: text }).toEqual({ flag, default: shown(value) });
  }
  expect(checked.length).toBeGreaterThan(1);
});

test('the values chosen once for both routes (the CLI and experiment files)', () => {
  expect(PRUNE_DEFAULTS.batchSize).toBe(1); // the memory of a 7B model at seqlen 2048 (bench/calibration-memory.ts)
  expect(FINETUNE_DEFAULTS.resume).toBe(true); // running the same fine-tune again continues it
  expect(FINETUNE_DEFAULTS.merge).toBe('masked'); // the tuned model stays as sparse as the pruned one
});
