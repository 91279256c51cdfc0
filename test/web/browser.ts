/**
 * The browser test harness: web/dist served on 127.0.0.1 (web/serve.ts, with ../shared at /shared/) and Debian's
 * Chromium (`apt-get install chromium`, never a downloaded browser) driven headless by puppeteer-core; WebGPU is
 * offered on Chromium's software adapter (SwiftShader) with --enable-unsafe-webgpu.
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { serve } from '../../web/serve.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const DIST = join(process.cwd(), 'web', 'dist');

export interface Harness {
  base: string; // http://127.0.0.1:PORT/
  browser: Browser;
  close(): Promise<void>;
}

/** Throws when Debian's Chromium is absent (a browser test must fail, not pass, without a browser). */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: the browser tests need Debian's chromium (apt-get install chromium) or CHROMIUM_PATH`);
}

/** `dist` (default web/dist) served with `shared` at /shared/, and Chromium started. */
export async function startHarness(shared: string, dist = DIST): Promise<Harness> {
  const server: Server = await serve({ port: 0, dist, shared });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    protocolTimeout: 600000,
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'],
  });
  return {
    base: `http://127.0.0.1:${port}/`,
    browser,
    async close() {
      await browser.close();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/**
 * Open a page URL (or, with `query` null, use the `open` page, already started) and wait until `<pre id="result">`
 * holds the run's JSON; returns it parsed.
 */
export async function runPage(
  h: Harness,
  query: string | null,
  timeoutMs: number,
  onLog?: (line: string) => void,
  open?: Page,
): Promise<{ page: Page; result: Record<string, unknown> }> {
  const page = open ?? (await h.browser.newPage());
  if (onLog) page.on('console', (m) => onLog(`console: ${m.text()}`));
  if (onLog) page.on('pageerror', (e) => onLog(`pageerror: ${String(e)}`));
  if (query !== null) await page.goto(`${h.base}index.html${query}`);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    // page code as text: this file is type-checked without the DOM library
    const [text, status] = (await page.evaluate(`[
      document.getElementById('result').textContent,
      document.getElementById('stage').textContent + ' ' + document.getElementById('eta').textContent,
    ]`)) as [string, string];
    if (status !== last) onLog?.((last = status));
    if (text) return { page, result: JSON.parse(text) as Record<string, unknown> };
    if (Date.now() > deadline) throw new Error(`no result within ${timeoutMs / 1000} s (last status: ${status})`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The bytes behind the page's download link (the pruned checkpoint's zip). */
export async function downloadBytes(page: Page, selector = '#download'): Promise<Buffer> {
  const b64 = (await page.evaluate(`(async () => {
    const buf = new Uint8Array(await (await fetch(document.querySelector(${JSON.stringify(selector)}).href)).arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
    return btoa(s);
  })()`)) as string;
  return Buffer.from(b64, 'base64');
}
