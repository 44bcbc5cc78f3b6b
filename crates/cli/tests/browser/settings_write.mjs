// Scenario c: an operator changes a protection threshold on the settings page: the page asks
// for confirmation, writes, and shows what the device read back. (The Rust side then reads
// the device's settings again through the API, independently of the page.)
import { api, check, login, log, newPage, route, runScenario, shot, text, until } from './lib.mjs';

await runScenario('settings_write', async (scenario) => {
  const { settings_terminal: terminal, setting, target, device_password: password } = scenario.facts;
  check(terminal && setting && target, 'BMSLINK_FACTS has no settings_terminal/setting/target');
  const page = await newPage(scenario);
  await login(scenario, page, 'operator');
  await route(scenario, page, `#/pack/${terminal}`);
  await page.locator('[data-test=nav-settings]').click();
  await until(`the settings route of ${terminal}`, () => page.url().includes(`#/settings/${terminal}`));
  const form = page.locator('[data-test=settings-form]');
  await form.waitFor();
  const input = form.locator(`[data-setting="${setting}"]`);
  // The page shows the latest upload's values, then reads the device (status "ready").
  const status = page.locator('[data-test=settings-status]');
  await until('the device read (settings-status ready)', async () =>
    (await status.getAttribute('data-state')) === 'ready', 40000, 200);
  const old = await input.inputValue();
  check(old !== '', `no value for ${setting} after the device read`);
  check(!(await input.isDisabled()), `${setting} is disabled for an operator`);
  check(Number(old) !== Number(target), `${setting} is ${target} already; nothing would change`);
  await shot(scenario, page, 'settings-read');

  await input.fill(String(target));
  await page.locator('[data-test=settings-save]').click();
  const dialog = page.locator('[data-test=confirm-dialog]');
  await dialog.waitFor({ state: 'visible' });
  const change = await text(dialog.locator(`[data-change="${setting}"]`));
  check(change.includes(String(target)) && change.includes(String(Number(old))),
    `the confirmation does not show ${old} -> ${target}: "${change}"`);
  await shot(scenario, page, 'settings-confirm');

  // Cancelling first must write nothing.
  await page.locator('[data-test=cancel-write]').click();
  await dialog.waitFor({ state: 'hidden' });
  check((await page.locator(`[data-result="${setting}"]`).count()) === 0, 'cancel wrote the setting');
  await page.locator('[data-test=settings-save]').click();
  await dialog.waitFor({ state: 'visible' });
  if (password) {
    await dialog.locator('[data-test=write-password]').fill(password);
  }
  await page.locator('[data-test=confirm-write]').click();

  const result = page.locator(`[data-result="${setting}"]`);
  await result.waitFor({ timeout: 40000 });
  const ok = await until('the write result', () => result.getAttribute('data-ok'), 40000);
  const resultText = await text(result);
  check(ok === 'true', `the write of ${setting} failed on the page: "${resultText}" (data-ok=${ok})`);
  check(resultText.includes(String(Number(target))) || resultText.includes(String(target)),
    `the read-back shown does not contain ${target}: "${resultText}"`);
  const statusText = await text(status);
  check((await status.getAttribute('data-state')) === 'done', `settings status after the write: "${statusText}"`);
  await shot(scenario, page, 'settings-written');
  const inputAfter = await input.inputValue();
  check(Number(inputAfter) === Number(target), `the input shows ${inputAfter} after writing ${target}`);
  log(`${setting}: ${old} -> ${target}; result "${resultText}", status "${statusText}", input now ${inputAfter}`);

  // The audit log records who wrote what (admin-only API; the operator is refused).
  const audit = await api(page, 'GET', '/api/audit');
  check(audit.status === 403, `an operator read the audit log (${audit.status})`);

  return { terminal, setting, old, written: target, result: resultText, status: statusText, input_after: inputAfter };
});
