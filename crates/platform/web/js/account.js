// One's own account (any role): change the password, and API tokens (list, create with the
// secret shown once, revoke).

import { api } from './api.js';
import { ask } from './dialog.js';
import { card, h, notice, replace } from './dom.js';
import * as fmt from './format.js';
import { currentUser } from './session.js';
import { toast } from './toast.js';

const MIN_PASSWORD = 10;
const MAX_LABEL = 64;
/** Token lifetimes offered (days; null: until revoked). */
const LIFETIMES = [
  { days: null, label: 'Until revoked' },
  { days: 30, label: '30 days' },
  { days: 90, label: '90 days' },
  { days: 365, label: '1 year' },
];

export function mount(view) {
  const page = new AccountPage(view);
  return () => page.destroy();
}

class AccountPage {
  constructor(view) {
    this.view = view;
    this.controller = new AbortController();
    this.render();
    this.loadTokens();
  }

  destroy() {
    this.controller.abort();
  }

  render() {
    const user = currentUser();
    this.message = h('div', { class: 'message-slot' });
    this.secretSlot = h('div', { class: 'token-secret-slot' });
    this.body = h('tbody');
    replace(this.view,
      h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Account' }),
        h('p', { class: 'muted' }, 'Signed in as ', h('strong', { text: user.name }), ' ',
          h('span', { class: `role-chip role-chip-${user.role}`, text: user.role }),
          user.created ? ` \u00b7 since ${fmt.dateTime(user.created).slice(0, 10)}` : null))),
      h('div', { class: 'account-grid' },
        h('section', { class: 'card card-flush tokens-card' },
          h('div', { class: 'card-head card-head-padded' }, h('div', {}, h('h2', { text: 'API tokens' }),
            h('p', { class: 'muted card-sub' }, 'For scripts and integrations: send ',
              h('code', { text: 'Authorization: Bearer <secret>' }), '. A token acts with your role.'))),
          this.tokenForm(),
          this.secretSlot,
          this.message,
          h('div', { class: 'table-wrap' }, h('table', { class: 'table tokens-table', 'data-test': 'tokens-table' },
            h('thead', {}, h('tr', {}, ['Name', 'Created', 'Expires', ''].map((t) => h('th', { scope: 'col', text: t })))),
            this.body))),
        card('Change password', this.passwordForm(), null, { class: 'card password-card' })));
  }

  passwordForm() {
    const field = (key, label, autocomplete) => h('input', {
      class: 'input', type: 'password', id: `password-${key}`, 'data-test': `password-${key}`, autocomplete,
      maxlength: 1024, required: true,
    });
    const current = field('current', 'Current password', 'current-password');
    const next = field('new', 'New password', 'new-password');
    const confirm = field('confirm', 'New password again', 'new-password');
    const error = h('p', { class: 'form-error', role: 'alert', 'data-test': 'password-error', hidden: true });
    const save = h('button', { class: 'btn btn-primary', type: 'submit', 'data-test': 'password-save', text: 'Change password' });
    const form = h('form', { class: 'stack-form', novalidate: true },
      h('label', { for: 'password-current', text: 'Current password' }), current,
      h('label', { for: 'password-new', text: `New password (at least ${MIN_PASSWORD} characters)` }), next,
      h('label', { for: 'password-confirm', text: 'New password again' }), confirm,
      error,
      save,
      h('p', { class: 'muted form-note', text: 'Changing it does not end your other sessions or revoke your API tokens.' }));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const problem = checkPasswords(current.value, next.value, confirm.value);
      if (problem) {
        showError(error, problem);
        return;
      }
      save.disabled = true;
      try {
        await api.put('/me/password', { current_password: current.value, new_password: next.value });
        form.reset();
        toast('Password changed.', 'success');
      } catch (failure) {
        if (failure.name === 'AbortError') return;
        showError(error, sentence(failure.message));
        if (failure.status === 403) current.select();
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  tokenForm() {
    const name = h('input', { class: 'input token-name', id: 'token-name', 'data-test': 'token-name', autocomplete: 'off',
      maxlength: MAX_LABEL, placeholder: 'What it is for, e.g. grafana', required: true });
    const lifetime = h('select', { class: 'input token-lifetime', id: 'token-lifetime', 'data-test': 'token-lifetime', 'aria-label': 'Token lifetime' },
      LIFETIMES.map((l, index) => h('option', { value: String(index), text: l.label })));
    const error = h('p', { class: 'form-error', role: 'alert', 'data-test': 'token-error', hidden: true });
    const create = h('button', { class: 'btn btn-primary', type: 'submit', 'data-test': 'token-create', text: 'Create token' });
    const form = h('form', { class: 'token-form', novalidate: true },
      h('label', { class: 'sr-only', for: 'token-name', text: 'Token name' }),
      name, lifetime, create, error);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const label = name.value.trim();
      if (!label) {
        showError(error, 'Name the token (what it is for).');
        name.focus();
        return;
      }
      create.disabled = true;
      try {
        const days = LIFETIMES[Number(lifetime.value)]?.days ?? null;
        const created = await api.post('/tokens', days ? { label, expires_in_days: days } : { label });
        form.reset();
        this.showSecret(created);
        this.loadTokens();
      } catch (failure) {
        if (failure.name === 'AbortError') return;
        showError(error, sentence(failure.message));
      } finally {
        create.disabled = false;
      }
    });
    return form;
  }

  /** The new token's secret, this once: copy button, warning, and a button that hides it. */
  showSecret(token) {
    const secret = h('input', { class: 'input token-secret', readonly: true, value: token.secret, 'data-test': 'token-secret',
      'aria-label': `Secret of token ${token.label}`, spellcheck: 'false', autocomplete: 'off' });
    secret.addEventListener('focus', () => secret.select());
    const copy = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-test': 'token-copy', text: 'Copy',
      onclick: async () => {
        if (await copyText(secret)) {
          copy.textContent = 'Copied';
          toast('Token secret copied.', 'success', { timeout: 2500 });
        } else {
          secret.select();
          toast('Copying is blocked here: the secret is selected, press Ctrl+C.', 'info');
        }
      } });
    const done = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-test': 'token-secret-done', text: 'Done',
      onclick: () => replace(this.secretSlot) });
    replace(this.secretSlot, h('div', { class: 'token-secret-box', role: 'status', 'data-token-created': token.id },
      h('p', { class: 'token-secret-title' }, h('strong', { text: `Token \u201c${token.label}\u201d created.` }),
        ' Copy its secret now: it is shown only this once and cannot be shown again.'),
      h('div', { class: 'token-secret-row' }, secret, copy, done)));
    secret.focus();
  }

  async loadTokens() {
    try {
      const tokens = await api.get('/tokens', { signal: this.controller.signal });
      tokens.sort((a, b) => b.created - a.created);
      replace(this.message);
      if (!tokens.length) {
        replace(this.body, h('tr', { class: 'empty-row' }, h('td', { colspan: 4 }, 'No API tokens yet.')));
        return;
      }
      replace(this.body, tokens.map((token) => this.row(token)));
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    }
  }

  row(token) {
    const expired = token.expires != null && token.expires <= Date.now();
    return h('tr', { 'data-token': token.id },
      h('td', { 'data-label': 'Name' }, h('strong', { class: 'token-label', text: token.label }),
        h('span', { class: 'token-id mono', title: 'Token id', text: token.id })),
      h('td', { 'data-label': 'Created', title: fmt.ago(token.created), text: fmt.dateTime(token.created) }),
      h('td', { 'data-label': 'Expires', class: expired ? 'expired' : null,
        text: token.expires == null ? 'Never' : `${fmt.dateTime(token.expires)}${expired ? ' (expired)' : ''}` }),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', class: 'btn btn-danger-soft btn-small', 'data-test': 'token-revoke', text: 'Revoke',
          onclick: () => this.revoke(token) })));
  }

  async revoke(token) {
    const answer = await ask({
      title: `Revoke token \u201c${token.label}\u201d?`,
      text: 'Scripts using it get 401 from now on. This cannot be undone.',
      confirm: 'Revoke', danger: true,
    });
    if (!answer) return;
    try {
      await api.delete(`/tokens/${encodeURIComponent(token.id)}`);
      toast(`Token \u201c${token.label}\u201d revoked.`, 'success');
      const shown = this.secretSlot.querySelector(`[data-token-created="${CSS.escape(token.id)}"]`);
      if (shown) replace(this.secretSlot);
      this.loadTokens();
    } catch (error) {
      toast(error.message, 'error');
    }
  }
}

function checkPasswords(current, next, confirm) {
  if (!current) return 'Enter your current password.';
  if (next.length < MIN_PASSWORD) return `The new password needs at least ${MIN_PASSWORD} characters.`;
  if (next !== confirm) return 'The new passwords differ: type the same one twice.';
  if (next === current) return 'The new password is the current one.';
  return null;
}

/** The server's messages start in lower case ("the current password is wrong"). */
function sentence(text) {
  const value = String(text || '');
  return value.charAt(0).toUpperCase() + value.slice(1);
}

async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = false;
}
