#!/usr/bin/env node
/**
 * llm-prune, the program: a thin shell over the library (the commands are in lib/cli/, one file each). Parses flags
 * (yargs), calls the library, prints JSON results on stdout and progress on stderr. lib/cli/ is the only place that
 * calls process.exit and reads process.env. lib/bin.ts, the `llm-prune` command, runs this file in a child process
 * for the commands that write.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hideBin } from 'yargs/helpers';
import { main } from './cli/main.js';

export { main }; // lib/bin.ts imports the program and runs it

/** Whether this file is the program (not imported). */
function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) void main(hideBin(process.argv));
