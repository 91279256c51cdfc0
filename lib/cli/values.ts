/** Parsers of flag values shared by several commands. */
import { ConfigError } from '../errors.js';

/** "a,b, c" -> ['a', 'b', 'c']; undefined or '' -> []. */
export function list(value: string | undefined): string[] {
  return value === undefined || value === '' ? [] : value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** "5GB", "500MB", "1e9" -> bytes. */
export function parseSize(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i.exec(value.trim());
  if (!m) throw new ConfigError(`${flag}: '${value}' is not a size like 2GB or 500MB`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  return Math.floor(Number(m[1]) * mult[unit]!);
}

/** --set key=value pairs -> overrides (values parsed as YAML by the schema). */
export function parseOverrides(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new ConfigError(`--set: '${p}' is not key=value (like calibration.nsamples=16)`);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}
