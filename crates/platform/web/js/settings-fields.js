// The settings form's fields: one input or select per setting of the schema
// (GET /api/settings/schema), its value as text, and the browser-side checks (kind, range,
// decimals, length) that mirror the server's.

import { h, replace, setText } from './dom.js';
import * as fmt from './format.js';

export const GROUPS = [
  { key: 'voltage', title: 'Voltage' },
  { key: 'current', title: 'Current' },
  { key: 'temperature', title: 'Temperature' },
  { key: 'balancing', title: 'Balancing' },
  { key: 'capacity', title: 'Capacity' },
  { key: 'system', title: 'System' },
];

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

/** A device value (`{value, unit, raw}` or a bare value) as the form's text. */
export function valueToText(setting, reported) {
  const value = reported && typeof reported === 'object' && 'value' in reported ? reported.value : reported;
  if (value === null || value === undefined) return '';
  if (setting.kind === 'switch') {
    if (typeof value === 'boolean') return value ? 'on' : 'off';
    return ['on', 'true', '1'].includes(String(value).toLowerCase()) ? 'on' : 'off';
  }
  if (setting.kind === 'number') {
    const number = Number(value);
    return Number.isFinite(number) ? number.toFixed(setting.decimals) : String(value);
  }
  return String(value);
}

/** Whether two texts mean the same value of `setting` ("3.65" and "3.650" do). */
export function sameValue(setting, a, b) {
  if (setting.kind === 'number' && NUMBER.test(a.trim()) && NUMBER.test(b.trim())) {
    return Number(a) === Number(b);
  }
  return a.trim() === b.trim();
}

/** The range of a numeric setting as text, "1.000 – 4.500 V". */
export function rangeText(setting) {
  if (setting.kind !== 'number' || setting.min == null) return '';
  const unit = setting.unit ? ` ${setting.unit}` : '';
  return `${fmt.number(setting.min, setting.decimals)} \u2013 ${fmt.number(setting.max, setting.decimals)}${unit}`;
}

/** What is wrong with `text` as a value of `setting`, or null. */
export function validate(setting, text) {
  const value = text.trim();
  switch (setting.kind) {
    case 'number':
      return checkNumber(setting, value);
    case 'switch':
      return value === 'on' || value === 'off' ? null : 'Choose on or off.';
    case 'choice':
      return (setting.choices ?? []).includes(value) ? null : `Choose one of ${(setting.choices ?? []).join(', ')}.`;
    default:
      return checkText(setting, text);
  }
}

function checkNumber(setting, value) {
  if (!value) return 'Enter a value.';
  if (!NUMBER.test(value)) return 'Enter a number, e.g. ' + fmt.number(setting.min ?? 0, setting.decimals).replace(/,/g, '') + '.';
  const decimals = (value.split('.')[1] ?? '').length;
  if (decimals > setting.decimals) {
    return setting.decimals ? `At most ${setting.decimals} decimal${setting.decimals === 1 ? '' : 's'}.` : 'Enter a whole number.';
  }
  const number = Number(value);
  if (setting.min != null && (number < setting.min || number > setting.max)) return `Must be ${rangeText(setting)}.`;
  return null;
}

function checkText(setting, text) {
  if (!PRINTABLE.test(text)) return 'Only printable ASCII characters.';
  if (setting.max_length != null && text.length > setting.max_length) return `At most ${setting.max_length} characters.`;
  return null;
}

/** One setting's field: `element`, `value()`, `set(text)`, `showError(text)`. */
export class SettingField {
  constructor(setting, { readOnly, onChange }) {
    this.setting = setting;
    this.original = '';
    this.readOnly = readOnly;
    this.input = this.createInput(readOnly);
    this.input.addEventListener(setting.kind === 'number' || setting.kind === 'text' ? 'input' : 'change', () => {
      this.element.classList.remove('preset-changed');
      this.refresh();
      onChange();
    });
    this.input.addEventListener('blur', () => this.showError(validate(setting, this.value())));
    this.hint = h('span', { class: 'field-hint' });
    this.errorSlot = h('div', { class: 'field-error-slot' });
    const id = `setting-${setting.name}`;
    this.input.id = id;
    const unit = setting.unit && setting.kind === 'number' ? h('span', { class: 'unit', text: setting.unit }) : null;
    this.element = h('div', { class: 'field', 'data-field-name': setting.name },
      h('label', { for: id }, fmt.humanize(setting.name), h('span', { class: 'code', text: setting.code })),
      h('div', { class: `input-wrap${unit ? ' has-unit' : ''}` }, this.input, unit),
      this.hint,
      this.errorSlot);
    this.element.title = setting.description;
  }

  createInput(readOnly) {
    const { setting } = this;
    const attrs = { 'data-setting': setting.name, class: 'input', disabled: readOnly, 'aria-describedby': `hint-${setting.name}` };
    if (setting.kind === 'switch') {
      return h('select', attrs, h('option', { value: 'on', text: 'on' }), h('option', { value: 'off', text: 'off' }));
    }
    if (setting.kind === 'choice') {
      return h('select', attrs, (setting.choices ?? []).map((c) => h('option', { value: c, text: c.toUpperCase() })));
    }
    if (setting.kind === 'number') {
      return h('input', { ...attrs, type: 'text', inputmode: setting.min != null && setting.min < 0 ? 'text' : 'decimal', autocomplete: 'off', spellcheck: 'false' });
    }
    // The BMS's own parameter-change password (0xB2) is a secret: hidden like one.
    const type = setting.name === 'password' ? 'password' : 'text';
    return h('input', { ...attrs, type, maxlength: setting.max_length ?? null, autocomplete: 'off', spellcheck: 'false' });
  }

  value() {
    return this.input.value;
  }

  /** Sets the value the device reported (the baseline of "changed"). */
  setOriginal(text) {
    this.original = text;
    this.set(text);
  }

  set(text) {
    if (this.setting.kind === 'switch' || this.setting.kind === 'choice') {
      const known = [...this.input.options].some((o) => o.value === text);
      if (!known && text) this.input.append(h('option', { value: text, text }));
    }
    this.input.value = text;
    this.refresh();
  }

  changed() {
    return !sameValue(this.setting, this.value(), this.original);
  }

  refresh() {
    const changed = this.changed();
    this.element.classList.toggle('changed', changed);
    this.hint.id = `hint-${this.setting.name}`;
    const range = rangeText(this.setting);
    const was = changed && this.original !== '' ? `was ${this.original}` : '';
    setText(this.hint, [range, was].filter(Boolean).join(' \u00b7 '));
    if (this.errorSlot.firstChild && !validate(this.setting, this.value())) this.showError(null);
  }

  showError(text) {
    this.element.classList.toggle('invalid', Boolean(text));
    this.input.setAttribute('aria-invalid', String(Boolean(text)));
    replace(this.errorSlot, text ? h('span', { class: 'field-error', 'data-error': this.setting.name, role: 'alert', text }) : null);
  }

  setDisabled(disabled) {
    this.input.disabled = disabled || this.readOnly;
  }
}
