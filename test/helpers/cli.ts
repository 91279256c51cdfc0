import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What a CLI run gave: the exit code (null when killed), stdout and stderr. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The CLI as a user runs it, in a child process from the project root: `node --import tsx lib/cli.ts ARGS` (the
 * program), or with `entry: 'bin'` lib/bin.ts (the `llm-prune` command, which supervises the writing commands).
 * `env` is the child's whole environment (default: this process's); `cwd` its working directory (default the root). Never rejects: the exit code is in the result.
 */
export function runCli(args: string[], options: { entry?: 'cli' | 'bin'; env?: NodeJS.ProcessEnv; timeout?: number; cwd?: string } = {}): Promise<CliRun> {
  const root = process.cwd();
  // from another working directory (`cwd`), tsx and the entry are named by absolute path
  const loader = options.cwd === undefined ? 'tsx' : pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      ['--import', loader, join(root, 'lib', `${options.entry ?? 'cli'}.ts`), ...args],
      { cwd: options.cwd ?? root, encoding: 'utf8', timeout: options.timeout ?? 300_000, maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env },
      (error, stdout, stderr) => resolvePromise({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}
