// Shared parts of the browser scenarios (run by crates/cli/tests/browser.rs, one node process
// per scenario): the system's headless Chromium through playwright-core, logging in, waiting,
// screenshots, and the one result line the Rust side checks.
//
// Environment (set by the Rust side):
//   BMSLINK_URL        the web app, `http://127.0.0.1:PORT/`
//   BMSLINK_ARTIFACTS  where this scenario's screenshots go (created)
//   BMSLINK_CHROMIUM   the browser (default /usr/bin/chromium)
//   BMSLINK_USERS      JSON {"admin": [name, password], "operator": [...], "viewer": [...]}
//   BMSLINK_FACTS      JSON with what the scenario needs to know about the demo (terminals...)
//
// Output: progress lines on stderr, and exactly one line on stdout,
//   BMSLINK_RESULT {"scenario": "...", "ok": true|false, ...facts or "error"}
// with exit status 0 when ok, 1 otherwise.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

/// Chromium's flags: headless on a machine whose closed network refuses the browser's own
/// background connections (updates, sync, field trials), which otherwise stall start-up.
export const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export const RESULT_PREFIX = 'BMSLINK_RESULT ';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (the scenarios are run by crates/cli/tests/browser.rs)`);
  }
  return value;
}

export function log(...parts) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${parts.join(' ')}\n`);
}

/// Starts the system's Chromium.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.BMSLINK_CHROMIUM || '/usr/bin/chromium',
    args: LAUNCH_ARGS,
    headless: true,
  });
}

/// Fails the scenario with `message` unless `condition` holds.
export function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/// Polls `probe` (sync or async) until it returns a truthy value, which is returned; fails
/// with `what` and the last value after `timeoutMs`.
export async function until(what, probe, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) {
        return last;
      }
    } catch (error) {
      last = `error: ${error.message}`;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/// Runs one scenario: `body(scenario)` returns the facts reported with `ok: true`; a throw
/// reports `ok: false` with the error, after a screenshot of every open page.
export async function runScenario(name, body) {
  const scenario = {
    name,
    url: required('BMSLINK_URL').replace(/\/?$/, '/'),
    artifacts: required('BMSLINK_ARTIFACTS'),
    users: JSON.parse(required('BMSLINK_USERS')),
    facts: JSON.parse(process.env.BMSLINK_FACTS || '{}'),
    pageErrors: [],
    pages: [],
    shots: [],
    browser: null,
  };
  fs.mkdirSync(scenario.artifacts, { recursive: true });
  const started = Date.now();
  let result;
  try {
    scenario.browser = await launch();
    const facts = await body(scenario);
    // An uncaught exception in the app is a bug even when the page looked right.
    check(
      scenario.pageErrors.length === 0,
      `uncaught errors in the page: ${scenario.pageErrors.join(' | ')}`,
    );
    result = { scenario: name, ok: true, ...facts };
  } catch (error) {
    log(`${name} FAILED: ${error.stack || error}`);
    for (const [index, page] of scenario.pages.entries()) {
      await shot(scenario, page, `failure-${index}`).catch(() => {});
    }
    result = { scenario: name, ok: false, error: String(error.message || error) };
  }
  result.seconds = (Date.now() - started) / 1000;
  result.screenshots = scenario.shots;
  if (scenario.browser) {
    await scenario.browser.close().catch(() => {});
  }
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}

/// A page in a fresh browser context (its own cookies), its uncaught errors collected.
export async function newPage(scenario, options = {}) {
  const context = await scenario.browser.newContext({
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (error) => scenario.pageErrors.push(String(error.message || error)));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      log(`console error: ${message.text()}`);
    }
  });
  scenario.pages.push(page);
  return page;
}

/// A full-page screenshot in the scenario's artifacts directory.
export async function shot(scenario, page, name) {
  const file = path.join(scenario.artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  scenario.shots.push(file);
  log(`screenshot ${file}`);
  return file;
}

/// Logs in through the login form as `role` (a key of BMSLINK_USERS) and waits for the top
/// bar to name the user.
export async function login(scenario, page, role) {
  const [name, password] = scenario.users[role];
  await page.goto(`${scenario.url}#/login`);
  await page.locator('#login-name').fill(name);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
  // The top bar names the user (on a phone it sits in the collapsed menu: attached, hidden).
  const whoami = page.locator('[data-test=whoami]');
  await until(`the top bar naming ${name}`, async () =>
    (await whoami.count()) > 0 && ((await whoami.first().textContent()) || '').includes(name));
  log(`logged in as ${name} (${role})`);
  return name;
}

/// Opens a hash route of the app (no reload when the app is loaded already).
export async function route(scenario, page, hash) {
  await page.evaluate((target) => {
    window.location.hash = target;
  }, hash);
}

/// Marks the document so a later check can tell it was never reloaded.
export async function markDocument(page) {
  const token = `${Date.now()}-${Math.random()}`;
  await page.evaluate((value) => {
    window.__bmslinkDocument = value;
  }, token);
  return async () => {
    const now = await page.evaluate(() => window.__bmslinkDocument);
    check(now === token, 'the page was reloaded (its document marker is gone)');
  };
}

/// A JSON API call with the page's cookies (the logged-in user's session).
export async function api(page, method, pathAndQuery, body) {
  const response = await page.request.fetch(`${new URL(page.url()).origin}${pathAndQuery}`, {
    method,
    data: body,
    failOnStatusCode: false,
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status(), json, text };
}

/// Text of the element, trimmed ('' when absent).
export async function text(locator) {
  if ((await locator.count()) === 0) {
    return '';
  }
  return ((await locator.first().textContent()) || '').trim();
}

/// Whether the document is wider than the viewport (content that scrolls sideways).
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const doc = document.documentElement.scrollWidth;
    const body = document.body.scrollWidth;
    return { viewport: width, document: doc, body, overflows: doc > width || body > width };
  });
}
