// The web app's load figure, in headless Chromium (run by web_load.sh, which starts the
// platform on a seeded database). Measured, RUNS times each, on the page's own clock
// (performance.now(), whose zero is the navigation's start):
//
//   fleet        navigation start -> every terminal's row in the fleet table with its values
//   pack         navigation start -> the pack's live values shown and its charts drawn for the
//                default range (the last hour)
//   pack month   click on "Month" -> the charts drawn from the hour roll-ups (30 days)
//   pack day     click on "Day"   -> the charts drawn from the minute roll-ups (24 hours)
//
// Each navigation is a full document load (from about:blank; the app's files revalidate by
// ETag). "Drawn" is the first DOM mutation at which the condition holds, seen by a
// MutationObserver in the page. For comparison, the same API calls timed from node (the server
// and the network only): GET /api/fleet and the two history reads.
//
// Environment: BMSLINK_URL, BMSLINK_USER, BMSLINK_PASSWORD, BMSLINK_PACK (a terminal),
// BMSLINK_TERMINALS (rows the fleet must show), BMSLINK_RUNS (default 30).

// lib.mjs sits beside the browser tests' node_modules, where playwright-core is installed.
import { launch } from '../../cli/tests/browser/lib.mjs';

const url = process.env.BMSLINK_URL.replace(/\/?$/, '/');
const user = process.env.BMSLINK_USER;
const password = process.env.BMSLINK_PASSWORD;
const pack = process.env.BMSLINK_PACK;
const terminals = Number(process.env.BMSLINK_TERMINALS);
const runs = Number(process.env.BMSLINK_RUNS || 30);
const HOUR = 3600e3;

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function summary(name, samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const fmt = (v) => v.toFixed(1).padStart(8);
  return `${name.padEnd(48)} n=${String(sorted.length).padStart(3)}  p50 ${fmt(quantile(sorted, 0.5))} ms  `
    + `p95 ${fmt(quantile(sorted, 0.95))} ms  max ${fmt(sorted[sorted.length - 1])} ms`;
}

/// Resolves with performance.now() at the first moment `condition` (a page-side function
/// source) holds, checked at every DOM mutation; installed before the action that causes it.
function watchScript(condition) {
  return `(() => {
    const holds = ${condition};
    window.__bmslinkDone = new Promise((resolve) => {
      const check = () => { try { if (holds()) { observer.disconnect(); resolve(performance.now()); } } catch {} };
      const observer = new MutationObserver(check);
      observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
      check();
    });
  })()`;
}

const FLEET_DRAWN = `() => {
  const rows = document.querySelectorAll('[data-test=fleet-table] [data-terminal]');
  return rows.length >= ${terminals}
    && (rows[rows.length - 1].querySelector('[data-field=soc]')?.textContent ?? '').trim() !== '';
}`;

/// The history status reads "N <what>" once the charts are drawn (it reads "Loading..." while
/// the request runs; the charts are given their data before it changes).
function historyDrawn(what) {
  return `() => {
    const status = document.querySelector('.history-status')?.textContent ?? '';
    return /^[0-9][0-9,]* ${what}$/.test(status.trim())
      && document.querySelectorAll('[data-test^=chart-] canvas').length >= 5;
  }`;
}

const PACK_DRAWN = `() => {
  const live = document.querySelector('[data-test=pack-live] [data-field=updated][data-at]');
  return live && (${historyDrawn('(uploads|one-minute averages)')})();
}`;

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(60000);
await page.goto(`${url}#/login`);
await page.locator('#login-name').fill(user);
await page.locator('#login-password').fill(password);
await page.locator('#login-submit').click();
await page.locator('[data-test=whoami]').filter({ hasText: user }).waitFor();

const results = { fleet: [], pack: [], month: [], day: [] };
await context.addInitScript({ content: watchScript(FLEET_DRAWN) });
for (let i = 0; i < runs; i += 1) {
  await page.goto('about:blank');
  await page.goto(`${url}#/fleet`);
  results.fleet.push(await page.evaluate(() => window.__bmslinkDone));
}
// A fresh context (same session) per pack run, with the pack's condition.
for (let i = 0; i < runs; i += 1) {
  const fresh = await browser.newContext({ viewport: { width: 1280, height: 900 }, storageState: await context.storageState() });
  const p = await fresh.newPage();
  p.setDefaultTimeout(60000);
  await fresh.addInitScript({ content: watchScript(PACK_DRAWN) });
  await p.goto(`${url}#/pack/${pack}`);
  results.pack.push(await p.evaluate(() => window.__bmslinkDone));
  // Alternate day and month so each click loads a new range.
  const first = i % 2 === 0 ? 'month' : 'day';
  for (const range of [first, first === 'month' ? 'day' : 'month']) {
    const what = range === 'month' ? 'one-hour averages' : 'one-minute averages';
    results[range].push(await p.evaluate(({ script, wanted }) => {
      (0, eval)(script);
      const start = performance.now();
      document.querySelector(`[data-range=${wanted}]`).click();
      return window.__bmslinkDone.then((at) => at - start);
    }, { script: watchScript(historyDrawn(what)), wanted: range }));
  }
  const points = await p.locator('.history-status').textContent();
  if (i === 0) {
    console.log(`pack ${pack}: last range shows "${points}"`);
  }
  await fresh.close();
}

// The same data through the API alone, from node.
const cookies = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
async function timeApi(path) {
  const start = performance.now();
  const response = await fetch(`${url.replace(/\/$/, '')}${path}`, { headers: { cookie: cookies } });
  const body = await response.arrayBuffer();
  if (!response.ok) {
    throw new Error(`${path}: ${response.status}`);
  }
  return { ms: performance.now() - start, bytes: body.byteLength };
}
const api = { fleet: [], month: [], day: [] };
const sizes = {};
for (let i = 0; i < runs; i += 1) {
  const to = Date.now();
  for (const [key, path] of [
    ['fleet', '/api/fleet?limit=10000'],
    ['month', `/api/terminals/${pack}/history?resolution=hour&from=${to - 30 * 24 * HOUR}&to=${to}`],
    ['day', `/api/terminals/${pack}/history?resolution=minute&from=${to - 24 * HOUR}&to=${to}`],
  ]) {
    const { ms, bytes } = await timeApi(path);
    api[key].push(ms);
    sizes[key] = bytes;
  }
}
await browser.close();

console.log(`web load figure: ${terminals} terminals, pack ${pack}, ${runs} runs each`);
console.log(summary('fleet page (navigation -> all rows)', results.fleet));
console.log(summary('pack page (navigation -> live + hour charts)', results.pack));
console.log(summary('pack month range (click -> hour roll-ups drawn)', results.month));
console.log(summary('pack day range (click -> minute roll-ups drawn)', results.day));
console.log(summary(`API GET /api/fleet (${(sizes.fleet / 1024).toFixed(0)} KiB)`, api.fleet));
console.log(summary(`API history month/hour (${(sizes.month / 1024).toFixed(0)} KiB)`, api.month));
console.log(summary(`API history day/minute (${(sizes.day / 1024).toFixed(0)} KiB)`, api.day));
