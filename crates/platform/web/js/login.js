// The login page: name + password -> session cookie (POST /api/login).

import { api } from './api.js';
import { h, replace } from './dom.js';

export function mount(view, _params, { signedIn }) {
  const error = h('p', { class: 'form-error', 'data-test': 'login-error', role: 'alert', hidden: true });
  const name = h('input', { id: 'login-name', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { id: 'login-submit', class: 'btn btn-primary btn-block', type: 'submit', text: 'Log in' });
  const form = h('form', { class: 'login-form', novalidate: true },
    h('label', { for: 'login-name', text: 'User name' }), name,
    h('label', { for: 'login-password', text: 'Password' }), password,
    error, submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!name.value.trim() || !password.value) {
      showError(error, 'Enter your user name and password.');
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in\u2026';
    try {
      const answer = await api.post('/login', { name: name.value.trim(), password: password.value });
      signedIn(answer.user);
    } catch (failure) {
      showError(error, failure.message);
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });

  replace(view, h('div', { class: 'login-page' },
    h('div', { class: 'login-card' },
      h('div', { class: 'login-brand' }, brandMark(), h('span', { text: 'bmslink' })),
      h('h1', { text: 'Battery monitoring' }),
      h('p', { class: 'muted', text: 'Log in to see your fleet of packs.' }),
      form)));
  name.focus();
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = false;
}

function brandMark() {
  const mark = document.querySelector('.brand-mark');
  return mark ? mark.cloneNode(true) : null;
}
