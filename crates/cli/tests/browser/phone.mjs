// Scenario f: on a phone-sized viewport (390 x 844) the fleet, pack, alarms, account,
// registrations and audit pages fit the width: nothing makes the page scroll sideways.
import { check, login, log, horizontalOverflow, newPage, route, runScenario, shot, until } from './lib.mjs';

await runScenario('phone', async (scenario) => {
  const { pack } = scenario.facts;
  check(pack, 'BMSLINK_FACTS has no pack');
  const page = await newPage(scenario, {
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  await login(scenario, page, 'admin');
  await route(scenario, page, '#/fleet');
  const row = page.locator(`[data-terminal="${pack}"]`);
  await row.waitFor();
  await until('the fleet row values', async () => /\d/.test((await row.textContent()) || ''));
  const fleet = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-fleet');

  await route(scenario, page, `#/pack/${pack}`);
  await page.locator('[data-test=pack-live] [data-field=updated][data-at]').waitFor();
  await page.locator('[data-test=chart-voltage] canvas').waitFor();
  const packPage = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-pack');

  await route(scenario, page, '#/alarms');
  await page.locator('[data-test=alarms-table]').waitFor();
  const alarms = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-alarms');

  // The account page through the menu's whoami link.
  await page.locator('#menu-toggle').click();
  await page.locator('[data-test=nav-account]').click();
  await page.locator('[data-test=tokens-table]').waitFor();
  await page.locator('[data-test=token-name]').fill('phone');
  await page.locator('[data-test=token-create]').click();
  await page.locator('[data-test=token-secret]').waitFor();
  await page.locator('[data-test=tokens-table] [data-token]').first().waitFor();
  const account = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-account');
  const created = page.locator('[data-test=tokens-table] [data-token]').filter({ hasText: 'phone' });
  await created.first().locator('[data-test=token-revoke]').click();
  await page.locator('[data-test=dialog-confirm]').click();
  await until('the phone token revoked', async () => (await created.count()) === 0);

  await route(scenario, page, '#/registrations');
  await page.locator('[data-test=registrations-table]').waitFor();
  const registrations = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-registrations');

  await route(scenario, page, '#/audit');
  await page.locator('[data-test=audit-table] tr[data-action]').first().waitFor();
  const audit = await horizontalOverflow(page);
  await shot(scenario, page, 'phone-audit');
  const widths = { fleet, pack: packPage, alarms, account, registrations, audit };
  log(`widths: ${JSON.stringify(widths)}`);
  const wide = Object.entries(widths)
    .filter(([, w]) => w.overflows)
    .map(([name, w]) => `${name} (${Math.max(w.document, w.body)} px > ${w.viewport} px)`);
  check(wide.length === 0, `pages wider than the phone: ${wide.join(', ')}`);
  return widths;
});
