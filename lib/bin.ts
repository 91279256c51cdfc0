#!/usr/bin/env node
/**
 * The `llm-prune` command. Commands that write (prune, convert, eval, finetune, run, demo) run in a child process
 * so that Ctrl-C / SIGTERM stop the work at once (a JavaScript handler would wait for the synchronous tfjs loop): this
 * process forwards the signal, waits for the child to die, removes its partial output, prints one line saying
 * what was interrupted, removed and kept (lib/interrupt.ts), and exits 130 (SIGINT) or 143 (SIGTERM). Other
 * commands (inspect, generate, --help, --version) run in this process. The child dies with this process, however
 * this one ends (SIGKILL included): it watches its parent (lib/watchdog.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUpAfter, INTERRUPT_LOG_ENV } from './interrupt.js';
import { SUPERVISOR_ENV } from './watchdog.js';

const SUPERVISED = ['prune', 'convert', 'eval', 'finetune', 'run', 'demo'];

async function main(args: string[]): Promise<void> {
  const command = args.find((a) => !a.startsWith('-'));
  const self = fileURLToPath(import.meta.url);
  const cli = self.replace(/bin\.(ts|js)$/, 'cli.$1');
  if (command === undefined || !SUPERVISED.includes(command) || args.includes('--help') || args.includes('-h') || process.env[INTERRUPT_LOG_ENV]) {
    const { main: run } = (await import(cli)) as { main: (a: string[]) => Promise<void> };
    await run(args);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'llm-prune-'));
  const logFile = join(dir, 'interrupt.log');
  const child = spawn(process.execPath, [...process.execArgv, cli, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [INTERRUPT_LOG_ENV]: logFile, [SUPERVISOR_ENV]: String(process.pid) },
  });
  let received: NodeJS.Signals | null = null;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      received ??= sig;
      child.kill(sig); // a terminal's Ctrl-C reaches the child too; a `kill PID` reaches only this process
    });
  }
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on('exit', (c, s) => res([c, s])));
  const stoppedBy = signal ?? (received !== null && code !== 0 ? received : null);
  try {
    if (stoppedBy !== null) {
      process.stderr.write(`\n${cleanUpAfter(logFile, command, stoppedBy)}\n`);
      process.exitCode = 128 + (constants.signals[stoppedBy] ?? 1); // 130 for SIGINT, 143 for SIGTERM, 137 for SIGKILL
    } else {
      process.exitCode = code ?? 1;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main(process.argv.slice(2));
