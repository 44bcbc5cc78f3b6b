// Scenario f: on a phone-sized viewport (390 x 844) the fleet and pack pages fit the width:
// nothing makes the page scroll sideways.
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
  log(`widths: fleet ${JSON.stringify(fleet)} pack ${JSON.stringify(packPage)} alarms ${JSON.stringify(alarms)}`);
  const wide = Object.entries({ fleet, pack: packPage, alarms })
    .filter(([, w]) => w.overflows)
    .map(([name, w]) => `${name} (${Math.max(w.document, w.body)} px > ${w.viewport} px)`);
  check(wide.length === 0, `pages wider than the phone: ${wide.join(', ')}`);
  return { fleet, pack: packPage, alarms };
});
