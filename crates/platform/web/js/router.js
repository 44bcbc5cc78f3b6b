// Hash routes: #/login, #/fleet, #/pack/<terminal>, #/alarms, #/settings/<terminal>, #/users,
// #/account, #/registrations, #/audit.

/** The current route: its page name and path parameters ("#/pack/0003E8" -> pack, [0003E8]). */
export function currentRoute() {
  const path = location.hash.replace(/^#\/?/, '');
  const [name = '', ...params] = path.split('/').map(decodeURIComponent);
  return { name: name || 'fleet', params: params.filter(Boolean) };
}

/** Goes to a route ("#/fleet"). */
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** Calls `handler(route)` now and on every route change. */
export function onRouteChange(handler) {
  window.addEventListener('hashchange', () => handler(currentRoute()));
  handler(currentRoute());
}

export const links = {
  fleet: () => '#/fleet',
  alarms: (terminal) => (terminal ? `#/alarms/${encodeURIComponent(terminal)}` : '#/alarms'),
  pack: (terminal) => `#/pack/${encodeURIComponent(terminal)}`,
  settings: (terminal) => `#/settings/${encodeURIComponent(terminal)}`,
  users: () => '#/users',
  account: () => '#/account',
  registrations: () => '#/registrations',
  audit: () => '#/audit',
  login: () => '#/login',
};
