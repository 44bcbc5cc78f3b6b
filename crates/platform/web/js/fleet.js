// The fleet overview: every terminal with its latest values, searchable, sortable, filterable,
// refreshed live. Rows are keyed by terminal and updated in place, so a fleet of thousands
// re-renders only what changed.

import { api } from './api.js';
import { h, notice, replace, setText, throttle } from './dom.js';
import * as fmt from './format.js';
import { liveConnect, onLive } from './live.js';
import { links, navigate } from './router.js';

const FETCH_LIMIT = 10000;
const REFETCH_MS = 2000;
const CLOCK_MS = 2000;

const COLUMNS = [
  { key: 'terminal', label: 'Terminal' },
  { key: 'state', label: 'State' },
  { key: 'soc', label: 'SOC', numeric: true },
  { key: 'voltage', label: 'Voltage', numeric: true },
  { key: 'current', label: 'Current', numeric: true },
  { key: 'power', label: 'Power', numeric: true },
  { key: 'temperature', label: 'Temperature', numeric: true },
  { key: 'last', label: 'Last upload', numeric: true },
];

const FILTERS = [
  { key: 'all', label: 'All' },
  { key: 'online', label: 'Online' },
  { key: 'alarm', label: 'Alarm' },
  { key: 'offline', label: 'Offline' },
];

/** online, offline or alarm (an online terminal with active alarms). */
export function terminalState(item) {
  if (!item.online) return 'offline';
  return item.active_alarms > 0 ? 'alarm' : 'online';
}

function maxTemperature(item) {
  const values = Object.values(item.latest?.temperatures ?? {}).filter((t) => t != null);
  return values.length ? Math.max(...values) : null;
}

const STATE_ORDER = { alarm: 0, offline: 1, online: 2 };

const SORT_VALUES = {
  terminal: (item) => item.terminal,
  state: (item) => STATE_ORDER[terminalState(item)],
  soc: (item) => item.latest?.soc ?? null,
  voltage: (item) => item.latest?.voltage_mv ?? null,
  current: (item) => item.latest?.current_ma ?? null,
  power: (item) => item.latest?.power_w ?? null,
  temperature: maxTemperature,
  last: (item) => item.latest?.at ?? item.last_seen ?? null,
};

export function mount(view) {
  const page = new FleetPage(view);
  return () => page.destroy();
}

class FleetPage {
  constructor(view) {
    this.items = [];
    this.rows = new Map();
    this.order = [];
    this.sort = { key: 'terminal', descending: false };
    this.filter = 'all';
    this.search = '';
    this.controller = new AbortController();
    this.render(view);
    this.load();
    // The whole list is refetched (no per-row calls); big fleets refetch less often.
    const refetch = throttle(() => this.load(), () => Math.max(REFETCH_MS, this.items.length * 5));
    this.unsubscribe = [
      onLive('fleet', refetch),
      onLive('alarm', refetch),
      onLive('refresh', refetch),
    ];
    liveConnect(null);
    this.clock = setInterval(() => this.tickClock(), CLOCK_MS);
  }

  destroy() {
    this.controller.abort();
    clearInterval(this.clock);
    this.unsubscribe.forEach((off) => off());
  }

  render(view) {
    this.tiles = {
      terminals: tile('Terminals', 'total'),
      online: tile('Online', 'online'),
      offline: tile('Offline', 'offline'),
      alarms: tile('Active alarms', 'alarm', { 'data-test': 'alarm-count' }),
      power: tile('Net power', 'power'),
    };
    this.shown = h('span', { 'data-test': 'fleet-count', text: '0' });
    this.message = h('div', { class: 'message-slot' });
    this.body = h('tbody');
    this.head = h('tr', {}, COLUMNS.map((column) => this.headerCell(column)));
    replace(view,
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', { text: 'Fleet' }),
          h('p', { class: 'muted', text: 'Every pack reporting to this platform, live.' }))),
      h('div', { class: 'tiles' }, Object.values(this.tiles).map((t) => t.element)),
      h('section', { class: 'card card-flush' },
        this.toolbar(),
        this.message,
        h('div', { class: 'table-wrap' },
          h('table', { class: 'table fleet-table', 'data-test': 'fleet-table' }, h('thead', {}, this.head), this.body))));
  }

  toolbar() {
    const search = h('input', {
      type: 'search', class: 'search', placeholder: 'Search terminal or name', 'aria-label': 'Search terminals',
      'data-test': 'fleet-search', autocomplete: 'off',
    });
    search.addEventListener('input', () => {
      this.search = search.value.trim().toLowerCase();
      this.update();
    });
    this.filterButtons = FILTERS.map((f) => h('button', {
      type: 'button', class: 'segment', 'data-filter': f.key, 'aria-pressed': String(f.key === this.filter),
      text: f.label, onclick: () => this.setFilter(f.key),
    }));
    return h('div', { class: 'toolbar' },
      search,
      h('div', { class: 'segments', role: 'group', 'aria-label': 'Filter by state' }, this.filterButtons),
      h('span', { class: 'toolbar-count muted' }, this.shown, ' shown'));
  }

  headerCell(column) {
    const button = h('button', { type: 'button', class: 'sort', 'data-sort': column.key, text: column.label,
      onclick: () => this.setSort(column.key) });
    return h('th', { class: column.numeric ? 'num' : null, scope: 'col', 'aria-sort': this.ariaSort(column.key) }, button);
  }

  ariaSort(key) {
    if (this.sort.key !== key) return 'none';
    return this.sort.descending ? 'descending' : 'ascending';
  }

  setSort(key) {
    const same = this.sort.key === key;
    this.sort = { key, descending: same ? !this.sort.descending : key === 'last' };
    for (const th of this.head.children) {
      th.setAttribute('aria-sort', this.ariaSort(th.firstElementChild.dataset.sort));
    }
    this.update();
  }

  setFilter(key) {
    this.filter = key;
    for (const button of this.filterButtons) button.setAttribute('aria-pressed', String(button.dataset.filter === key));
    this.update();
  }

  async load() {
    try {
      const page = await api.get(`/fleet?limit=${FETCH_LIMIT}`, { signal: this.controller.signal });
      this.items = page.terminals;
      this.counts = page.counts;
      replace(this.message, page.total > page.terminals.length
        ? notice(`Showing the first ${page.terminals.length} of ${page.total} terminals.`, 'info') : null);
      this.update();
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, notice(error.message, 'error'));
    }
  }

  /** Filters, sorts and renders the rows; updates the tiles. */
  update() {
    if (!this.counts) return;
    const visible = this.items.filter((item) => this.matches(item));
    visible.sort((a, b) => this.compare(a, b));
    this.renderTiles();
    setText(this.shown, String(visible.length));
    const now = Date.now();
    for (const item of visible) this.row(item).update(item, now);
    this.placeRows(visible.map((item) => item.terminal));
    this.renderEmpty(visible.length);
  }

  matches(item) {
    if (this.filter === 'alarm' && !(item.active_alarms > 0)) return false;
    if (this.filter === 'online' && !item.online) return false;
    if (this.filter === 'offline' && item.online) return false;
    if (!this.search) return true;
    return item.terminal.toLowerCase().includes(this.search)
      || (item.name ?? '').toLowerCase().includes(this.search);
  }

  compare(a, b) {
    const value = SORT_VALUES[this.sort.key];
    const x = value(a);
    const y = value(b);
    if (x === y) return a.terminal < b.terminal ? -1 : 1;
    if (x === null) return 1;
    if (y === null) return -1;
    const order = x < y ? -1 : 1;
    return this.sort.descending ? -order : order;
  }

  row(item) {
    let row = this.rows.get(item.terminal);
    if (!row) {
      row = new FleetRow(item.terminal);
      this.rows.set(item.terminal, row);
    }
    return row;
  }

  /** Puts the rows in `terminals` order; touches the DOM only when the order changed. */
  placeRows(terminals) {
    const same = terminals.length === this.order.length && terminals.every((t, i) => t === this.order[i]);
    if (same) return;
    this.order = terminals;
    this.body.replaceChildren(...terminals.map((t) => this.rows.get(t).element));
  }

  renderEmpty(count) {
    if (count) return;
    const text = this.items.length
      ? 'No terminal matches the search and filter.'
      : 'No terminals yet: point data boxes (or bmslink sim --fleet) at the platform\u2019s device port.';
    this.body.replaceChildren(h('tr', { class: 'empty-row' }, h('td', { colspan: COLUMNS.length }, text)));
    this.order = [];
  }

  renderTiles() {
    const { counts } = this;
    const power = this.items.reduce((sum, item) => sum + (item.online ? item.latest?.power_w ?? 0 : 0), 0);
    this.tiles.terminals.set(fmt.number(counts.terminals), counts.pending ? `${counts.pending} awaiting approval` : 'registered');
    this.tiles.online.set(fmt.number(counts.online), 'connected now');
    this.tiles.offline.set(fmt.number(counts.offline), 'not connected');
    this.tiles.alarms.set(fmt.number(counts.active_alarms), `on ${counts.with_alarms} terminal${counts.with_alarms === 1 ? '' : 's'}`);
    this.tiles.power.set(fmt.watts(power), power >= 0 ? 'charging (net)' : 'discharging (net)');
  }

  tickClock() {
    const now = Date.now();
    for (const terminal of this.order) this.rows.get(terminal)?.tick(now);
  }
}

/** A summary tile; `set(value, caption)`. */
function tile(label, tone, attrs = {}) {
  const value = h('span', { class: 'tile-value', text: '\u2013' });
  const caption = h('span', { class: 'tile-caption' });
  const element = h('div', { class: `tile tile-${tone}` }, h('span', { class: 'tile-label', text: label }),
    h('span', { ...attrs, class: 'tile-number' }, value), caption);
  return {
    element,
    set(number, text) {
      setText(value, number);
      setText(caption, text);
    },
  };
}

/** One terminal's row; its cells are updated in place. */
class FleetRow {
  constructor(terminal) {
    this.terminal = terminal;
    this.cells = {};
    const link = h('a', { href: links.pack(terminal), 'data-test': 'open-pack', class: 'terminal-id', text: terminal });
    this.name = h('span', { class: 'terminal-name' });
    this.badge = h('span', { class: 'badge' });
    this.socBar = h('span', { class: 'soc-fill' });
    this.socText = h('span', { class: 'soc-text' });
    const cell = (field, label, ...children) => {
      const td = h('td', { 'data-field': field, 'data-label': label }, children);
      this.cells[field] = td;
      return td;
    };
    this.element = h('tr', { 'data-terminal': terminal, class: 'clickable' },
      h('td', { class: 'terminal-cell', 'data-label': 'Terminal' }, h('div', { class: 'terminal-stack' }, link, this.name)),
      cell('state', 'State', this.badge),
      cell('soc', 'SOC', h('span', { class: 'soc' }, h('span', { class: 'soc-track' }, this.socBar), this.socText)),
      cell('voltage', 'Voltage'),
      cell('current', 'Current'),
      cell('power', 'Power'),
      cell('temperature', 'Temperature'),
      cell('last', 'Last upload'));
    for (const field of ['soc', 'voltage', 'current', 'power', 'temperature', 'last']) this.cells[field].classList.add('num');
    this.element.addEventListener('click', (event) => {
      if (!event.target.closest('a')) navigate(links.pack(terminal));
    });
  }

  update(item, now) {
    const latest = item.latest;
    const state = terminalState(item);
    this.element.dataset.state = state;
    setText(this.name, item.name ?? (item.registration === 'pending' ? 'awaiting approval' : ''));
    this.badge.className = `badge badge-${state}`;
    setText(this.badge, state);
    this.badge.title = item.active_alarms ? `${item.active_alarms} active alarm(s)` : '';
    const soc = latest?.soc;
    this.socBar.style.width = `${soc ?? 0}%`;
    this.socBar.className = `soc-fill${soc != null && soc <= 15 ? ' soc-low' : ''}`;
    setText(this.socText, fmt.percent(soc));
    setText(this.cells.voltage, fmt.volts(latest?.voltage_mv));
    setText(this.cells.current, fmt.amps(latest?.current_ma));
    this.cells.current.className = `num ${flowClass(latest?.current_ma)}`;
    setText(this.cells.power, fmt.watts(latest?.power_w));
    setText(this.cells.temperature, fmt.temperatureRange(latest?.temperatures));
    this.at = latest?.at ?? item.last_seen;
    this.cells.last.title = fmt.dateTime(this.at);
    this.tick(now);
  }

  tick(now) {
    setText(this.cells.last, fmt.ago(this.at, now));
  }
}

function flowClass(currentMa) {
  if (!currentMa) return 'flow-idle';
  return currentMa > 0 ? 'flow-charge' : 'flow-discharge';
}
