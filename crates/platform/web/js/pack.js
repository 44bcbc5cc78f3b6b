// One pack: live values, cell voltages, temperatures, MOSFET and balancer state, history
// charts with energy, and (operators) rename and registration.

import { api } from './api.js';
import { CellBars } from './cells.js';
import { card, h, notice, replace, setText, throttle } from './dom.js';
import * as fmt from './format.js';
import { HistoryPanel } from './history.js';
import { liveConnect, onLive } from './live.js';
import { links } from './router.js';
import { canWrite } from './session.js';
import { toast } from './toast.js';
import { terminalState } from './fleet.js';

const CLOCK_MS = 1000;

export function mount(view, [terminal]) {
  if (!terminal) {
    replace(view, notice('No terminal given.', 'error'));
    return null;
  }
  const page = new PackPage(view, terminal.toUpperCase());
  return () => page.destroy();
}

class PackPage {
  constructor(view, terminal) {
    this.terminal = terminal;
    this.view = view;
    this.controller = new AbortController();
    this.detail = null;
    this.render();
    this.load();
    const reload = throttle(() => this.load(), 1000);
    this.unsubscribe = [
      onLive('upload', (event) => event.terminal === terminal && reload()),
      onLive('alarm', (event) => event.terminal === terminal && reload()),
      onLive('refresh', reload),
    ];
    liveConnect(terminal);
    this.clock = setInterval(() => this.tick(), CLOCK_MS);
  }

  destroy() {
    this.controller.abort();
    clearInterval(this.clock);
    this.unsubscribe.forEach((off) => off());
    this.history.destroy();
  }

  render() {
    this.title = h('h1', { text: this.terminal });
    this.subtitle = h('p', { class: 'muted' });
    this.badge = h('span', { class: 'badge' });
    this.actions = h('div', { class: 'page-actions' });
    this.banner = h('div', { class: 'message-slot' });
    this.live = this.liveTiles();
    this.cells = new CellBars();
    this.statusBody = h('div', { class: 'status-grid' });
    this.history = new HistoryPanel(this.terminal);
    this.details = h('div', { class: 'details-body' });
    replace(this.view,
      h('nav', { class: 'crumbs' }, h('a', { href: links.fleet(), text: 'Fleet' }), ' / ', this.terminal),
      h('div', { class: 'page-head' },
        h('div', {}, h('div', { class: 'title-row' }, this.title, this.badge), this.subtitle),
        this.actions),
      this.banner,
      this.live.element,
      h('div', { class: 'pack-grid' },
        card('Cell voltages', this.cells.element, null, { class: 'card cells-card' }),
        card('Status', this.statusBody, null, { class: 'card status-card' })),
      card('History', this.history.element, null, { class: 'card history-card' }),
      h('details', { class: 'card details-card' },
        h('summary', { text: 'Every value of the latest upload' }), this.details));
    this.history.attach();
  }

  liveTiles() {
    const fields = {};
    const tileFor = (field, label) => {
      const value = h('span', { class: 'live-value', 'data-field': field, text: '\u2013' });
      const caption = h('span', { class: 'live-caption' });
      fields[field] = { value, caption };
      const gauge = field === 'soc' ? h('span', { class: 'live-gauge' }, this.socGauge) : null;
      return h('div', { class: `live-tile live-${field}` }, h('span', { class: 'live-label', text: label }), value, gauge, caption);
    };
    this.socGauge = h('span', { class: 'soc-fill' });
    const element = h('section', { class: 'live-tiles', 'data-test': 'pack-live' },
      tileFor('soc', 'State of charge'),
      tileFor('voltage', 'Voltage'),
      tileFor('current', 'Current'),
      tileFor('power', 'Power'),
      tileFor('updated', 'Last upload'));
    return { element, fields };
  }

  async load() {
    try {
      const path = `/terminals/${encodeURIComponent(this.terminal)}`;
      this.detail = await api.get(path, { signal: this.controller.signal });
      replace(this.banner, this.registrationBanner());
      this.update();
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.banner, notice(error.message, 'error'));
    }
  }

  update() {
    const detail = this.detail;
    const latest = detail.latest;
    const state = terminalState(detail);
    setText(this.title, detail.name || detail.terminal);
    document.title = `${detail.name || detail.terminal} \u00b7 bmslink`;
    this.badge.className = `badge badge-${state}`;
    setText(this.badge, state);
    setText(this.subtitle, this.describe(detail));
    if (!this.renaming) this.renderActions();
    this.updateLive(latest);
    this.cells.update(latest, detail.values);
    this.renderStatus(latest, detail.values);
    this.renderDetails(detail.values);
    this.history.appendLatest(latest);
  }

  describe(detail) {
    const parts = [`Terminal ${detail.terminal}`];
    const cells = detail.latest?.cell_count;
    if (cells) parts.push(`${cells} cells`);
    const chemistry = detail.values?.battery_type?.value;
    if (chemistry) parts.push(String(chemistry).toUpperCase());
    const capacity = detail.values?.nominal_capacity?.value;
    if (capacity) parts.push(`${capacity} Ah`);
    parts.push(`first seen ${fmt.dateTime(detail.first_seen)}`);
    return parts.join(' \u00b7 ');
  }

  renderActions() {
    this.renaming = false;
    const alarms = this.detail.active_alarms;
    replace(this.actions,
      h('a', { class: `btn ${alarms ? 'btn-danger-soft' : 'btn-ghost'}`, href: links.alarms(this.terminal),
        text: alarms ? `${alarms} active alarm${alarms === 1 ? '' : 's'}` : 'Alarms' }),
      canWrite() ? h('button', { class: 'btn btn-ghost', type: 'button', 'data-test': 'rename', text: 'Rename',
        onclick: () => this.openRename() }) : null,
      h('a', { class: 'btn btn-primary', href: links.settings(this.terminal), 'data-test': 'nav-settings', text: 'Settings' }));
  }

  updateLive(latest) {
    const { fields } = this.live;
    const set = (field, text, caption = '') => {
      setText(fields[field].value, text);
      setText(fields[field].caption, caption);
    };
    set('soc', fmt.percent(latest?.soc));
    this.socGauge.style.width = `${latest?.soc ?? 0}%`;
    this.socGauge.className = `soc-fill${latest && latest.soc <= 15 ? ' soc-low' : ''}`;
    set('voltage', fmt.volts(latest?.voltage_mv), latest ? `${fmt.number(latest.cell_count)} cells` : '');
    const flow = !latest?.current_ma ? 'idle' : latest.current_ma > 0 ? 'charging' : 'discharging';
    set('current', fmt.amps(latest?.current_ma, 2), latest ? flow : '');
    fields.current.value.className = `live-value flow-${flow === 'idle' ? 'idle' : flow === 'charging' ? 'charge' : 'discharge'}`;
    set('power', fmt.watts(latest?.power_w), latest ? flow : '');
    this.updatedAt = latest?.at ?? null;
    fields.updated.value.dataset.at = String(this.updatedAt ?? '');
    this.tick();
  }

  tick() {
    const field = this.live.fields.updated;
    setText(field.value, this.updatedAt ? fmt.ago(this.updatedAt) : 'never');
    setText(field.caption, this.updatedAt ? fmt.dateTime(this.updatedAt) : 'no upload yet');
  }

  renderStatus(latest, values) {
    if (!latest) {
      replace(this.statusBody, h('p', { class: 'muted', text: 'No upload yet.' }));
      return;
    }
    const status = latest.status?.names ?? [];
    const temps = latest.temperatures ?? {};
    const warnings = latest.warnings?.names ?? [];
    const switchValue = values?.balancing_switch?.value;
    replace(this.statusBody,
      group('Temperatures',
        pill('MOSFET', fmt.celsius(temps.mosfet), 'neutral', 'temperature-mosfet'),
        pill('Box', fmt.celsius(temps.box), 'neutral', 'temperature-box'),
        pill('Battery', fmt.celsius(temps.battery), 'neutral', 'temperature-battery')),
      group('Switches',
        onOff('Charge MOSFET', status.includes('charge_mosfet_on'), 'mosfet-charge'),
        onOff('Discharge MOSFET', status.includes('discharge_mosfet_on'), 'mosfet-discharge'),
        pill('Balancer', status.includes('balancing') ? 'balancing' : 'idle', status.includes('balancing') ? 'info' : 'neutral', 'balancer'),
        switchValue === undefined ? null : pill('Balancing', switchValue ? 'enabled' : 'disabled', 'neutral', 'balancing-switch')),
      group('Warnings', warnings.length
        ? warnings.map((w) => pill(null, fmt.humanize(w), 'bad', 'warning'))
        : [pill(null, 'No warnings', 'good', 'warnings-none')]),
      group('Pack',
        pill('Cycles', fmt.number(values?.cycle_count?.value), 'neutral', 'cycles'),
        pill('Record', fmt.number(latest.record), 'neutral', 'record')));
  }

  renderDetails(values) {
    const rows = Object.entries(values ?? {}).map(([name, v]) => h('tr', {},
      h('th', { scope: 'row', text: fmt.humanize(name) }),
      h('td', { class: 'mono', text: v.code }),
      h('td', { text: valueText(v) })));
    replace(this.details, rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table table-compact' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Value' }), h('th', { text: 'Code' }), h('th', { text: 'Reading' }))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted', text: 'No upload yet.' }));
  }

  registrationBanner() {
    const registration = this.detail.registration;
    if (registration === 'approved') return null;
    const text = registration === 'pending'
      ? 'This terminal is waiting for approval: its uploads are not stored yet.'
      : 'This terminal was rejected: its connections are closed.';
    const decide = (decision) => async () => {
      try {
        await api.put(`/terminals/${encodeURIComponent(this.terminal)}/registration`, { registration: decision });
        toast(`Terminal ${this.terminal} ${decision}.`, 'success');
        this.load();
      } catch (error) {
        toast(error.message, 'error');
      }
    };
    return h('div', { class: 'notice notice-warn banner' }, h('span', { text }),
      canWrite() ? h('span', { class: 'banner-actions' },
        registration !== 'approved' ? h('button', { class: 'btn btn-primary btn-small', type: 'button', text: 'Approve', onclick: decide('approved') }) : null,
        registration === 'pending' ? h('button', { class: 'btn btn-ghost btn-small', type: 'button', text: 'Reject', onclick: decide('rejected') }) : null)
        : null);
  }

  openRename() {
    const input = h('input', { class: 'input', 'data-test': 'rename-input', maxlength: 64, value: this.detail.name ?? '',
      'aria-label': 'Name', placeholder: 'e.g. Cabinet 12, bay 3' });
    this.renaming = true;
    const error = h('span', { class: 'form-error', role: 'alert' });
    const save = async (event) => {
      event.preventDefault();
      try {
        await api.patch(`/terminals/${encodeURIComponent(this.terminal)}`, { name: input.value.trim() || null });
        toast('Name saved.', 'success');
        this.renderActions();
        this.load();
      } catch (failure) {
        setText(error, failure.message);
      }
    };
    replace(this.actions, h('form', { class: 'rename-form', onsubmit: save }, input,
      h('button', { class: 'btn btn-primary', type: 'submit', 'data-test': 'rename-save', text: 'Save' }),
      h('button', { class: 'btn btn-ghost', type: 'button', text: 'Cancel', onclick: () => this.renderActions() }),
      error));
    input.focus();
    input.select();
  }
}

function group(title, ...items) {
  return h('div', { class: 'status-group' }, h('h3', { text: title }), h('div', { class: 'pills' }, items));
}

function pill(label, value, tone, test) {
  return h('span', { class: `pill pill-${tone}`, 'data-status': test },
    label ? h('span', { class: 'pill-label', text: label }) : null, h('span', { class: 'pill-value', text: value }));
}

function onOff(label, on, test) {
  return pill(label, on ? 'on' : 'off', on ? 'good' : 'bad', test);
}

function valueText(value) {
  const shown = Array.isArray(value.value) ? value.value.join(', ') || 'none' : String(value.value);
  return value.unit ? `${shown} ${value.unit}` : shown;
}
