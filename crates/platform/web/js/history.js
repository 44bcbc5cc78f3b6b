// The pack page's history: voltage, current, power, SOC and temperature charts over the last
// hour (raw uploads or 1-minute roll-ups), day (1-minute roll-ups) or month (1-hour
// roll-ups), with the energy charged and discharged over the range.

import { api, query } from './api.js';
import { createChart } from './charts.js';
import { h, replace, setText } from './dom.js';
import * as fmt from './format.js';

const HOUR = 3600e3;
const RANGES = {
  hour: { label: 'Hour', span: HOUR, resolutions: ['raw', 'minute'] },
  day: { label: 'Day', span: 24 * HOUR, resolutions: ['minute'] },
  month: { label: 'Month', span: 30 * 24 * HOUR, resolutions: ['hour'] },
};
const RELOAD_MS = 60e3;
const MAX_GAP_MS = 10 * 60e3;

const CHARTS = [
  { key: 'voltage', title: 'Voltage', unit: 'V', decimals: 2,
    series: [{ label: 'Voltage', color: '#0284c7', fill: 'rgba(2,132,199,0.08)' }],
    values: (p) => [p.voltage_mv / 1000] },
  { key: 'current', title: 'Current', unit: 'A', decimals: 1,
    series: [{ label: 'Current', color: '#7c3aed', fill: 'rgba(124,58,237,0.07)' }],
    values: (p) => [p.current_ma / 1000] },
  { key: 'power', title: 'Power', unit: 'W', decimals: 0,
    series: [{ label: 'Power', color: '#0d9488', fill: 'rgba(13,148,136,0.08)' }],
    values: (p) => [p.power_w] },
  { key: 'soc', title: 'State of charge', unit: '%', decimals: 0,
    series: [{ label: 'SOC', color: '#16a34a', fill: 'rgba(22,163,74,0.08)' }],
    values: (p) => [p.soc] },
  { key: 'temperature', title: 'Temperature', unit: '\u00b0C', decimals: 0,
    series: [{ label: 'Lowest', color: '#2563eb' }, { label: 'Highest', color: '#ea580c' }],
    values: (p) => [p.temperature_min, p.temperature_max] },
];

export class HistoryPanel {
  constructor(terminal) {
    this.terminal = terminal;
    this.range = 'hour';
    this.resolution = 'raw';
    this.points = [];
    this.controller = null;
    this.build();
    this.reloadTimer = setInterval(() => this.load(), RELOAD_MS);
  }

  build() {
    this.rangeButtons = Object.entries(RANGES).map(([key, range]) => h('button', {
      type: 'button', class: 'segment', 'data-range': key, text: range.label, onclick: () => this.setRange(key),
    }));
    this.resolutionButtons = ['raw', 'minute'].map((key) => h('button', {
      type: 'button', class: 'segment', 'data-resolution': key, text: key === 'raw' ? 'Every upload' : 'Per minute',
      onclick: () => this.setResolution(key),
    }));
    this.resolutionGroup = h('div', { class: 'segments segments-small', role: 'group', 'aria-label': 'Resolution' }, this.resolutionButtons);
    this.charged = h('span', { class: 'energy-value', 'data-test': 'energy-charged', text: '\u2013' });
    this.discharged = h('span', { class: 'energy-value', 'data-test': 'energy-discharged', text: '\u2013' });
    this.status = h('span', { class: 'muted history-status' });
    this.message = h('div', { class: 'message-slot' });
    const grid = h('div', { class: 'charts' });
    this.charts = CHARTS.map((spec) => {
      const box = h('div', { class: `chart chart-${spec.key}`, 'data-test': `chart-${spec.key}` });
      grid.append(box);
      return { spec, box, chart: null };
    });
    this.element = h('div', { class: 'history' },
      h('div', { class: 'history-bar' },
        h('div', { class: 'segments', role: 'group', 'aria-label': 'Range' }, this.rangeButtons),
        this.resolutionGroup,
        this.status),
      h('div', { class: 'energy' },
        energyTile('Charged', this.charged, 'energy-in'),
        energyTile('Discharged', this.discharged, 'energy-out')),
      this.message,
      grid);
    this.markButtons();
  }

  /** Creates the charts once the panel is in the document (they size to it), then loads. */
  attach() {
    for (const entry of this.charts) {
      entry.chart = createChart(entry.box, entry.spec);
    }
    this.clear();
    this.load();
  }

  destroy() {
    clearInterval(this.reloadTimer);
    this.controller?.abort();
    for (const entry of this.charts) entry.chart?.destroy();
  }

  setRange(range) {
    this.range = range;
    this.resolution = RANGES[range].resolutions[0];
    this.markButtons();
    this.clear();
    this.load();
  }

  setResolution(resolution) {
    this.resolution = resolution;
    this.markButtons();
    this.clear();
    this.load();
  }

  /** Drops the previous range's points: the axes show the chosen range at once, not the old one. */
  clear(loading = true) {
    this.points = [];
    this.render({ loading });
  }

  markButtons() {
    for (const b of this.rangeButtons) b.setAttribute('aria-pressed', String(b.dataset.range === this.range));
    for (const b of this.resolutionButtons) b.setAttribute('aria-pressed', String(b.dataset.resolution === this.resolution));
    this.resolutionGroup.hidden = this.range !== 'hour';
  }

  async load() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    const to = Date.now();
    const from = to - RANGES[this.range].span;
    setText(this.status, 'Loading\u2026');
    try {
      const path = `/terminals/${encodeURIComponent(this.terminal)}/history${query({ from, to, resolution: this.resolution })}`;
      const history = await api.get(path, { signal: controller.signal });
      this.points = history.points;
      this.loadedRange = `${this.range}/${this.resolution}`;
      replace(this.message);
      this.render();
    } catch (error) {
      if (error.name === 'AbortError') return;
      replace(this.message, h('div', { class: 'notice notice-error', role: 'alert', text: error.message }));
      if (this.loadedRange !== `${this.range}/${this.resolution}`) this.clear(false);
    } finally {
      if (this.controller === controller) setText(this.status, this.describe());
    }
  }

  /** Adds the latest upload to the raw hour charts without a reload. */
  appendLatest(summary) {
    if (this.range !== 'hour' || this.resolution !== 'raw' || !summary) return;
    const last = this.points[this.points.length - 1];
    if (last && last.at >= summary.at) return;
    const temps = Object.values(summary.temperatures ?? {}).filter((t) => t != null);
    this.points.push({
      at: summary.at, samples: 1, voltage_mv: summary.voltage_mv, current_ma: summary.current_ma,
      power_w: summary.power_w, soc: summary.soc,
      temperature_min: temps.length ? Math.min(...temps) : null,
      temperature_max: temps.length ? Math.max(...temps) : null,
      charged_wh: 0, discharged_wh: 0,
    });
    const from = Date.now() - RANGES.hour.span;
    while (this.points.length && this.points[0].at < from) this.points.shift();
    this.render();
    setText(this.status, this.describe());
  }

  render({ loading = false } = {}) {
    const xs = this.points.map((p) => p.at);
    const to = Date.now();
    const range = { from: to - RANGES[this.range].span, to };
    for (const { spec, chart } of this.charts) {
      if (!chart) continue;
      const columns = spec.series.map((_, index) => this.points.map((p) => spec.values(p)[index] ?? null));
      chart.setData(xs, columns, range, { loading });
    }
    const { charged, discharged } = this.resolution === 'raw' ? integrate(this.points) : sumRollups(this.points);
    setText(this.charged, loading ? '\u2013' : fmt.energy(charged));
    setText(this.discharged, loading ? '\u2013' : fmt.energy(discharged));
  }

  describe() {
    const what = { raw: 'uploads', minute: 'one-minute averages', hour: 'one-hour averages' }[this.resolution];
    return `${fmt.number(this.points.length)} ${what}`;
  }
}

/** Energy of roll-ups: they carry it. */
function sumRollups(points) {
  return {
    charged: points.reduce((sum, p) => sum + (p.charged_wh || 0), 0),
    discharged: points.reduce((sum, p) => sum + (p.discharged_wh || 0), 0),
  };
}

/**
 * Energy of raw uploads (which carry none): power integrated over the time to the next
 * upload, as the roll-ups do; gaps longer than MAX_GAP_MS (the pack was offline) count nothing.
 */
function integrate(points) {
  let charged = 0;
  let discharged = 0;
  for (let i = 0; i + 1 < points.length; i += 1) {
    const hours = (points[i + 1].at - points[i].at) / HOUR;
    if (hours <= 0 || hours * HOUR > MAX_GAP_MS) continue;
    const wh = points[i].power_w * hours;
    if (wh > 0) charged += wh;
    else discharged -= wh;
  }
  return { charged, discharged };
}

function energyTile(label, value, tone) {
  return h('div', { class: `energy-tile ${tone}` }, h('span', { class: 'energy-label', text: `Energy ${label.toLowerCase()}` }), value,
    h('span', { class: 'energy-caption', text: 'over the range' }));
}
