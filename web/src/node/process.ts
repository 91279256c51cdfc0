/**
 * The `process` global for the browser build (injected by esbuild): what the library reads of it. `versions` has
 * no `node`, so tfjs does not take the page for Node.
 */
const warn = (w: unknown): void => console.warn(String(w));

export const process = {
  pid: 1,
  env: {} as Record<string, string | undefined>,
  platform: 'browser',
  versions: {} as Record<string, string>,
  argv: [] as string[],
  cwd: (): string => '/',
  emitWarning: warn,
  resourceUsage: (): { maxRSS: number } => ({ maxRSS: 0 }),
  memoryUsage: (): { rss: number; heapUsed: number } => ({ rss: 0, heapUsed: 0 }),
  hrtime: { bigint: (): bigint => BigInt(Math.round(performance.now() * 1e6)) },
  on: (): void => undefined,
  once: (): void => undefined,
  off: (): void => undefined,
  removeListener: (): void => undefined,
  kill: (): void => undefined,
  exitCode: 0 as number | undefined,
  stderr: { write: (s: string): boolean => (console.warn(s), true), isTTY: false },
  stdout: { write: (s: string): boolean => (console.log(s), true), isTTY: false },
};
