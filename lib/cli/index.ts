/**
 * The llm-prune command line, a thin shell over the library: the global flags, one module per command
 * (./commands/), and what a usage error prints. lib/cli.ts is the program; lib/bin.ts supervises it.
 */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { packageVersion } from '../paths.js';
import { globalOptions, type CliContext, type Globals } from './command.js';
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

/** The commands, in the order `--help` lists them. */
function commands(ctx: CliContext): CommandModule<Globals, object>[] {
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
  return all as unknown as CommandModule<Globals, object>[];
}

/** The yargs definition: exported so a test can check the README's CLI reference against it. */
export function buildCli(args: string[], env: Env = processEnv()): Argv {
  let cli: Argv<Globals> = globalOptions(
    yargs(args)
      .scriptName('llm-prune')
      .wrap(120)
      .usage('$0 <command> [options]\n\nPrune LLaMA-family models with Wanda, magnitude or SparseGPT in TensorFlow.js, and evaluate them.')
      .version(packageVersion()),
  );
  const modules = commands({ args, env });
  const names = modules.map((c) => String(c.command).split(' ')[0]!); // 'run [config]' -> 'run'
  for (const c of modules) cli = cli.command(c);
  return cli
    .demandCommand(1, `give a command: ${names.join(', ')}`)
    .strict()
    .help()
    .fail((msg, err) => {
      if (err) throw err;
      const command = args.find((a) => names.includes(a));
      process.stderr.write(`error: ${msg}\n(${command ? `llm-prune ${command} --help` : 'llm-prune --help'} lists the options)\n`);
      process.exit(1);
    }) as unknown as Argv;
}
