import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** What a CLI run gave: the exit code (null when killed), stdout and stderr. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The CLI as a user runs it, in a child process from the project root: `node --import tsx lib/cli.ts ARGS` (the
 * program), or with `entry: 'bin'` lib/bin.ts (the `llm-prune` command, which supervises the writing commands).
 * `env` is the child's whole environment (default: this process's). Never rejects: the exit code is in the result.
 */
export function runCli(args: string[], options: { entry?: 'cli' | 'bin'; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<CliRun> {
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join('lib', `${options.entry ?? 'cli'}.ts`), ...args],
      { cwd: process.cwd(), encoding: 'utf8', timeout: options.timeout ?? 300_000, maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env },
      (error, stdout, stderr) => resolvePromise({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}
