// Users (admin): list, create, change role, reset password, delete.

import { api } from './api.js';
import { ask } from './dialog.js';
import { card, h, notice, replace } from './dom.js';
import * as fmt from './format.js';
import { currentUser, isAdmin } from './session.js';
import { toast } from './toast.js';

const ROLES = ['viewer', 'operator', 'admin'];
const MIN_PASSWORD = 10;

export function mount(view) {
  if (!isAdmin()) {
    replace(view, h('div', { class: 'page-head' }, h('h1', { text: 'Users' })),
      notice('Only admins manage users.', 'error'));
    return null;
  }
  const page = new UsersPage(view);
  return () => page.destroy();
}

class UsersPage {
  constructor(view) {
    this.view = view;
    this.controller = new AbortController();
    this.render();
    this.load();
  }

  destroy() {
    this.controller.abort();
  }

  render() {
    this.message = h('div', { class: 'message-slot' });
    this.body = h('tbody');
    replace(this.view,
      h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Users' }),
        h('p', { class: 'muted', text: 'Viewers read; operators also change settings and acknowledge alarms; admins also manage users.' }))),
      this.message,
      h('div', { class: 'users-grid' },
        h('section', { class: 'card card-flush' },
          h('div', { class: 'card-head card-head-padded' }, h('h2', { text: 'Accounts' })),
          h('div', { class: 'table-wrap' }, h('table', { class: 'table users-table', 'data-test': 'users-table' },
            h('thead', {}, h('tr', {}, ['Name', 'Role', 'Created', ''].map((t) => h('th', { scope: 'col', text: t })))),
            this.body))),
        card('New user', this.createForm())));
  }

  createForm() {
    const name = h('input', { class: 'input', 'data-test': 'user-new-name', id: 'user-new-name', autocomplete: 'off', maxlength: 64, required: true });
    const role = h('select', { class: 'input', 'data-test': 'user-new-role', id: 'user-new-role' },
      ROLES.map((r) => h('option', { value: r, text: r, selected: r === 'viewer' })));
    const password = h('input', { class: 'input', 'data-test': 'user-new-password', id: 'user-new-password', type: 'password',
      autocomplete: 'new-password', minlength: MIN_PASSWORD, required: true });
    const error = h('p', { class: 'form-error', role: 'alert', 'data-test': 'user-error', hidden: true });
    const form = h('form', { class: 'stack-form', novalidate: true },
      h('label', { for: 'user-new-name', text: 'Name' }), name,
      h('label', { for: 'user-new-role', text: 'Role' }), role,
      h('label', { for: 'user-new-password', text: `Password (at least ${MIN_PASSWORD} characters)` }), password,
      error,
      h('button', { class: 'btn btn-primary', type: 'submit', 'data-test': 'user-create', text: 'Create user' }));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const problem = checkNewUser(name.value.trim(), password.value);
      if (problem) {
        showError(error, problem);
        return;
      }
      try {
        await api.post('/users', { name: name.value.trim(), role: role.value, password: password.value });
        toast(`User ${name.value.trim()} created.`, 'success');
        form.reset();
        this.load();
      } catch (failure) {
        showError(error, failure.message);
      }
    });
    return form;
  }

  async load() {
    try {
      const users = await api.get('/users', { signal: this.controller.signal });
      replace(this.message);
      replace(this.body, users.map((user) => this.row(user)));
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    }
  }

  row(user) {
    const self = user.name === currentUser()?.name;
    const role = h('select', { class: 'input input-small', 'data-test': 'user-role', 'aria-label': `Role of ${user.name}` },
      ROLES.map((r) => h('option', { value: r, text: r, selected: r === user.role })));
    role.addEventListener('change', () => this.update(user, { role: role.value }, `${user.name} is now ${role.value}.`, () => {
      role.value = user.role;
    }));
    return h('tr', { 'data-user': user.name },
      h('td', { 'data-label': 'Name' }, h('strong', { text: user.name }), self ? h('span', { class: 'you', text: 'you' }) : null),
      h('td', { 'data-label': 'Role' }, role),
      h('td', { 'data-label': 'Created', text: fmt.dateTime(user.created) }),
      h('td', { class: 'actions-cell' },
        h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-test': 'user-reset-password', text: 'Reset password',
          onclick: () => this.resetPassword(user) }),
        h('button', { type: 'button', class: 'btn btn-danger-soft btn-small', 'data-test': 'user-delete', text: 'Delete',
          onclick: () => this.remove(user) })));
  }

  async update(user, changes, done, undo) {
    try {
      await api.patch(`/users/${user.id}`, changes);
      toast(done, 'success');
      this.load();
    } catch (error) {
      undo?.();
      toast(error.message, 'error');
    }
  }

  async resetPassword(user) {
    const answer = await ask({
      title: `Reset the password of ${user.name}`,
      text: 'Tell them the new password; they can change it later.',
      input: { type: 'password', label: `New password (at least ${MIN_PASSWORD} characters)`, minLength: MIN_PASSWORD },
      confirm: 'Set password',
    });
    if (!answer) return;
    if (answer.value.length < MIN_PASSWORD) {
      toast(`The password needs at least ${MIN_PASSWORD} characters.`, 'error');
      return;
    }
    this.update(user, { password: answer.value }, `Password of ${user.name} changed.`);
  }

  async remove(user) {
    const answer = await ask({
      title: `Delete user ${user.name}?`, text: 'Their sessions and tokens end. This cannot be undone.',
      confirm: 'Delete', danger: true,
    });
    if (!answer) return;
    try {
      await api.delete(`/users/${user.id}`);
      toast(`User ${user.name} deleted.`, 'success');
      this.load();
    } catch (error) {
      toast(error.message, 'error');
    }
  }
}

function checkNewUser(name, password) {
  if (!name) return 'Enter a name.';
  if (/\s/.test(name)) return 'The name may not contain spaces.';
  if (password.length < MIN_PASSWORD) return `The password needs at least ${MIN_PASSWORD} characters.`;
  return null;
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = false;
}
