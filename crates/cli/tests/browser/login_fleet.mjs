// Scenario a: a wrong password is refused with a message; the right one opens the fleet, which
// lists every box and rack of the demo with values; the search box filters the rows.
import { check, login, log, newPage, runScenario, shot, text, until } from './lib.mjs';

await runScenario('login_fleet', async (scenario) => {
  const page = await newPage(scenario);
  const [name, password] = scenario.users.admin;
  const terminals = scenario.facts.terminals;
  check(Array.isArray(terminals) && terminals.length >= 2, 'BMSLINK_FACTS lists no terminals');

  await page.goto(`${scenario.url}#/login`);
  await page.locator('#login-name').fill(name);
  await page.locator('#login-password').fill(`${password}-wrong`);
  await page.locator('#login-submit').click();
  const error = page.locator('[data-test=login-error]');
  await error.waitFor({ state: 'visible' });
  const errorText = await until('a login error message', () => text(error));
  check((await page.locator('[data-test=whoami]').count()) === 0
    || !(await text(page.locator('[data-test=whoami]'))).includes(name),
  'a wrong password logged in');
  await shot(scenario, page, 'login-error');
  log(`wrong password refused: "${errorText}"`);

  await login(scenario, page, 'admin');
  if (!page.url().includes('#/fleet')) {
    await page.locator('[data-test=nav-fleet]').click();
  }
  const table = page.locator('[data-test=fleet-table]');
  await table.waitFor();
  const rows = table.locator('[data-terminal]');
  await until(`${terminals.length} fleet rows`, async () => (await rows.count()) >= terminals.length);
  const missing = [];
  for (const terminal of terminals) {
    const row = table.locator(`[data-terminal="${terminal}"]`);
    if ((await row.count()) !== 1) {
      missing.push(terminal);
      continue;
    }
    // Every row shows its latest values once the first upload is in.
    await until(`values in the row of ${terminal}`, async () =>
      (await text(row.locator('[data-field=soc]'))) !== ''
      && /\d/.test(await text(row.locator('[data-field=voltage]'))));
  }
  check(missing.length === 0, `fleet rows missing for ${missing.join(', ')}`);
  const listed = await rows.count();
  const countText = await text(page.locator('[data-test=fleet-count]'));
  await shot(scenario, page, 'fleet');

  // The search box: one terminal's number leaves that row; nonsense leaves none.
  const search = page.locator('[data-test=fleet-search]');
  const visible = table.locator('[data-terminal]:visible');
  const wanted = terminals[terminals.length - 1];
  await search.fill(wanted);
  await until(`only ${wanted} after searching for it`, async () => {
    const shown = await visible.evaluateAll((els) => els.map((e) => e.dataset.terminal));
    return shown.length === 1 && shown[0] === wanted;
  });
  const filteredCount = await text(page.locator('[data-test=fleet-count]'));
  await shot(scenario, page, 'fleet-search');
  await search.fill('no-such-pack-zzz');
  await until('no rows for a search matching nothing', async () => (await visible.count()) === 0);
  await search.fill('');
  await until('every row back after clearing the search', async () =>
    (await visible.count()) === listed);

  return {
    login_error: errorText,
    rows: listed,
    fleet_count: countText,
    filtered_count: filteredCount,
  };
});
