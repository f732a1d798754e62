// Headless Chromium from the system (Debian's `chromium` package) driven by playwright-core.
// playwright-core ships no browser and never downloads one; we point it at /usr/bin/chromium.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { OUTPUT } from './services.js';

/** The Chromium binary: $CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Flags these machines need; Playwright adds --headless and its own fresh --user-data-dir. */
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

/** The viewport of every page, and so of the README's screenshots. */
export const VIEWPORT = { width: 1280, height: 800 };

/** Where screenshots go: under target/, so out of git. */
export const SCREENSHOTS = join(OUTPUT, 'screenshots');

/** Launches headless Chromium. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium package (scripts/e2e does, as root)`);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

/**
 * Opens a page whose console errors and uncaught exceptions are collected in
 * `page.problems`, so a test can assert that the page ran cleanly. Every
 * Content-Security-Policy violation the page reports (its `securitypolicyviolation`
 * events, across reloads) is collected in `page.cspViolations`, and is a problem too.
 */
export async function openPage(context) {
  const page = await context.newPage();
  page.problems = [];
  page.cspViolations = [];
  await page.exposeFunction('reportCspViolation', (violation) => {
    page.cspViolations.push(violation);
    page.problems.push(`CSP violation: ${violation}`);
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.reportCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  page.on('pageerror', (err) => page.problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console.error: ${msg.text()}`);
  });
  return page;
}
