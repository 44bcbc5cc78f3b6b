// The settings write's confirmation dialog (old -> new) and its outcome per setting.

import { openModal } from './dialog.js';
import { h } from './dom.js';
import * as fmt from './format.js';

/** Asks to confirm the write of `fields`; resolves to {password} or null (cancelled). */
export function confirmWrite(terminal, fields) {
  return new Promise((resolve) => {
    const password = h('input', { type: 'password', class: 'input', 'data-test': 'write-password', autocomplete: 'off',
      maxlength: 10, placeholder: 'only if the BMS has one', id: 'write-password' });
    const rows = fields.map((f) => h('tr', { 'data-change': f.setting.name },
      h('th', { scope: 'row', text: fmt.humanize(f.setting.name) }),
      h('td', { class: 'old', text: withUnit(f.setting, f.original) }),
      h('td', { class: 'arrow', text: '\u2192' }),
      h('td', { class: 'new', text: withUnit(f.setting, f.value().trim()) })));
    const dialog = h('dialog', { class: 'dialog', 'data-test': 'confirm-dialog', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title', text: `Write ${fields.length} setting${fields.length === 1 ? '' : 's'} to ${terminal}?` }),
      h('p', { class: 'muted', text: 'The platform sends each value to the BMS and reads it back.' }),
      h('div', { class: 'table-wrap dialog-table' }, h('table', { class: 'table table-compact changes-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Setting' }), h('th', { text: 'Now' }), h('th'), h('th', { text: 'New' }))),
        h('tbody', {}, rows))),
      h('label', { class: 'dialog-field', for: 'write-password' }, 'BMS password', password),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'cancel-write', text: 'Cancel', onclick: () => finish(null) }),
        h('button', { type: 'button', class: 'btn btn-primary', 'data-test': 'confirm-write', text: 'Write settings',
          onclick: () => finish({ password: password.value }) })));
    const finish = openModal(dialog, resolve, dialog.querySelector('[data-test=confirm-write]'));
  });
}

/** The write's result: one line per setting with the value read back, or its error. */
export function renderOutcome(written) {
  const items = written.settings.map((outcome) => {
    const label = fmt.humanize(outcome.identifier);
    const readBack = shown(outcome.read_back);
    const text = outcome.ok
      ? `${shown(outcome.old)} \u2192 ${readBack} (read back)`
      : outcome.error || 'not applied';
    return h('li', { class: `result ${outcome.ok ? 'result-ok' : 'result-failed'}`, 'data-result': outcome.identifier, 'data-ok': String(outcome.ok) },
      h('span', { class: 'result-mark', 'aria-hidden': 'true', text: outcome.ok ? '\u2713' : '\u2717' }),
      h('strong', { text: label }),
      h('span', { class: 'result-text', text }),
      !outcome.ok && outcome.read_back != null ? h('span', { class: 'muted', text: ` device reports ${readBack}` }) : null);
  });
  return h('section', { class: `card results ${written.ok ? 'results-ok' : 'results-failed'}`, 'data-test': 'settings-results' },
    h('div', { class: 'card-head' }, h('h2', { text: written.ok ? 'Written and read back' : 'Write finished with errors' }),
      h('span', { class: 'muted', text: `command ${written.command}` })),
    h('ul', { class: 'result-list' }, items));
}

/** A `{value, unit, raw}` (or bare value) as text with its unit. */
function shown(reported) {
  if (reported === null || reported === undefined) return 'unknown';
  if (typeof reported !== 'object') return String(reported);
  const value = typeof reported.value === 'boolean' ? (reported.value ? 'on' : 'off') : String(reported.value);
  return reported.unit ? `${value} ${reported.unit}` : value;
}

function withUnit(setting, text) {
  if (!text) return '\u2013';
  return setting.kind === 'number' && setting.unit ? `${text} ${setting.unit}` : text;
}
