// Time-series charts with uPlot (vendor/uplot, global `uPlot`): sized to their container,
// cursors synchronised across the charts of one page.

import { h } from './dom.js';

const AXIS = { stroke: '#64748b', grid: { stroke: '#eef1f5', width: 1 }, ticks: { stroke: '#e2e8f0', width: 1 } };
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
/** Time labels wanted across a chart, whatever its width. */
const X_LABELS = 7;

/**
 * A chart in `container`. `series`: [{label, color, fill?}], `unit` for the axis and legend,
 * `decimals` for values. Returns {setData(xsMs, ys, range), destroy()}.
 */
export function createChart(container, { title, unit, series, decimals = 1, height = 190, sync = 'pack' }) {
  const plotHost = h('div', { class: 'chart-plot' });
  const empty = h('div', { class: 'chart-empty', text: 'No data in this range', hidden: true });
  let range = null;
  container.append(h('div', { class: 'chart-title' }, title, h('span', { class: 'chart-unit', text: unit })), plotHost, empty);
  if (typeof uPlot === 'undefined') {
    empty.textContent = 'Charts are unavailable (uPlot did not load).';
    empty.hidden = false;
    return { setData() {}, destroy() {} };
  }
  const format = (value) => (value == null ? '\u2013' : `${value.toFixed(decimals)} ${unit}`);
  const options = {
    width: Math.max(plotHost.clientWidth || container.clientWidth || 300, 200),
    height,
    cursor: { sync: { key: sync }, drag: { x: true, y: false } },
    legend: { show: true, live: true },
    scales: { x: { time: true } },
    axes: [
      // About as many time labels on a wide chart as on a narrow one, so the full-width chart
      // steps like the others (same range, same steps).
      { ...AXIS, font: FONT, space: (_u, _axis, _min, _max, plotDim) => Math.max(70, plotDim / X_LABELS) },
      { ...AXIS, font: FONT, size: 52, space: 28, values: (_, ticks) => ticks.map((t) => compact(t)) },
    ],
    series: [
      { value: (_, ts) => (ts == null ? '\u2013' : new Date(ts * 1000).toLocaleString()) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.75,
        fill: s.fill ?? null,
        value: (_, value) => format(value),
      })),
    ],
  };
  let plot = new uPlot(options, [[], ...series.map(() => [])], plotHost);
  const resize = new ResizeObserver(() => {
    const width = plotHost.clientWidth;
    if (plot && width > 0 && Math.abs(width - plot.width) > 1) {
      plot.setSize({ width, height });
      if (range) plot.setScale('x', range);
    }
  });
  resize.observe(plotHost);
  return {
    /**
     * New points (x in ms); `span` {from, to} in ms fixes the time axis to the chosen range,
     * with points or without (`loading`: they are on their way).
     */
    setData(xsMs, ys, span = null, { loading = false } = {}) {
      empty.hidden = xsMs.length > 0;
      empty.textContent = loading ? 'Loading\u2026' : 'No data in this range';
      range = span ? { min: span.from / 1000, max: span.to / 1000 } : null;
      plot.setData([xsMs.map((ms) => ms / 1000), ...ys]);
      if (range) plot.setScale('x', range);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
      plot = null;
    },
  };
}

/** Axis labels: 1.2k instead of 1200. */
function compact(value) {
  if (Math.abs(value) >= 10000) return `${(value / 1000).toFixed(0)}k`;
  if (Math.abs(value) >= 1000) return `${(value / 1000).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}
