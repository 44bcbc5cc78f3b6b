// Audit log (admin): every login and every change, newest first, by period with older pages
// on demand, filtered by text in the browser.

import { api, query } from './api.js';
import { h, notice, replace, setText } from './dom.js';
import * as fmt from './format.js';
import { isAdmin } from './session.js';

/** Entries per request (the API allows up to 10000). */
const LIMIT = 200;
const DAY = 24 * 3600e3;
const PERIODS = [
  { key: 'day', label: '24 h', span: DAY },
  { key: 'week', label: '7 days', span: 7 * DAY },
  { key: 'month', label: '30 days', span: 30 * DAY },
  { key: 'all', label: 'All', span: null },
];
/** Actions shown as failures. */
const FAILED = /_failed$/;

export function mount(view) {
  if (!isAdmin()) {
    replace(view, h('div', { class: 'page-head' }, h('h1', { text: 'Audit log' })),
      notice('Only admins read the audit log.', 'error'));
    return null;
  }
  const page = new AuditPage(view);
  return () => page.destroy();
}

class AuditPage {
  constructor(view) {
    this.view = view;
    this.period = 'week';
    this.entries = [];
    this.complete = false;
    this.controller = null;
    this.render();
    this.load();
  }

  destroy() {
    this.controller?.abort();
  }

  render() {
    this.periodButtons = PERIODS.map((p) => h('button', {
      type: 'button', class: 'segment', 'data-period': p.key, text: p.label, onclick: () => this.setPeriod(p.key),
    }));
    this.filter = h('input', {
      type: 'search', class: 'search', placeholder: 'Filter by user, action, target\u2026',
      'aria-label': 'Filter the entries', 'data-test': 'audit-filter', autocomplete: 'off', spellcheck: 'false',
    });
    this.filter.addEventListener('input', () => this.renderRows());
    this.summary = h('span', { class: 'toolbar-count muted', 'data-test': 'audit-count' });
    this.message = h('div', { class: 'message-slot' });
    this.body = h('tbody');
    this.more = h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'audit-more', text: 'Load older entries',
      onclick: () => this.load(true) });
    this.footer = h('div', { class: 'table-footer', hidden: true }, this.more);
    const head = ['Time', 'Actor', 'Action', 'Target', 'Detail'].map((label) => h('th', { scope: 'col', text: label }));
    replace(this.view,
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', { text: 'Audit log' }),
          h('p', { class: 'muted', text: 'Every login and every change: who, what, on what, and from where.' })),
        h('div', { class: 'page-actions' },
          h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'audit-refresh', text: 'Refresh',
            onclick: () => this.load() }))),
      h('section', { class: 'card card-flush' },
        h('div', { class: 'toolbar' },
          h('div', { class: 'segments', role: 'group', 'aria-label': 'Period' }, this.periodButtons),
          this.filter, this.summary),
        this.message,
        h('div', { class: 'table-wrap' }, h('table', { class: 'table audit-table', 'data-test': 'audit-table' },
          h('thead', {}, h('tr', {}, head)), this.body)),
        this.footer));
    this.markPeriod();
  }

  setPeriod(key) {
    this.period = key;
    this.markPeriod();
    this.load();
  }

  markPeriod() {
    for (const b of this.periodButtons) b.setAttribute('aria-pressed', String(b.dataset.period === this.period));
  }

  /** The period's newest page, or (`older`) the page before the oldest entry shown. */
  async load(older = false) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const span = PERIODS.find((p) => p.key === this.period)?.span;
    const oldest = older ? this.entries[this.entries.length - 1] : null;
    // `to` is exclusive: one past the oldest entry, whose siblings of the same millisecond
    // come back first and are dropped.
    const params = { limit: LIMIT, from: span ? Math.max(0, Date.now() - span) : undefined, to: oldest ? oldest.at + 1 : undefined };
    this.more.disabled = true;
    try {
      const page = await api.get(`/audit${query(params)}`, { signal: controller.signal });
      if (oldest) {
        const seen = this.entries.filter((e) => e.at === oldest.at).length;
        this.entries = this.entries.concat(page.slice(seen));
      } else {
        this.entries = page;
      }
      this.complete = page.length < LIMIT;
      replace(this.message);
      this.renderRows();
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    } finally {
      if (this.controller === controller) this.more.disabled = false;
    }
  }

  renderRows() {
    const words = this.filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = words.length ? this.entries.filter((e) => matches(e, words)) : this.entries;
    const total = `${fmt.number(this.entries.length)}${this.complete ? '' : '+'}`;
    setText(this.summary, words.length ? `${fmt.number(shown.length)} of ${total} entries` : `${total} entries`);
    this.footer.hidden = this.complete;
    if (!shown.length) {
      const why = this.entries.length ? 'No entries match the filter.' : 'No entries in this period.';
      replace(this.body, h('tr', { class: 'empty-row' }, h('td', { colspan: 5 }, why)));
      return;
    }
    replace(this.body, shown.map(row));
  }
}

function row(entry) {
  const failed = FAILED.test(entry.action);
  return h('tr', { 'data-action': entry.action, class: failed ? 'row-failed' : null },
    h('td', { 'data-field': 'at', 'data-label': 'Time', title: fmt.ago(entry.at), text: fmt.dateTime(entry.at) }),
    h('td', { 'data-field': 'actor', 'data-label': 'Actor' }, h('strong', { text: entry.actor })),
    h('td', { 'data-field': 'action', 'data-label': 'Action' },
      h('span', { class: `action-chip${failed ? ' action-failed' : ''}`, title: entry.action, text: fmt.humanize(entry.action) })),
    h('td', { 'data-field': 'target', 'data-label': 'Target', text: entry.target }),
    h('td', { 'data-field': 'detail', 'data-label': 'Detail', text: readableDetail(entry.detail) }));
}

/** "session until 1795373541538 ms; from ..." -> "session until 2026-11-22 18:52:21; from ...". */
function readableDetail(detail) {
  return String(detail).replace(/\buntil (\d{12,14}) ms\b/g, (_, ms) => `until ${fmt.dateTime(Number(ms))}`);
}

/** Every word appears in the entry (its time, actor, action in code and in words, target, detail). */
function matches(entry, words) {
  const text = [fmt.dateTime(entry.at), entry.actor, entry.action, fmt.humanize(entry.action), entry.target,
    entry.detail, readableDetail(entry.detail)]
    .join(' ').toLowerCase();
  return words.every((word) => text.includes(word));
}
