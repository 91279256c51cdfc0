/** `node:os` for the browser build: the core count from the browser; memory as the browser reports it (Chrome: deviceMemory). */
const cores = (): number => (typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1);
const memory = (): number => ((typeof navigator !== 'undefined' ? (navigator as { deviceMemory?: number }).deviceMemory : undefined) ?? 4) * 2 ** 30;

export function cpus(): unknown[] {
  return Array.from({ length: cores() }, () => ({ model: 'browser', speed: 0 }));
}
export const availableParallelism = cores;
export const totalmem = memory;
export const freemem = memory;
export const platform = (): string => 'browser';
export const tmpdir = (): string => '/tmp';
export const homedir = (): string => '/';
export const EOL = '\n';
export const hostname = (): string => 'browser';

export default { cpus, availableParallelism, totalmem, freemem, platform, tmpdir, homedir, EOL, hostname };
