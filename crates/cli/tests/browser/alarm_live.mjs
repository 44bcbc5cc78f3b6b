// Scenario e: a fault on a simulated BMS raises an alarm that appears on an open alarms page
// without a reload. The fault: an operator lowers the BMS's charge high-temperature
// protection (0xA3) below the pack's temperature, so the BMS trips and sets its battery
// over-temperature warning bit, which the platform turns into a `bms` alarm. A viewer sees the
// row without an acknowledge button, the operator acknowledges it, the threshold is restored,
// and the row turns inactive once the BMS recovers.
import { faultThreshold, SETTING, temperatureAndThreshold, writeThreshold } from './faults.mjs';
import {
  api, check, log, login, markDocument, newPage, route, runScenario, shot, text, until,
} from './lib.mjs';

await runScenario('alarm_live', async (scenario) => {
  const { alarm_terminal: terminal, device_password: password } = scenario.facts;
  check(terminal, 'BMSLINK_FACTS has no alarm_terminal');
  const page = await newPage(scenario);
  const operator = await login(scenario, page, 'operator');
  const { hottest, threshold, battery } = await temperatureAndThreshold(page, terminal);
  const trip = faultThreshold(battery ?? hottest);
  check(trip < threshold, `cannot lower ${SETTING} (${threshold}) below the pack (${battery ?? hottest} degC)`);

  await route(scenario, page, '#/alarms');
  const table = page.locator('[data-test=alarms-table]');
  await table.waitFor();
  const sameDocument = await markDocument(page);
  const before = new Set(await table.locator('[data-alarm]')
    .evaluateAll((els) => els.map((e) => e.dataset.alarm)));
  // The page's own clock stamps the row's arrival (a MutationObserver in the page).
  await page.evaluate(() => {
    window.__bmslinkSeen = {};
    new MutationObserver(() => {
      for (const row of document.querySelectorAll('[data-alarm]')) {
        window.__bmslinkSeen[row.dataset.alarm] ??= Date.now();
      }
    }).observe(document.body, { childList: true, subtree: true, attributes: true });
  });

  let restored = false;
  let alarmId;
  let appearedMs;
  try {
    const written = Date.now();
    await writeThreshold(page, terminal, trip, password);
    log(`${SETTING} of ${terminal}: ${threshold} -> ${trip} (pack ${battery ?? hottest} degC)`);
    alarmId = await until(`a new active alarm row of ${terminal}`, async () => {
      const rows = await table.locator('[data-alarm]').evaluateAll((els) => els.map((e) => ({
        id: e.dataset.alarm,
        active: e.dataset.active,
        terminal: e.querySelector('[data-field=terminal]')?.textContent ?? '',
        kind: e.querySelector('[data-field=kind]')?.textContent ?? '',
        detail: e.querySelector('[data-field=detail]')?.textContent ?? '',
      })));
      const fresh = rows.find((r) => !before.has(r.id) && r.terminal.includes(terminal)
        && r.active === 'true' && /bms|temperature/i.test(`${r.kind} ${r.detail}`));
      return fresh?.id;
    }, 60000, 100);
    const seen = await page.evaluate((id) => window.__bmslinkSeen[id], alarmId);
    appearedMs = (seen ?? Date.now()) - written;
    await sameDocument();
    const row = table.locator(`[data-alarm="${alarmId}"]`);
    const kind = await text(row.locator('[data-field=kind]'));
    const detail = await text(row.locator('[data-field=detail]'));
    log(`alarm ${alarmId} appeared ${appearedMs} ms after the write: ${kind} / ${detail}`);
    await shot(scenario, page, 'alarm-raised');

    // A viewer sees the same row, without an acknowledge button.
    const viewerPage = await newPage(scenario);
    await login(scenario, viewerPage, 'viewer');
    await route(scenario, viewerPage, '#/alarms');
    const viewerRow = viewerPage.locator(`[data-test=alarms-table] [data-alarm="${alarmId}"]`);
    await viewerRow.waitFor();
    check((await viewerRow.locator('[data-test=ack]').count()) === 0, 'a viewer can acknowledge');
    await shot(scenario, viewerPage, 'alarm-viewer');
    await viewerPage.context().close();
    scenario.pages.splice(scenario.pages.indexOf(viewerPage), 1);

    const ack = row.locator('[data-test=ack]');
    check((await ack.count()) === 1, `no acknowledge button in alarm row ${alarmId}`);
    await ack.click();
    await until(`alarm ${alarmId} shown as acknowledged`, async () =>
      (await row.locator('[data-test=ack]').count()) === 0 && (await text(row)).includes(operator));
    const stored = await api(page, 'GET', `/api/alarms?terminal=${terminal}&limit=1000`);
    const record = (stored.json ?? []).find((a) => String(a.id) === alarmId);
    check(record?.acknowledged_by === operator,
      `the store has alarm ${alarmId} acknowledged by ${record?.acknowledged_by}, not ${operator}`);
    await shot(scenario, page, 'alarm-acknowledged');

    // The page offers acknowledging only while the alarm is active: restore after it.
    await writeThreshold(page, terminal, threshold, password);
    restored = true;

    // Restored, the BMS recovers and the platform clears the alarm: the row follows live.
    await until(`alarm ${alarmId} shown as cleared`, async () =>
      (await row.getAttribute('data-active')) === 'false', 60000, 200);
    await sameDocument();
    await shot(scenario, page, 'alarm-cleared');
    return {
      terminal, setting: SETTING, threshold, trip, alarm: Number(alarmId), kind, detail,
      appeared_ms: appearedMs, acknowledged_by: record.acknowledged_by,
    };
  } finally {
    if (!restored) {
      await writeThreshold(page, terminal, threshold, password)
        .catch((error) => log(`could not restore ${SETTING}: ${error.message}`));
    }
  }
});
