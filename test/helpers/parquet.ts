/**
 * Parquet files of JSON-like rows for tests (hyparquet-writer), with the column layout the Hugging Face hub's
 * converted datasets use: strings as UTF8 byte arrays, integers as INT64, booleans, lists of strings as LIST, and
 * objects of such lists (ARC's `choices: {text: [...], label: [...]}`) as a struct of LISTs. Every column is
 * OPTIONAL, as pyarrow writes them.
 *
 *   writeFileSync('x.parquet', parquetOf(rows));
 */
import { parquetWriteBuffer } from 'hyparquet-writer';

type Element = { name: string; type?: string; converted_type?: string; repetition_type?: string; num_children?: number };

/** Schema elements (depth-first) of one value's column. */
function elementsOf(name: string, value: unknown): Element[] {
  if (typeof value === 'string') return [{ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' }];
  if (typeof value === 'boolean') return [{ name, type: 'BOOLEAN', repetition_type: 'OPTIONAL' }];
  if (typeof value === 'number' && Number.isInteger(value)) return [{ name, type: 'INT64', repetition_type: 'OPTIONAL' }];
  if (typeof value === 'number') return [{ name, type: 'DOUBLE', repetition_type: 'OPTIONAL' }];
  if (Array.isArray(value)) {
    return [{ name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 }, { name: 'list', repetition_type: 'REPEATED', num_children: 1 }, ...elementsOf('element', value[0] ?? '')];
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return [{ name, repetition_type: 'OPTIONAL', num_children: entries.length }, ...entries.flatMap(([k, v]) => elementsOf(k, v))];
  }
  throw new Error(`parquetOf: column '${name}': cannot store ${JSON.stringify(value)}`);
}

/** Integers as bigint (INT64 columns), recursively. */
function toStored(value: unknown): unknown {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(toStored);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toStored(v)]));
  return value;
}

/** The bytes of a parquet file holding `rows` (all rows have the first row's keys and value kinds). */
export function parquetOf(rows: readonly Record<string, unknown>[]): Buffer {
  if (rows.length === 0) throw new Error('parquetOf: no rows');
  const names = Object.keys(rows[0]!);
  const schema = [{ name: 'root', num_children: names.length }, ...names.flatMap((n) => elementsOf(n, rows[0]![n]))];
  const columnData = names.map((name) => ({ name, data: rows.map((r) => toStored(r[name])) }));
  return Buffer.from(parquetWriteBuffer({ columnData, schema } as unknown as Parameters<typeof parquetWriteBuffer>[0]));
}
