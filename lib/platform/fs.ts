/**
 * The file operations the core uses, under Node's names and signatures, forwarded to the installed platform's file
 * system (lib/platform/index.ts): the Node layer passes node:fs itself; the browser layer its in-memory tree
 * (lib/browser/memory-fs.ts). Core modules import these instead of node:fs.
 */
import { platform } from './index.js';

/** What `statSync` returns (the fields the core reads). */
export interface Stats {
  size: number;
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

/** A directory entry of `readdirSync(dir, { withFileTypes: true })`. */
export interface Dirent {
  name: string;
  isFile(): boolean;
  isDirectory(): boolean;
}

type Data = string | Uint8Array;

/** The subset of Node's fs the core calls (synchronous, as the Node code it replaces was). */
export interface FileSystem {
  existsSync(path: string): boolean;
  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: 'utf8'): string;
  writeFileSync(path: string, data: Data, options?: { flag?: string }): void;
  appendFileSync(path: string, data: Data): void;
  statSync(path: string): Stats;
  readdirSync(path: string): string[];
  readdirSync(path: string, options: { withFileTypes: true }): Dirent[];
  mkdirSync(path: string, options?: { recursive?: boolean }): unknown;
  renameSync(from: string, to: string): void;
  rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void;
  realpathSync(path: string): string;
  copyFileSync(from: string, to: string): void;
  openSync(path: string, flags: string): number;
  closeSync(fd: number): void;
  fsyncSync(fd: number): void;
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  fstatSync(fd: number): Stats;
  statfsSync(path: string): { bavail: number; bsize: number };
}

const fs = (): FileSystem => platform().fs;

export const existsSync = (path: string): boolean => fs().existsSync(path);
export function readFileSync(path: string): Uint8Array;
export function readFileSync(path: string, encoding: 'utf8'): string;
export function readFileSync(path: string, encoding?: 'utf8'): string | Uint8Array {
  return encoding ? fs().readFileSync(path, encoding) : fs().readFileSync(path);
}
export const writeFileSync = (path: string, data: Data, options?: { flag?: string }): void => fs().writeFileSync(path, data, options);
export const appendFileSync = (path: string, data: Data): void => fs().appendFileSync(path, data);
export const statSync = (path: string): Stats => fs().statSync(path);
export function readdirSync(path: string): string[];
export function readdirSync(path: string, options: { withFileTypes: true }): Dirent[];
export function readdirSync(path: string, options?: { withFileTypes: true }): string[] | Dirent[] {
  return options ? fs().readdirSync(path, options) : fs().readdirSync(path);
}
export const mkdirSync = (path: string, options?: { recursive?: boolean }): unknown => fs().mkdirSync(path, options);
export const renameSync = (from: string, to: string): void => fs().renameSync(from, to);
export const rmSync = (path: string, options?: { recursive?: boolean; force?: boolean }): void => fs().rmSync(path, options);
export const realpathSync = (path: string): string => fs().realpathSync(path);
export const copyFileSync = (from: string, to: string): void => fs().copyFileSync(from, to);
export const openSync = (path: string, flags: string): number => fs().openSync(path, flags);
export const closeSync = (fd: number): void => fs().closeSync(fd);
export const fsyncSync = (fd: number): void => fs().fsyncSync(fd);
export const statfsSync = (path: string): { bavail: number; bsize: number } => fs().statfsSync(path);

/** Async forms the core uses (a browser layer's file system may be asynchronous underneath; Node's is not needed). */
export const readFile = async (path: string, encoding: 'utf8'): Promise<string> => fs().readFileSync(path, encoding);
export const mkdir = async (path: string, options?: { recursive?: boolean }): Promise<unknown> => fs().mkdirSync(path, options);

/** UTF-8 text of bytes. */
export function utf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
