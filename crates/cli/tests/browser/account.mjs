// Scenario g: the account page. An operator changes their own password (a wrong current one is
// refused with the server's message) and logs in with the new one; creates an API token whose
// secret is shown once, works as `Authorization: Bearer` from here (200 on /api/me), and after
// the revoke no longer does (401). A terminal put back to waiting shows in the nav's badge and
// on the registrations page: a viewer sees it without buttons, the operator approves it. The
// admin's audit log lists the password change and the token, and filters by text.
import { api, check, login, log, newPage, route, runScenario, shot, text, until } from './lib.mjs';

/** GET /api/me with a bearer token, from node (no browser cookies). */
async function meWithToken(scenario, secret) {
  const response = await fetch(`${scenario.url}api/me`, { headers: { authorization: `Bearer ${secret}` } });
  const body = await response.text();
  let json = null;
  try {
    json = JSON.parse(body);
  } catch {
    json = null;
  }
  return { status: response.status, json, body };
}

await runScenario('account', async (scenario) => {
  const { registration_terminal: waiting } = scenario.facts;
  check(waiting, 'BMSLINK_FACTS has no registration_terminal');
  const [operatorName, oldPassword] = scenario.users.operator;
  const newPassword = `${oldPassword}-changed`;

  // --- Password -----------------------------------------------------------------------------
  const page = await newPage(scenario);
  await login(scenario, page, 'operator');
  await page.locator('[data-test=nav-account]').click();
  await page.locator('[data-test=tokens-table]').waitFor();
  check(page.url().includes('#/account'), `the whoami link went to ${page.url()}`);

  await page.locator('[data-test=password-current]').fill(`${oldPassword}-wrong`);
  await page.locator('[data-test=password-new]').fill(newPassword);
  await page.locator('[data-test=password-confirm]').fill(newPassword);
  await page.locator('[data-test=password-save]').click();
  const passwordError = page.locator('[data-test=password-error]');
  const wrongText = await until('the server\u2019s message for a wrong current password',
    async () => ((await passwordError.isVisible()) ? text(passwordError) : ''));
  check(/current password is wrong/i.test(wrongText), `wrong current password answered "${wrongText}"`);
  await shot(scenario, page, 'password-wrong');

  await page.locator('[data-test=password-current]').fill(oldPassword);
  await page.locator('[data-test=password-new]').fill(newPassword);
  await page.locator('[data-test=password-confirm]').fill(newPassword);
  await page.locator('[data-test=password-save]').click();
  await until('the password changed (the form cleared, no error)', async () =>
    (await page.locator('[data-test=password-current]').inputValue()) === ''
    && !(await passwordError.isVisible()));
  log(`${operatorName} changed their password`);

  await page.locator('[data-test=logout]').click();
  await page.locator('#login-name').waitFor();
  await page.locator('#login-name').fill(operatorName);
  await page.locator('#login-password').fill(oldPassword);
  await page.locator('#login-submit').click();
  await page.locator('[data-test=login-error]').waitFor({ state: 'visible' });
  scenario.users.operator = [operatorName, newPassword];
  await login(scenario, page, 'operator');
  log('the old password is refused, the new one logs in');

  // --- Token ----------------------------------------------------------------------------------
  await route(scenario, page, '#/account');
  const tokens = page.locator('[data-test=tokens-table]');
  await tokens.waitFor();
  const label = `browser-${Date.now()}`;
  await page.locator('[data-test=token-name]').fill(label);
  await page.locator('[data-test=token-create]').click();
  const secretInput = page.locator('[data-test=token-secret]');
  await secretInput.waitFor();
  const secret = await secretInput.inputValue();
  check(/^bmslink_\S{20,}$/.test(secret), `the secret shown: "${secret}"`);
  const row = tokens.locator('[data-token]').filter({ hasText: label });
  await until(`the token ${label} listed`, async () => (await row.count()) === 1);
  const tokenId = await row.getAttribute('data-token');
  check(!((await tokens.textContent()) || '').includes(secret), 'the token list shows the secret');
  await shot(scenario, page, 'token-created');

  const withToken = await meWithToken(scenario, secret);
  check(withToken.status === 200 && withToken.json?.user?.name === operatorName && withToken.json?.via === 'token',
    `GET /api/me with the token: ${withToken.status} ${withToken.body}`);

  // Shown once: gone after leaving the page, and the API never lists it.
  await route(scenario, page, '#/fleet');
  await page.locator('[data-test=fleet-table]').waitFor();
  await route(scenario, page, '#/account');
  await tokens.locator(`[data-token="${tokenId}"]`).waitFor();
  check((await secretInput.count()) === 0, 'the secret is still shown after leaving the page');
  check(!((await page.locator('#view').textContent()) || '').includes(secret), 'the account page shows the secret again');
  const listed = await api(page, 'GET', '/api/tokens');
  check(listed.status === 200 && !listed.text.includes(secret), `GET /api/tokens: ${listed.status} ${listed.text}`);

  await tokens.locator(`[data-token="${tokenId}"] [data-test=token-revoke]`).click();
  await page.locator('[data-test=dialog-confirm]').click();
  await until('the revoked token gone from the list', async () =>
    (await tokens.locator(`[data-token="${tokenId}"]`).count()) === 0);
  const revoked = await meWithToken(scenario, secret);
  check(revoked.status === 401, `GET /api/me with the revoked token: ${revoked.status} ${revoked.body}`);
  log(`token ${tokenId}: /api/me ${withToken.status} before the revoke, ${revoked.status} after`);

  // --- Registrations --------------------------------------------------------------------------
  const pending = await api(page, 'PUT', `/api/terminals/${waiting}/registration`, { registration: 'pending' });
  check(pending.status === 200, `putting ${waiting} back to pending: ${pending.status} ${pending.text}`);
  const viewer = await newPage(scenario);
  await login(scenario, viewer, 'viewer');
  await viewer.locator('[data-test=nav-registrations]').click();
  const viewerRow = viewer.locator(`[data-test=registrations-table] [data-terminal="${waiting}"]`);
  await viewerRow.waitFor();
  check((await viewer.locator('[data-test=approve], [data-test=reject]').count()) === 0,
    'a viewer has approve/reject buttons');
  await shot(scenario, viewer, 'registrations-viewer');

  await route(scenario, page, '#/registrations');
  const badge = page.locator('[data-test=nav-registrations] .nav-badge');
  await until('the registrations badge counting the waiting terminal', async () =>
    (await badge.isVisible()) && Number(await text(badge)) >= 1);
  const waitingRow = page.locator(`[data-test=registrations-table] [data-terminal="${waiting}"]`);
  await waitingRow.waitFor();
  await shot(scenario, page, 'registrations');
  await waitingRow.locator('[data-test=approve]').click();
  await until(`${waiting} gone from the waiting list`, async () => (await waitingRow.count()) === 0);
  await until('the registrations badge gone', async () => !(await badge.isVisible()), 10000);
  const approved = await api(page, 'GET', `/api/terminals/${waiting}`);
  check(approved.json?.terminal?.registration === 'approved' || approved.json?.registration === 'approved',
    `${waiting} after the approval: ${approved.text.slice(0, 300)}`);
  log(`${waiting}: pending, seen by the viewer, approved by ${operatorName}`);

  // --- Audit log ------------------------------------------------------------------------------
  const admin = await newPage(scenario);
  await login(scenario, admin, 'admin');
  await admin.locator('[data-test=nav-audit]').click();
  const audit = admin.locator('[data-test=audit-table]');
  await audit.waitFor();
  const byOperator = (action) => audit.locator(`tr[data-action="${action}"]`).filter({ hasText: operatorName });
  await until('the password change and the token in the audit log', async () =>
    (await byOperator('change_password').count()) >= 1 && (await byOperator('create_token').count()) >= 1
    && (await byOperator('revoke_token').count()) >= 1);
  check(((await byOperator('create_token').first().textContent()) || '').includes(label),
    `the create_token entry does not name ${label}`);
  const counted = [];
  for (const action of ['change_password', 'create_token', 'revoke_token']) {
    counted.push([action, await byOperator(action).count()]);
  }
  await shot(scenario, admin, 'audit');

  const filter = admin.locator('[data-test=audit-filter]');
  await filter.fill(`${operatorName} token`);
  const rows = audit.locator('tr[data-action]');
  const filtered = await until('the filtered audit rows', async () => {
    const actions = await rows.evaluateAll((els) => els.map((e) => [e.dataset.action, e.textContent]));
    return actions.length > 0 && actions.every(([, t]) => t.includes(operatorName) && /token/i.test(t)) ? actions : null;
  });
  check(filtered.some(([a]) => a === 'create_token') && filtered.every(([a]) => a !== 'change_password'),
    `filtered rows: ${filtered.map(([a]) => a).join(', ')}`);
  await shot(scenario, admin, 'audit-filtered');

  log(`audit: ${JSON.stringify(counted)}; filtered to ${filtered.length} rows`);
  return {
    operator: operatorName,
    new_password: newPassword,
    token: tokenId,
    token_status: withToken.status,
    revoked_status: revoked.status,
    registration_terminal: waiting,
    audit_filtered: filtered.length,
  };
});
