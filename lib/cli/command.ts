/**
 * What the commands share: the flags several of them take (--backend and --threads for those that run a model,
 * --hf-token for those that may fetch one), the context a command is built with (the raw arguments, the
 * environment), the shape of a command module, and the layout of a command's --help: its own options first, then
 * the shared ones (only those it takes) with --help and --version, then examples.
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

const BACKEND_HELP = 'tfjs backend (auto: tensorflow if installed, else webgpu on a GPU, else wasm)';
const THREADS_HELP = 'wasm compute threads (default: every logical core; at most 8)';

/** --backend and --threads, for the commands that run a model themselves. */
export function backendOptions<T>(y: Argv<T>) {
  return y
    .option('backend', { choices: BACKEND_NAMES as unknown as string[], default: 'auto', describe: BACKEND_HELP })
    .option('threads', { type: 'number', describe: THREADS_HELP });
}

/** --backend and --threads for `run` and `demo`: given, they override the experiment file's `backend:` / `threads:`. */
export function experimentBackendOptions<T>(y: Argv<T>) {
  return y
    .option('backend', { choices: BACKEND_NAMES as unknown as string[], describe: `${BACKEND_HELP} (default: the file's backend:)` })
    .option('threads', { type: 'number', describe: `${THREADS_HELP} (default: the file's threads:)` });
}

/** --hf-token, for the commands that may fetch a model or data from the Hugging Face hub. */
export function hubOptions<T>(y: Argv<T>) {
  return y.option('hf-token', { type: 'string', describe: 'Hugging Face token for gated hub models such as Llama (default $HF_TOKEN); never printed' });
}

/** The flags listed under "Global options:" in a command's help, when the command takes them. */
const SHARED_FLAGS = ['backend', 'threads', 'hf-token', 'help', 'version'];

/** What a command is built with: the arguments as typed (to tell a given flag from a default) and the environment. */
export interface CliContext {
  args: string[];
  env: Env;
}

/** A command: its yargs definition (flags inferred from the builder), handler, and one or two examples for --help. */
export interface Command<U> {
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<U>;
  handler: (argv: ArgumentsCamelCase<U>) => Promise<void>;
  examples: [command: string, what: string][];
}

/** The keys a yargs instance defines (yargs' getOptions(), which its types leave out). */
function definedKeys(y: Argv<unknown>): Set<string> {
  const options = (y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions();
  return new Set(Object.keys(options.key));
}

/** The examples of a command's help: each a comment line and the command (not wrapped in two columns like yargs' own). */
function examplesText(examples: [string, string][]): string {
  return ['Examples:', ...examples.map(([command, what]) => `  # ${what}\n  ${command}`)].join('\n');
}

/** Types a command module for registration next to the others, with the help layout of every command. */
export function defineCommand<U>(c: Command<U>): CommandModule<object, U> {
  return {
    command: c.command,
    describe: c.describe,
    handler: c.handler,
    builder: (y) => {
      const built = c.builder(y);
      const keys = definedKeys(built);
      // 'Options:' first (an empty group now; yargs fills it with every ungrouped flag), then the shared ones
      let out = built.group([], 'Options:').group(
        SHARED_FLAGS.filter((k) => keys.has(k)),
        'Global options:',
      );
      return out.epilogue(examplesText(c.examples));
    },
  };
}

/** Starts the tfjs backend of --backend / --threads and says which one runs (stderr). */
export async function useBackend(argv: { backend: string; threads?: number | undefined }): Promise<void> {
  const info = await initBackend(argv.backend as BackendName, argv.threads !== undefined ? { threads: argv.threads } : {});
  progress.note(info.note);
}
