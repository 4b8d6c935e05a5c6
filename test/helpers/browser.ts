/**
 * Headless Chromium for the web page tests: Debian's `chromium` driven by playwright-core
 * (which downloads no browser of its own). The flags keep Chromium off the network it would
 * otherwise call at every start (this machine refuses those connections, many at a time), and a
 * fresh user-data-dir per launch keeps runs independent.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Where Debian installs the browser; `CHROMIUM_BIN` overrides it. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';
/** The command that installs it (also printed by `scripts/setup.mjs`). */
export const CHROMIUM_INSTALL_COMMAND = 'apt-get update && apt-get install -y chromium';
/** Flags for a headless, offline, root-run Chromium. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The Chromium binary, or undefined when it is not installed. */
export function findChromium(): string | undefined {
  const path = process.env.CHROMIUM_BIN ?? DEFAULT_CHROMIUM_PATH;
  return existsSync(path) ? path : undefined;
}

/**
 * Why the browser tests cannot run here, or undefined when they can. Under CI a missing browser
 * is a failure (setup installs it there), so this answers undefined and the launch fails loudly.
 */
export function browserSkipReason(): string | undefined {
  if (findChromium() !== undefined || process.env.CI === 'true') return undefined;
  return `Chromium is not installed: run \`sudo sh -c '${CHROMIUM_INSTALL_COMMAND}'\` or set CHROMIUM_BIN`;
}

/** One browser with one page; `close()` ends the browser and removes its profile. */
export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page exceptions, for assertion messages. */
  errors: string[];
  close(): Promise<void>;
}

/** Launches Chromium with an empty profile and opens one page. */
export async function launchBrowser(opts: { colorScheme?: 'light' | 'dark' } = {}): Promise<TestBrowser> {
  const executablePath = findChromium();
  if (executablePath === undefined) {
    throw new Error(`${DEFAULT_CHROMIUM_PATH} is missing; install it with: ${CHROMIUM_INSTALL_COMMAND}`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'sy-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 1440, height: 900 },
      colorScheme: opts.colorScheme ?? 'light',
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  return {
    context,
    page,
    errors,
    async close(): Promise<void> {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
