// The app's entry: session check, top bar, and mounting the page of the current route.

import { api, onUnauthorized } from './api.js';
import { h, replace } from './dom.js';
import { liveDisconnect, onLive } from './live.js';
import { navigate, onRouteChange, links } from './router.js';
import { currentUser, isAdmin, setUser } from './session.js';
import { toast } from './toast.js';
import * as login from './login.js';
import * as fleet from './fleet.js';
import * as pack from './pack.js';
import * as alarms from './alarms.js';
import * as settings from './settings.js';
import * as users from './users.js';
import * as account from './account.js';
import * as registrations from './registrations.js';
import * as audit from './audit.js';

const PAGES = { login, fleet, pack, alarms, settings, users, account, registrations, audit };
/** How often the nav's counts are refetched besides live events (new terminals raise none). */
const COUNTS_MS = 30e3;

const view = document.getElementById('view');
let unmount = null;
let wanted = null;

async function start() {
  onUnauthorized(sessionEnded);
  setupTopbar();
  try {
    const me = await api.get('/me');
    signedIn(me.user);
  } catch {
    setUser(null);
  }
  onRouteChange(show);
}

/** Mounts the page of `route` (login when signed out), unmounting the previous one. */
function show(route) {
  if (unmount) unmount();
  unmount = null;
  closeMenu();
  if (!currentUser() && route.name !== 'login') {
    wanted = location.hash;
    navigate(links.login());
    return;
  }
  if (currentUser() && route.name === 'login') {
    navigate(links.fleet());
    return;
  }
  const page = PAGES[route.name] ?? fleet;
  markNav(route.name);
  refreshBadges();
  document.getElementById('topbar').hidden = !currentUser();
  view.className = `view view-${route.name}`;
  replace(view);
  unmount = page.mount(view, route.params, { signedIn: onLogin }) ?? null;
  window.scrollTo(0, 0);
}

function onLogin(user) {
  signedIn(user);
  const next = wanted && !wanted.startsWith('#/login') ? wanted : links.fleet();
  wanted = null;
  navigate(next);
}

function signedIn(user) {
  setUser(user);
  const whoami = document.querySelector('[data-test=whoami]');
  // The name opens the account page (password, API tokens).
  replace(whoami, h('a', { href: links.account(), class: 'whoami-link', 'data-test': 'nav-account', 'data-nav': 'account',
    title: 'Your account: password and API tokens' },
    h('span', { class: 'whoami-name', text: user.name }),
    h('span', { class: `role role-${user.role}`, text: user.role })));
  const admin = document.getElementById('nav-admin');
  replace(admin, isAdmin() ? [
    h('a', { href: links.users(), 'data-test': 'nav-users', 'data-nav': 'users', text: 'Users' }),
    h('a', { href: links.audit(), 'data-test': 'nav-audit', 'data-nav': 'audit', text: 'Audit' }),
  ] : null);
  refreshBadges();
}

/** Forgets the user: no name, no admin link, no live feed. */
function signedOut() {
  setUser(null);
  liveDisconnect();
  replace(document.querySelector('[data-test=whoami]'));
  replace(document.getElementById('nav-admin'));
}

function sessionEnded() {
  if (!currentUser()) return;
  signedOut();
  toast('Your session has ended: please log in again.', 'info');
  wanted = location.hash;
  navigate(links.login());
}

async function logout() {
  try {
    await api.post('/logout');
  } catch {
    // Logged out either way.
  }
  signedOut();
  navigate(links.login());
}

function setupTopbar() {
  document.querySelector('[data-test=logout]').addEventListener('click', logout);
  const toggle = document.getElementById('menu-toggle');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    document.getElementById('topbar').classList.toggle('menu-open', open);
  });
  onLive('alarm', alarmChanged);
  onLive('refresh', refreshBadges);
  // Pages that change a count (a registration decided) ask for a refresh.
  window.addEventListener('bmslink:counts', refreshBadges);
  setInterval(refreshBadges, COUNTS_MS);
}

function closeMenu() {
  document.getElementById('menu-toggle').setAttribute('aria-expanded', 'false');
  document.getElementById('topbar').classList.remove('menu-open');
}

function markNav(name) {
  const section = name === 'pack' || name === 'settings' ? 'fleet' : name;
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === section);
  }
}

function alarmChanged(event) {
  if (event.change === 'raised') {
    const what = (event.warning || event.kind || 'alarm').replace(/_/g, ' ');
    toast(`Alarm raised on ${event.terminal}: ${what}`, 'alarm', { href: links.pack(event.terminal) });
  }
  refreshBadges();
}

let badgeTimer = null;

/**
 * The numbers next to "Alarms" (active alarms) and "Registrations" (terminals waiting for
 * approval), from the fleet counts; throttled.
 */
function refreshBadges() {
  if (badgeTimer || !currentUser()) return;
  badgeTimer = setTimeout(async () => {
    badgeTimer = null;
    try {
      const page = await api.get('/fleet?limit=1');
      setBadge('nav-alarm-badge', page.counts.active_alarms);
      setBadge('nav-registration-badge', page.counts.pending);
    } catch {
      // The badge is a convenience; the pages show errors.
    }
  }, 300);
}

function setBadge(id, count) {
  const badge = document.getElementById(id);
  badge.hidden = !count;
  badge.textContent = String(count ?? 0);
}


start();
