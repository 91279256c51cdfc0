/** `node:url` for the browser build: file URLs of the in-memory tree's POSIX paths. */
export function fileURLToPath(u: string | URL): string {
  const s = String(u);
  return s.startsWith('file://') ? decodeURIComponent(s.slice('file://'.length)) : s;
}
export function pathToFileURL(p: string): URL {
  return new URL(`file://${encodeURI(p)}`);
}
export const URL_ = URL;
export default { fileURLToPath, pathToFileURL };
