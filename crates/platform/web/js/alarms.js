// Alarms: active and past, filtered by state and terminal; operators acknowledge. Live.

import { api, query } from './api.js';
import { h, notice, replace, setText, throttle } from './dom.js';
import * as fmt from './format.js';
import { liveConnect, onLive } from './live.js';
import { links, navigate } from './router.js';
import { canWrite } from './session.js';
import { toast } from './toast.js';

const LIMIT = 500;
/** Names of the platform's own alarm rules. */
const KIND_NAMES = {
  offline: 'Offline',
  cell_spread: 'Cell spread',
  temperature_rise: 'Temperature rise',
  soc_low: 'SOC low',
};

const VIEWS = [
  { key: 'all', label: 'All' },
  { key: 'active', label: 'Active' },
];

export function mount(view, [terminal]) {
  const page = new AlarmsPage(view, terminal ? terminal.toUpperCase() : '');
  return () => page.destroy();
}

class AlarmsPage {
  constructor(view, terminal) {
    this.view = view;
    this.terminal = terminal;
    this.show = 'all';
    this.controller = null;
    this.render();
    this.load();
    // An alarm list is small: refetch soon after each change, so alarms close together
    // show without waiting.
    const reload = throttle(() => this.load(), 200);
    this.unsubscribe = [onLive('alarm', reload), onLive('refresh', reload)];
    liveConnect(null);
  }

  destroy() {
    this.controller?.abort();
    this.unsubscribe.forEach((off) => off());
  }

  render() {
    this.viewButtons = VIEWS.map((v) => h('button', {
      type: 'button', class: 'segment', 'data-view': v.key, text: v.label, onclick: () => this.setView(v.key),
    }));
    this.terminalInput = h('input', {
      type: 'search', class: 'search search-narrow', placeholder: 'Terminal, e.g. 0003E8', value: this.terminal,
      'aria-label': 'Only this terminal', 'data-test': 'alarms-terminal', maxlength: 6, autocomplete: 'off',
    });
    this.terminalInput.addEventListener('change', () => {
      const terminal = this.terminalInput.value.trim().toUpperCase();
      navigate(links.alarms(terminal));
    });
    this.summary = h('span', { class: 'toolbar-count muted' });
    this.message = h('div', { class: 'message-slot' });
    this.body = h('tbody');
    const head = ['State', 'Kind', 'Terminal', 'Detail', 'Started', 'Duration', 'Acknowledged', '']
      .map((label) => h('th', { scope: 'col', text: label }));
    replace(this.view,
      h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Alarms' }),
        h('p', { class: 'muted', text: this.terminal ? `Terminal ${this.terminal}` : 'Raised by the BMSes and by the platform\u2019s rules.' }))),
      h('section', { class: 'card card-flush' },
        h('div', { class: 'toolbar' },
          h('div', { class: 'segments', role: 'group', 'aria-label': 'Which alarms' }, this.viewButtons),
          this.terminalInput, this.summary),
        this.message,
        h('div', { class: 'table-wrap' }, h('table', { class: 'table alarms-table', 'data-test': 'alarms-table' },
          h('thead', {}, h('tr', {}, head)), this.body))));
    this.markView();
  }

  setView(key) {
    this.show = key;
    this.markView();
    this.load();
  }

  markView() {
    for (const b of this.viewButtons) b.setAttribute('aria-pressed', String(b.dataset.view === this.show));
  }

  async load() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const params = { limit: LIMIT, terminal: this.terminal || undefined, active: this.show === 'active' ? true : undefined };
    try {
      const alarms = await api.get(`/alarms${query(params)}`, { signal: controller.signal });
      alarms.sort((a, b) => Number(b.active) - Number(a.active) || b.started - a.started);
      replace(this.message);
      this.renderRows(alarms);
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    }
  }

  renderRows(alarms) {
    const active = alarms.filter((a) => a.active).length;
    setText(this.summary, `${active} active \u00b7 ${alarms.length} shown`);
    if (!alarms.length) {
      replace(this.body, h('tr', { class: 'empty-row' }, h('td', { colspan: 8 },
        this.show === 'active' ? 'No active alarms. All packs are healthy.' : 'No alarms recorded.')));
      return;
    }
    replace(this.body, alarms.map((alarm) => this.row(alarm)));
  }

  row(alarm) {
    const state = alarm.active ? 'active' : 'cleared';
    const kind = alarm.warning ? fmt.humanize(alarm.warning) : KIND_NAMES[alarm.kind] ?? fmt.humanize(alarm.kind);
    return h('tr', { 'data-alarm': alarm.id, 'data-active': String(alarm.active), class: alarm.active ? 'row-active' : null },
      h('td', { 'data-label': 'State' }, h('span', { class: `badge badge-${alarm.active ? 'alarm' : 'cleared'}`, text: state })),
      h('td', { 'data-field': 'kind', 'data-label': 'Kind' }, h('strong', { text: kind }),
        alarm.kind === 'bms' ? h('span', { class: 'kind-source', text: 'BMS' }) : h('span', { class: 'kind-source', text: 'platform' })),
      h('td', { 'data-field': 'terminal', 'data-label': 'Terminal' }, h('a', { href: links.pack(alarm.terminal), class: 'terminal-id', text: alarm.terminal })),
      h('td', { 'data-field': 'detail', 'data-label': 'Detail', text: alarm.detail }),
      h('td', { 'data-field': 'started', 'data-label': 'Started', title: fmt.ago(alarm.started), text: fmt.dateTime(alarm.started) }),
      h('td', { 'data-label': 'Duration', text: fmt.duration(alarm.duration_ms) }),
      h('td', { 'data-field': 'acknowledged', 'data-label': 'Acknowledged',
        text: alarm.acknowledged_by ? `${alarm.acknowledged_by}, ${fmt.ago(alarm.acknowledged_at)}` : '\u2013' }),
      h('td', { class: 'actions-cell' }, this.ackButton(alarm)));
  }

  ackButton(alarm) {
    // Past alarms can be acknowledged too: a fault that cleared before anyone looked.
    if (!canWrite() || alarm.acknowledged_by) return null;
    const button = h('button', { type: 'button', class: 'btn btn-small btn-primary', 'data-test': 'ack', text: 'Acknowledge' });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await api.post(`/alarms/${alarm.id}/acknowledge`);
        toast(`Alarm ${alarm.id} acknowledged.`, 'success', { timeout: 3000 });
        this.load();
      } catch (error) {
        button.disabled = false;
        toast(error.message, 'error');
      }
    });
    return button;
  }
}
