// The alarm-to-browser latency figure, in headless Chromium (run by alarm_latency.sh, which
// starts the platform). Measured interval, EVENTS times:
//
//   from: the fault_box example's upload carrying the BMS's battery over-temperature warning
//         bit handed to its TCP socket (wall clock, Date.now() in ms, printed by the box)
//   to:   the new alarm's row (`[data-alarm]`, data-active="true") first present in the DOM of
//         an alarms page opened before the fault and never reloaded (Date.now() taken by a
//         MutationObserver in the page)
//
// Same machine, same clock. Everything in between is the real path: the platform receives and
// stores the upload, its alarm task raises the alarm in the store, the live feed (/api/events)
// tells the page, the page fetches the alarms and renders the row. Between events the box
// clears the bit and the page shows the alarm ended, so each fault raises a new alarm.
//
// The page refetches the alarms at most once a second (a throttle on live events): an event
// within a second of the page's previous refetch waits for the rest of that second. So each
// fault and each clear comes BMSLINK_GAP_MS (default 1500) after the page last changed; with a
// gap under 1000 ms the figure shows the throttle instead of the pipeline.
//
// Environment: BMSLINK_URL, BMSLINK_USER, BMSLINK_PASSWORD, BMSLINK_DEVICES (host:port),
// BMSLINK_FAULT_BOX (the example's binary), BMSLINK_EVENTS (default 20), BMSLINK_GAP_MS.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { launch } from '../../cli/tests/browser/lib.mjs';

const url = process.env.BMSLINK_URL.replace(/\/?$/, '/');
const events = Number(process.env.BMSLINK_EVENTS || 20);
const gapMs = Number(process.env.BMSLINK_GAP_MS || 1500);
const terminal = 'FA0001';

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const box = spawn(process.env.BMSLINK_FAULT_BOX, [process.env.BMSLINK_DEVICES, terminal], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: box.stdout })[Symbol.asyncIterator]();
async function next() {
  const { value, done } = await lines.next();
  if (done) {
    throw new Error('fault_box exited');
  }
  return JSON.parse(value);
}
async function command(word) {
  box.stdin.write(`${word}\n`);
  const said = await next();
  if (said.event !== word) {
    throw new Error(`fault_box answered ${JSON.stringify(said)} to ${word}`);
  }
  return said;
}
await next(); // ready

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(30000);
await page.goto(`${url}#/login`);
await page.locator('#login-name').fill(process.env.BMSLINK_USER);
await page.locator('#login-password').fill(process.env.BMSLINK_PASSWORD);
await page.locator('#login-submit').click();
await page.locator('[data-test=whoami]').waitFor();
await page.evaluate(() => { window.location.hash = '#/alarms'; });
await page.locator('[data-test=alarms-table]').waitFor();
// The box's terminal is known once its first upload is stored; let the page settle.
await page.waitForTimeout(1000);
await page.evaluate(() => {
  window.__bmslinkDocument = 'kept';
  window.__bmslinkRows = {};
  const seen = () => {
    const now = Date.now();
    for (const row of document.querySelectorAll('[data-alarm]')) {
      const key = `${row.dataset.alarm}:${row.dataset.active}`;
      window.__bmslinkRows[key] ??= now;
    }
  };
  new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, attributes: true });
  seen();
});

const latencies = [];
const clears = [];
for (let i = 0; i < events; i += 1) {
  await page.waitForTimeout(gapMs);
  const known = new Set(Object.keys(await page.evaluate(() => window.__bmslinkRows)));
  const fault = await command('fault');
  const handle = await page.waitForFunction((before) => {
    const fresh = Object.entries(window.__bmslinkRows).find(([key]) => key.endsWith(':true') && !before.includes(key));
    return fresh ?? null;
  }, [...known], { polling: 50, timeout: 30000 });
  const [key, seenAt] = await handle.jsonValue();
  latencies.push(seenAt - fault.sent_ms);
  const id = key.split(':')[0];
  await page.waitForTimeout(gapMs);
  const clear = await command('clear');
  const ended = await page.waitForFunction((wanted) => window.__bmslinkRows[`${wanted}:false`] ?? null,
    id, { polling: 50, timeout: 30000 });
  clears.push((await ended.jsonValue()) - clear.sent_ms);
  process.stderr.write(`event ${i + 1}: alarm ${id} shown ${latencies.at(-1)} ms after the fault upload left the box; ended ${clears.at(-1)} ms after the clear\n`);
}
const kept = await page.evaluate(() => window.__bmslinkDocument);
box.stdin.write('quit\n');
await browser.close();
if (kept !== 'kept') {
  throw new Error('the alarms page was reloaded during the run');
}
console.log(`${events} faults, ${gapMs} ms after the page's previous change each`);
for (const [name, values] of [['fault upload sent -> alarm row in the DOM', latencies], ['clear upload sent -> row shown ended', clears]]) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${name.padEnd(44)} n=${sorted.length}  p50 ${quantile(sorted, 0.5)} ms  p95 ${quantile(sorted, 0.95)} ms  max ${sorted.at(-1)} ms  min ${sorted[0]} ms`);
}
