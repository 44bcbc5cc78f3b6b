// Registrations: terminals waiting for approval (registration policy "approval"); operators
// approve or reject them, viewers see the list.

import { api } from './api.js';
import { ask } from './dialog.js';
import { h, notice, replace, setText } from './dom.js';
import * as fmt from './format.js';
import { onLive } from './live.js';
import { links } from './router.js';
import { canWrite } from './session.js';
import { toast } from './toast.js';

/** Waiting terminals raise no live event: the list is refetched this often too. */
const RELOAD_MS = 15e3;

export function mount(view) {
  const page = new RegistrationsPage(view);
  return () => page.destroy();
}

class RegistrationsPage {
  constructor(view) {
    this.view = view;
    this.controller = null;
    this.render();
    this.load();
    this.timer = setInterval(() => this.load(), RELOAD_MS);
    this.unsubscribe = onLive('refresh', () => this.load());
  }

  destroy() {
    clearInterval(this.timer);
    this.unsubscribe();
    this.controller?.abort();
  }

  render() {
    this.summary = h('span', { class: 'toolbar-count muted', 'data-test': 'registrations-count' });
    this.message = h('div', { class: 'message-slot' });
    this.body = h('tbody');
    const head = ['Terminal', 'Connection', 'First seen', 'Last seen', ''].map((label) => h('th', { scope: 'col', text: label }));
    replace(this.view,
      h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Registrations' }),
        h('p', { class: 'muted', text: canWrite()
          ? 'Terminals waiting for approval: their uploads are stored once approved; rejected ones are disconnected.'
          : 'Terminals waiting for approval by an operator.' }))),
      h('section', { class: 'card card-flush' },
        h('div', { class: 'toolbar' }, h('h2', { text: 'Waiting for approval' }), this.summary),
        this.message,
        h('div', { class: 'table-wrap' }, h('table', { class: 'table registrations-table', 'data-test': 'registrations-table' },
          h('thead', {}, h('tr', {}, head)), this.body))));
  }

  async load() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    try {
      const pending = await api.get('/registrations', { signal: controller.signal });
      replace(this.message);
      this.renderRows(pending);
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    }
  }

  renderRows(pending) {
    setText(this.summary, pending.length === 1 ? '1 terminal' : `${fmt.number(pending.length)} terminals`);
    if (!pending.length) {
      replace(this.body, h('tr', { class: 'empty-row' }, h('td', { colspan: 5 },
        'No terminals are waiting for approval.')));
      return;
    }
    // Keeps a row whose decision is under way (its buttons disabled) instead of rebuilding it.
    const busy = new Map([...this.body.querySelectorAll('tr[data-busy]')].map((row) => [row.dataset.terminal, row]));
    replace(this.body, pending.map((terminal) => busy.get(terminal.terminal) ?? this.row(terminal)));
  }

  row(terminal) {
    const state = terminal.online ? 'online' : 'offline';
    const element = h('tr', { 'data-terminal': terminal.terminal },
      h('td', { class: 'terminal-cell', 'data-label': 'Terminal' }, h('div', { class: 'terminal-stack' },
        h('a', { href: links.pack(terminal.terminal), class: 'terminal-id', text: terminal.terminal }),
        h('span', { class: 'terminal-name', text: terminal.name ?? '' }))),
      h('td', { 'data-label': 'Connection' }, h('span', { class: `badge badge-${state}`, text: state })),
      h('td', { 'data-label': 'First seen', title: fmt.ago(terminal.first_seen), text: fmt.dateTime(terminal.first_seen) }),
      h('td', { 'data-label': 'Last seen', title: fmt.dateTime(terminal.last_seen), text: fmt.ago(terminal.last_seen) }),
      h('td', { class: 'actions-cell' }, canWrite() ? [
        h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-test': 'approve', text: 'Approve',
          onclick: () => this.decide(terminal, 'approved', element) }),
        h('button', { type: 'button', class: 'btn btn-danger-soft btn-small', 'data-test': 'reject', text: 'Reject',
          onclick: () => this.decide(terminal, 'rejected', element) }),
      ] : null));
    return element;
  }

  async decide(terminal, registration, row) {
    const id = terminal.terminal;
    if (registration === 'rejected') {
      const answer = await ask({
        title: `Reject terminal ${id}?`,
        text: 'Its connection is closed and it is refused from now on; its uploads are not stored.',
        confirm: 'Reject', danger: true,
      });
      if (!answer) return;
    }
    const buttons = row.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    row.dataset.busy = 'true';
    try {
      await api.put(`/terminals/${encodeURIComponent(id)}/registration`, { registration });
      toast(registration === 'approved' ? `Terminal ${id} approved.` : `Terminal ${id} rejected.`, 'success');
      row.remove();
      window.dispatchEvent(new Event('bmslink:counts'));
    } catch (error) {
      buttons.forEach((b) => { b.disabled = false; });
      delete row.dataset.busy;
      toast(error.message, 'error');
    }
    this.load();
  }
}
