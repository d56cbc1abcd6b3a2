// End-to-end test of the dashboard in headless Chromium (Debian's), driven
// by playwright-core: the list, an incident page with its plots, and an
// approval with a token. Screenshots go to $SHOTS for a person to look at.
//
// Usage: node tests/e2e/dashboard.mjs BASE_URL TOKEN SHOTS_DIR
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

// playwright-core lives in the cache directory scripts/e2e.sh installs it
// to, not beside this file.
const { chromium } = createRequire(`${process.env.REMEDY_NODE_DIR}/`)('playwright-core');

const [base, token, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const failed = [];
  page.on('pageerror', (e) => failed.push(String(e)));
  page.on('requestfailed', (r) => failed.push(`request failed: ${r.url()}`));
  // Anything not from the server itself would be an external asset.
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) failed.push(`external request: ${r.url()}`);
  });

  // The list: one row per incident, the leak among them.
  await page.goto(`${base}/`);
  const rows = page.locator('#incidents tr');
  assert.ok((await rows.count()) >= 1, 'the list shows incidents');
  const leak = page.locator('#incidents tr', { hasText: 'memory_leak' }).first();
  await leak.waitFor();
  await page.screenshot({ path: `${shots}/incident-list.png`, fullPage: true });

  // The live view refreshes from the API without breaking the rows.
  await page.waitForFunction(() => /Updated/.test(document.getElementById('updated').textContent), null, { timeout: 15000 });
  assert.ok((await rows.count()) >= 1, 'rows survive a refresh');

  // The incident page: plots rendered with data, the anomaly marked.
  await page.locator('#incidents tr', { hasText: 'memory_leak' }).first().locator('a').click();
  await page.waitForURL(/\/ui\/incidents\//);
  const plots = page.locator('svg.signal-plot');
  assert.ok((await plots.count()) >= 1, 'at least one signal plot');
  const drawn = await page.evaluate(() => {
    const svg = document.querySelector('svg.signal-plot');
    const line = svg.querySelector('polyline.observed');
    const band = svg.querySelector('polygon.band');
    const box = svg.getBoundingClientRect();
    return {
      points: line ? line.points.numberOfItems : 0,
      band: band ? band.points.numberOfItems : 0,
      anomalies: svg.querySelectorAll('circle.anomaly').length,
      width: box.width,
      height: box.height,
    };
  });
  assert.ok(drawn.points > 100, `the observed line has data (${drawn.points} points)`);
  assert.ok(drawn.band > 200, 'the band is drawn');
  assert.ok(drawn.anomalies >= 1, 'the anomaly is marked');
  assert.ok(drawn.width > 300 && drawn.height > 60, `the plot is visible (${drawn.width}x${drawn.height})`);
  await page.screenshot({ path: `${shots}/incident-page.png`, fullPage: true });

  // Approve without a token: refused, nothing changes.
  const approve = page.locator('button[data-decide="approve"]').first();
  await approve.click();
  await page.locator('#decision-result', { hasText: 'token' }).waitFor();

  // With a wrong token: the API's 401 is shown.
  await page.fill('#token', 'not-the-token');
  await approve.click();
  await page.locator('#decision-result', { hasText: 'Unauthorized' }).waitFor();

  // With the token: the status changes to approved.
  await page.fill('#token', token);
  await approve.click();
  await page.locator('#decision-result', { hasText: 'approved' }).waitFor();
  const status = await page.locator('td.action-status').first().textContent();
  assert.equal(status.trim(), 'approved');
  await page.screenshot({ path: `${shots}/incident-approved.png`, fullPage: true });

  // Narrow screens: the page still lays out without a horizontal scroll of
  // the whole page (tables scroll inside their box).
  await page.setViewportSize({ width: 380, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no page-wide horizontal scroll on a phone (${overflow}px)`);
  await page.screenshot({ path: `${shots}/incident-narrow.png`, fullPage: true });

  assert.deepEqual(failed, [], 'no script errors, failed or external requests');
  console.log('dashboard e2e: ok');
} finally {
  await browser.close();
}
