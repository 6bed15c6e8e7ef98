#!/usr/bin/env node
// Screenshots a `muxftp bench --html` report in headless Chromium (the system package), offline:
//   node bench/screenshotReport.mjs report.html bench/report.png
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [html, png, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (html === undefined || png === undefined) {
  console.error('usage: node bench/screenshotReport.mjs REPORT.html OUT.png [CHROMIUM]');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const context = await browser.newContext({ offline: true, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => {
    console.error(`page error: ${error.message}`);
    process.exitCode = 1;
  });
  await page.goto(pathToFileURL(html).href);
  // The report's script sets window.muxftpCharts once its charts are drawn (client/bench/htmlReport.ts).
  await page.waitForFunction(
    () =>
      /** @type {{ muxftpCharts?: object }} */ (/** @type {unknown} */ (window)).muxftpCharts !== undefined,
  );
  await page.screenshot({ path: png, fullPage: true });
} finally {
  await browser.close();
}
