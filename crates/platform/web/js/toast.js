// Short messages in the corner: alarms raised, saves, errors.

import { h } from './dom.js';

const MAX_TOASTS = 4;

/** Shows a toast; `kind`: info, success, error or alarm. Clicking it (or `timeout`) closes it. */
export function toast(message, kind = 'info', { timeout = 6000, href = null } = {}) {
  const container = document.getElementById('toasts');
  if (!container) return;
  const body = href ? h('a', { href, text: message }) : h('span', { text: message });
  const item = h('div', { class: `toast toast-${kind}`, 'data-test': 'toast', role: kind === 'error' ? 'alert' : null },
    body,
    h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', text: '\u00d7' }));
  const close = () => item.remove();
  item.querySelector('.toast-close').addEventListener('click', close);
  container.append(item);
  while (container.children.length > MAX_TOASTS) container.firstElementChild.remove();
  if (timeout) setTimeout(close, timeout);
}
