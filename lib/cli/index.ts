/**
 * The llm-prune command line, a thin shell over the library: the global flags, one module per command
 * (./commands/), and what a usage error prints. lib/cli.ts is the program; lib/bin.ts supervises it.
 */
import { createRequire } from 'node:module';
import type { Argv, CommandModule } from 'yargs';
import { packageVersion } from '../paths.js';
import type { CliContext } from './command.js';
import { processEnv, type Env } from './env.js';
import { convertCommand } from './commands/convert.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { finetuneCommand } from './commands/finetune.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { pruneCommand } from './commands/prune.js';
import { reportCommand } from './commands/report.js';
import { runCommand } from './commands/run.js';

// yargs' CommonJS build: its ESM build lays help out with a cliui that cuts words in two at the wrap width.
const yargs = createRequire(import.meta.url)('yargs/yargs') as (args: string[]) => Argv;

/** The width of --help: the terminal's (at most 120 columns), else 100 (pipes, files, the generated docs/cli.md). */
export function helpWidth(): number {
  return process.stdout.isTTY && process.stdout.columns ? Math.min(process.stdout.columns, 120) : 100;
}

/** A number flag given a word (`--sparsity half`) parses as NaN: say what was typed, not "NaN is not in [0, 1)". */
function notANumber(argv: Record<string, unknown>, args: string[]): true | string {
  for (const [key, value] of Object.entries(argv)) {
    if (typeof value !== 'number' || !Number.isNaN(value) || /[A-Z]/.test(key)) continue; // each flag once (kebab-case key)
    const at = args.findIndex((a) => a === `--${key}` || a.startsWith(`--${key}=`));
    const typed = at < 0 ? undefined : args[at]!.includes('=') ? args[at]!.slice(args[at]!.indexOf('=') + 1) : args[at + 1];
    return `--${key}: '${typed ?? ''}' is not a number`;
  }
  return true;
}

/** The commands, in the order `--help` lists them. */
function commands(ctx: CliContext): CommandModule<object, object>[] {
  const all = [
    inspectCommand(ctx),
    generateCommand(ctx),
    pruneCommand(ctx),
    convertCommand(ctx),
    evalCommand(ctx),
    runCommand(ctx),
    reportCommand(ctx),
    demoCommand(ctx),
    finetuneCommand(ctx),
  ];
  return all as unknown as CommandModule<object, object>[];
}

/** The yargs definition: exported so that scripts/cli-reference.ts writes docs/cli.md from it. */
export function buildCli(args: string[], env: Env = processEnv(), width: number | null = helpWidth()): Argv {
  let cli = yargs(args)
    .scriptName('llm-prune')
    .wrap(width)
    .usage('$0 <command> [options]\n\nPrune LLaMA-family models with Wanda, magnitude or SparseGPT in TensorFlow.js, and evaluate them.')
    .version(packageVersion());
  const modules = commands({ args, env });
  const names = modules.map((c) => String(c.command).split(' ')[0]!); // 'run [config]' -> 'run'
  for (const c of modules) cli = cli.command(c);
  return cli
    .demandCommand(1, `give a command: ${names.join(', ')}`)
    .strict()
    .help()
    .alias('h', 'help')
    .check((argv) => notANumber(argv, args), true)
    .epilogue('llm-prune <command> --help shows the options and examples of a command.')
    .fail((msg, err) => {
      if (err instanceof Error && err.name !== 'YError') throw err; // a handler's error: main() prints it
      const command = args.find((a) => names.includes(a));
      process.stderr.write(`error: ${msg ?? String(err)}\n(${command ? `llm-prune ${command} --help` : 'llm-prune --help'} lists the options)\n`);
      process.exit(1);
    });
}
