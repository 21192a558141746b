/**
 * Saves a PNG of a report's first screen (the README's picture):
 *   node --import tsx scripts/report-screenshot.ts runs/quickstart/report.html docs/report-first-screen.png
 * Uses Chromium as the browser test does ($SALGRID_CHROMIUM or /usr/bin/chromium).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [report, out] = process.argv.slice(2);
if (!report || !out) {
  console.error('usage: report-screenshot.ts <report.html> <out.png>');
  process.exit(1);
}
const browser = await chromium.launch({ executablePath: process.env.SALGRID_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'load' });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: out });
} finally {
  await browser.close();
}
