// Per-cell voltage bars: lowest and highest marked, cells being balanced marked.
//
// The NW upload carries the balancer's on/off state (0x8C bit "balancing"), not which cells it
// bleeds. Passive balancers bleed every cell at least the trigger difference (0x9C) above the
// lowest cell once the cells are above the start voltage (0x9B), so that is what is marked
// while the balancer is on.

import { h, replace, setText } from './dom.js';
import * as fmt from './format.js';

/** Which cells the balancer is bleeding (see the module comment). */
export function balancingCells(cellsMv, balancerOn, values) {
  if (!balancerOn || !cellsMv.length) return cellsMv.map(() => false);
  const trigger = settingMv(values, 'balance_trigger_difference', 15);
  const start = settingMv(values, 'balance_start_voltage', 0);
  const lowest = Math.min(...cellsMv);
  return cellsMv.map((mv) => mv >= start && mv - lowest >= trigger);
}

/** A voltage setting of the latest upload in mV (`fallback` when absent). */
export function settingMv(values, name, fallback) {
  const value = values?.[name]?.value;
  return typeof value === 'number' ? Math.round(value * 1000) : fallback;
}

/** The cells card's body; `update(telemetry, values)` re-renders in place. */
export class CellBars {
  constructor() {
    this.stats = {
      min: stat('Lowest'), max: stat('Highest'), spread: stat('Spread'), mean: stat('Average'),
    };
    this.grid = h('div', { class: 'cells' });
    this.legend = h('p', { class: 'cells-legend muted' },
      h('span', { class: 'key key-min' }), 'lowest ', h('span', { class: 'key key-max' }), 'highest ',
      h('span', { class: 'key key-balancing' }), 'balancing');
    this.element = h('div', {}, h('div', { class: 'stat-row' }, Object.values(this.stats).map((s) => s.element)),
      this.grid, this.legend);
    this.bars = [];
  }

  update(latest, values) {
    const cells = latest?.cells_mv ?? [];
    if (!cells.length) {
      replace(this.grid, h('p', { class: 'muted', text: 'No cell voltages reported yet.' }));
      this.bars = [];
      return;
    }
    const balancerOn = (latest.status?.names ?? []).includes('balancing');
    const balancing = balancingCells(cells, balancerOn, values);
    const low = settingMv(values, 'cell_under_voltage_protection', Math.min(...cells) - 200);
    const high = settingMv(values, 'cell_over_voltage_protection', Math.max(...cells) + 200);
    const lowest = Math.min(...cells);
    const highest = Math.max(...cells);
    this.renderStats(cells, lowest, highest);
    if (this.bars.length !== cells.length) this.build(cells.length);
    cells.forEach((mv, index) => {
      this.bars[index].update(mv, {
        fill: clamp((mv - low) / Math.max(high - low, 1), 0.02, 1),
        min: mv === lowest && lowest !== highest,
        max: mv === highest && lowest !== highest,
        balancing: balancing[index],
      });
    });
  }

  renderStats(cells, lowest, highest) {
    const mean = cells.reduce((a, b) => a + b, 0) / cells.length;
    this.stats.min.set(fmt.millivolts(lowest), `cell ${cells.indexOf(lowest) + 1}`);
    this.stats.max.set(fmt.millivolts(highest), `cell ${cells.indexOf(highest) + 1}`);
    this.stats.spread.set(fmt.millivolts(highest - lowest), `${cells.length} cells`);
    this.stats.mean.set(fmt.millivolts(Math.round(mean)), 'per cell');
  }

  build(count) {
    this.bars = Array.from({ length: count }, (_, index) => new CellBar(index + 1));
    // One row up to 16 cells, else two even rows (CSS caps the row on phones).
    this.grid.style.setProperty('--per-row', String(count <= 16 ? count : Math.ceil(count / 2)));
    replace(this.grid, this.bars.map((bar) => bar.element));
  }
}

class CellBar {
  constructor(number) {
    this.fill = h('span', { class: 'cell-fill' });
    this.value = h('span', { class: 'cell-value' });
    this.element = h('div', { class: 'cell', 'data-test': 'cell-bar', 'data-cell': number, 'data-balancing': 'false' },
      h('span', { class: 'cell-track' }, this.fill),
      this.value,
      h('span', { class: 'cell-number', text: `#${number}` }));
  }

  update(mv, { fill, min, max, balancing }) {
    this.fill.style.height = `${(fill * 100).toFixed(1)}%`;
    setText(this.value, String(mv));
    this.element.dataset.balancing = String(balancing);
    this.element.dataset.mv = String(mv);
    this.element.classList.toggle('cell-min', min);
    this.element.classList.toggle('cell-max', max);
    this.element.classList.toggle('cell-balancing', balancing);
    this.element.title = `Cell ${this.element.dataset.cell}: ${mv} mV${balancing ? ' (balancing)' : ''}`;
  }
}

function stat(label) {
  const value = h('span', { class: 'stat-value' });
  const caption = h('span', { class: 'stat-caption' });
  return {
    element: h('div', { class: 'stat' }, h('span', { class: 'stat-label', text: label }), value, caption),
    set(text, note) {
      setText(value, text);
      setText(caption, note);
    },
  };
}

const clamp = (value, low, high) => Math.min(Math.max(value, low), high);
