// Scenario d: a viewer sees settings and alarms without any control that writes, and a write
// forced through the API with the viewer's own session is refused with 403.
import { api, check, login, log, newPage, route, runScenario, shot, text, until } from './lib.mjs';

await runScenario('viewer', async (scenario) => {
  const { settings_terminal: terminal, setting } = scenario.facts;
  check(terminal && setting, 'BMSLINK_FACTS has no settings_terminal/setting');
  const page = await newPage(scenario);
  await login(scenario, page, 'viewer');
  check((await page.locator('[data-test=nav-users]').count()) === 0
    || !(await page.locator('[data-test=nav-users]').isVisible()), 'a viewer sees the users page link');

  await route(scenario, page, `#/settings/${terminal}`);
  const form = page.locator('[data-test=settings-form]');
  await form.waitFor();
  const inputs = form.locator('[data-setting]');
  await until('the settings inputs', async () => (await inputs.count()) > 0);
  // After the device read (the form is disabled while it runs, then re-enabled for writers).
  await until('the device read (settings-status ready)', async () =>
    (await page.locator('[data-test=settings-status]').getAttribute('data-state')) === 'ready', 40000, 200);
  check((await form.locator(`[data-setting="${setting}"]`).inputValue()) !== '', `no ${setting} shown`);
  const enabled = await inputs.evaluateAll((els) =>
    els.filter((e) => !e.disabled).map((e) => e.dataset.setting));
  check(enabled.length === 0, `inputs a viewer can edit: ${enabled.join(', ')}`);
  for (const control of ['settings-save', 'apply-preset', 'confirm-write']) {
    check((await page.locator(`[data-test=${control}]`).count()) === 0, `a viewer has [data-test=${control}]`);
  }
  const inputCount = await inputs.count();
  await shot(scenario, page, 'viewer-settings');

  await route(scenario, page, '#/alarms');
  const table = page.locator('[data-test=alarms-table]');
  await table.waitFor();
  // The list is loaded once it shows rows or says it has none.
  await table.locator('[data-alarm], .empty-row').first().waitFor();
  const alarms = await table.locator('[data-alarm]').count();
  check((await page.locator('[data-test=ack]').count()) === 0, 'a viewer has acknowledge buttons');
  await shot(scenario, page, 'viewer-alarms');

  // Forced: the same writes as an operator's, with the viewer's session cookie.
  const write = await api(page, 'PATCH', `/api/terminals/${terminal}/settings`,
    { values: { [setting]: '3.50' } });
  check(write.status === 403, `a viewer's settings PATCH answered ${write.status}: ${write.text}`);
  const listed = await api(page, 'GET', '/api/alarms?limit=1');
  let ack = null;
  if (listed.status === 200 && Array.isArray(listed.json) && listed.json.length > 0) {
    ack = (await api(page, 'POST', `/api/alarms/${listed.json[0].id}/acknowledge`)).status;
    check(ack === 403, `a viewer's acknowledge answered ${ack}`);
  }
  log(`viewer: ${inputCount} disabled inputs, ${alarms} alarm rows, PATCH ${write.status}, ack ${ack}`);
  return { inputs: inputCount, alarm_rows: alarms, patch_status: write.status, ack_status: ack };
});
