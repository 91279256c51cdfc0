/**
 * What every command shares: the global flags (--backend, --threads, --hf-token), the context a command is built
 * with (the raw arguments, the environment), and the shape of a command module.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { BACKEND_NAMES, initBackend, type BackendName } from '../model/backend.js';
import type { Env } from './env.js';
import { progress } from './output.js';

/** --force-unlock, for every command that writes an output (lib/output-lock.ts). */
export const FORCE_UNLOCK = {
  type: 'boolean',
  default: false,
  describe: 'take over the output\'s lock even though the process named in it looks alive (it is gone, e.g. on another host)',
} as const;

/** The flags of every command. */
export function globalOptions(y: Argv) {
  return y
    .option('backend', { choices: BACKEND_NAMES as unknown as string[], default: 'auto', describe: 'tfjs backend (auto: tensorflow if installed, else webgpu on a GPU, else wasm)' })
    .option('threads', { type: 'number', describe: 'wasm compute threads (default: every logical core; at most 8)' })
    .option('hf-token', { type: 'string', describe: 'Hugging Face token for gated hub models such as Llama (default $HF_TOKEN); never printed' });
}

export type Globals = ReturnType<typeof globalOptions> extends Argv<infer G> ? G : never;

/** What a command is built with: the arguments as typed (to tell a given flag from a default) and the environment. */
export interface CliContext {
  args: string[];
  env: Env;
}

/** A yargs command module whose handler sees the global flags and the command's own. */
export interface Command<U> {
  command: string;
  describe: string;
  builder: (y: Argv<Globals>) => Argv<U>;
  handler: (argv: ArgumentsCamelCase<U>) => Promise<void>;
}

/** Types a command module (its flags are inferred from the builder) for registration next to the others. */
export function defineCommand<U>(c: Command<U>): CommandModule<Globals, U> {
  return c;
}

/** Starts the tfjs backend of --backend / --threads and says which one runs (stderr). */
export async function useBackend(argv: { backend: string; threads?: number | undefined }): Promise<void> {
  const info = await initBackend(argv.backend as BackendName, argv.threads !== undefined ? { threads: argv.threads } : {});
  progress.note(info.note);
}
