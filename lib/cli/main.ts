/**
 * The program around the command line: library errors become one `error:` line (the option they name shown as its
 * flag: `model` as `--model`) and exit 1, anything else exit 2.
 */
import { cliFlag, LlmPruneError } from '../errors.js';
import { buildCli } from './index.js';
import { processEnv } from './env.js';
import { progress } from './output.js';
import { SUPERVISOR_ENV, watchSupervisor } from '../watchdog.js';

export async function main(args: string[]): Promise<void> {
  watchSupervisor(processEnv()[SUPERVISOR_ENV]); // started by llm-prune (lib/bin.ts): die with it
  try {
    await buildCli(args).parseAsync();
  } catch (e) {
    progress.done();
    if (e instanceof LlmPruneError) {
      process.stderr.write(`error: ${e.messageAs(cliFlag)}\n`); // the library's option names as this CLI's flags
      process.exit(1);
    }
    process.stderr.write(`internal error: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  }
}
