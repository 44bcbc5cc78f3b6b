// A pack's settings: read from the device (GET .../settings, seconds), grouped with units and
// ranges, chemistry presets, checks in the browser, a confirmation listing old -> new, and
// the write's outcome per setting with the value read back (PATCH .../settings).

import { api, query } from './api.js';
import { h, notice, replace, setText } from './dom.js';
import * as fmt from './format.js';
import { links } from './router.js';
import { canWrite } from './session.js';
import { toast } from './toast.js';
import { GROUPS, SettingField, validate, valueToText } from './settings-fields.js';
import { confirmWrite, renderOutcome } from './settings-write.js';

export function mount(view, [terminal]) {
  if (!terminal) {
    replace(view, notice('No terminal given.', 'error'));
    return null;
  }
  const page = new SettingsPage(view, terminal.toUpperCase());
  return () => page.destroy();
}

class SettingsPage {
  constructor(view, terminal) {
    this.view = view;
    this.terminal = terminal;
    this.writer = canWrite();
    this.fields = new Map();
    this.controller = new AbortController();
    this.busy = false;
    this.renderShell();
    this.start();
  }

  destroy() {
    this.controller.abort();
    clearInterval(this.progressTimer);
  }

  renderShell() {
    this.title = h('h1', { text: 'Settings' });
    this.subtitle = h('p', { class: 'muted', text: `Terminal ${this.terminal}` });
    this.readButton = h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'settings-read', text: 'Read from device',
      onclick: () => this.readDevice() });
    this.status = h('div', { class: 'settings-status', 'data-test': 'settings-status', 'data-state': 'loading', role: 'status' });
    this.source = h('span', { class: 'muted settings-source' });
    this.presetBar = h('div', { class: 'preset-bar' });
    this.results = h('div', { class: 'message-slot' });
    this.form = h('form', { class: 'settings-form', 'data-test': 'settings-form', novalidate: true });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.save();
    });
    this.changes = h('span', { class: 'muted' });
    this.saveBar = this.writer ? h('div', { class: 'save-bar' }, this.changes,
      h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'settings-discard', text: 'Discard changes', onclick: () => this.discard() }),
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-test': 'settings-save', text: 'Review and save\u2026' })) : null;
    replace(this.view,
      h('nav', { class: 'crumbs' }, h('a', { href: links.fleet(), text: 'Fleet' }), ' / ',
        h('a', { href: links.pack(this.terminal), text: this.terminal }), ' / Settings'),
      h('div', { class: 'page-head' }, h('div', {}, this.title, this.subtitle), h('div', { class: 'page-actions' }, this.readButton)),
      h('section', { class: 'card settings-top' }, this.status, this.source, this.presetBar),
      this.results,
      this.form);
    if (!this.writer) {
      this.view.insertBefore(notice('You have the viewer role: settings are shown read-only.', 'info', { 'data-test': 'read-only' }), this.form);
    }
  }

  /** The pack's latest upload (values to start from), the schema for its size, then a read. */
  async start() {
    this.setStatus('loading', 'Loading the settings schema\u2026');
    try {
      const detail = await api.get(`/terminals/${encodeURIComponent(this.terminal)}`, { signal: this.controller.signal });
      setText(this.title, `Settings \u00b7 ${detail.name || detail.terminal}`);
      const cells = detail.values?.cell_count_setting?.value ?? detail.latest?.cell_count;
      const capacity = detail.values?.nominal_capacity?.value;
      const schemaQuery = query({ cells: inRange(cells, 3, 32), capacity_ah: inRange(capacity, 1, 100000) });
      this.schema = await api.get(`/settings/schema${schemaQuery}`, { signal: this.controller.signal });
      this.buildForm();
      if (detail.latest) {
        this.fill(detail.values, `Showing the values of the latest upload (${fmt.ago(detail.latest.at)}).`);
      }
      await this.readDevice();
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.setStatus('error', error.message);
    }
  }

  buildForm() {
    const byGroup = new Map(GROUPS.map((g) => [g.key, []]));
    for (const setting of this.schema.settings) {
      const field = new SettingField(setting, { readOnly: !this.writer, onChange: () => this.countChanges() });
      this.fields.set(setting.name, field);
      if (!byGroup.has(setting.group)) byGroup.set(setting.group, []);
      byGroup.get(setting.group).push(field);
    }
    const sections = [...byGroup.entries()].filter(([, fields]) => fields.length).map(([key, fields]) => {
      const title = GROUPS.find((g) => g.key === key)?.title ?? fmt.humanize(key);
      return h('fieldset', { class: 'card settings-group', 'data-group': key },
        h('legend', { text: title }), h('div', { class: 'fields' }, fields.map((f) => f.element)));
    });
    replace(this.form, h('div', { class: 'settings-groups' }, sections), this.saveBar);
    if (this.writer) this.renderPresets();
    this.countChanges();
  }

  renderPresets() {
    const select = h('select', { class: 'input', 'data-test': 'preset', 'aria-label': 'Chemistry preset' },
      this.schema.presets.map((p) => h('option', { value: p.chemistry, text: p.chemistry.toUpperCase() })));
    const apply = h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'apply-preset', text: 'Apply preset',
      onclick: () => this.applyPreset(select.value) });
    const first = this.schema.presets[0];
    const note = first ? `for ${first.cells} cells, ${fmt.number(first.capacity_ah)} Ah` : '';
    replace(this.presetBar, h('label', { class: 'preset-label', text: 'Chemistry preset' }), select, apply,
      h('span', { class: 'muted', text: note }));
  }

  /** Fills the form from device values (`{name: {value, unit, raw}}`) and makes them the baseline. */
  fill(values, sourceText) {
    for (const [name, field] of this.fields) {
      if (values && name in values) field.setOriginal(valueToText(field.setting, values[name]));
      field.element.classList.remove('preset-changed');
    }
    setText(this.source, sourceText);
    this.countChanges();
  }

  async readDevice() {
    if (this.busy || !this.schema) return;
    this.setBusy(true);
    this.progress('reading', 'Reading every setting from the device');
    try {
      const read = await api.get(`/terminals/${encodeURIComponent(this.terminal)}/settings`, { signal: this.controller.signal });
      this.fill(read.values, `Values read from the device at ${fmt.dateTime(Date.now())}.`);
      this.setStatus('ready', `Read ${Object.keys(read.values ?? {}).length} values from the device.`);
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.setStatus('error', `Could not read from the device: ${error.message}`);
    } finally {
      this.setBusy(false);
    }
  }

  applyPreset(chemistry) {
    const preset = this.schema.presets.find((p) => p.chemistry === chemistry);
    if (!preset) return;
    const changed = [];
    for (const [name, text] of Object.entries(preset.values)) {
      const field = this.fields.get(name);
      if (!field) continue;
      field.set(String(text));
      field.element.classList.toggle('preset-changed', field.changed());
      if (field.changed()) changed.push(name);
    }
    this.countChanges();
    const summary = changed.length
      ? `${chemistry.toUpperCase()} preset: ${changed.length} setting${changed.length === 1 ? '' : 's'} would change (highlighted). Review, then save.`
      : `${chemistry.toUpperCase()} preset: the pack already has these values.`;
    this.setStatus('preset', summary);
    this.form.querySelector('.preset-changed')?.scrollIntoView({ block: 'center', behavior: 'smooth' });
  }

  discard() {
    for (const field of this.fields.values()) {
      field.set(field.original);
      field.showError(null);
      field.element.classList.remove('preset-changed');
    }
    this.countChanges();
    this.setStatus('ready', 'Changes discarded.');
  }

  countChanges() {
    const count = [...this.fields.values()].filter((f) => f.changed()).length;
    setText(this.changes, count ? `${count} unsaved change${count === 1 ? '' : 's'}` : 'No changes');
    this.saveBar?.classList.toggle('has-changes', count > 0);
  }

  async save() {
    if (!this.writer || this.busy) return;
    const changed = [...this.fields.values()].filter((f) => f.changed());
    const invalid = changed.filter((f) => {
      const error = validate(f.setting, f.value());
      f.showError(error);
      return Boolean(error);
    });
    if (invalid.length) {
      this.setStatus('invalid', `Fix ${invalid.length} setting${invalid.length === 1 ? '' : 's'} before saving.`);
      invalid[0].input.focus();
      return;
    }
    if (!changed.length) {
      this.setStatus('ready', 'Nothing to save: no setting was changed.');
      return;
    }
    const decision = await confirmWrite(this.terminal, changed);
    if (decision) await this.write(changed, decision.password);
  }

  async write(changed, password) {
    const values = Object.fromEntries(changed.map((f) => [f.setting.name, f.value().trim()]));
    const body = password ? { values, password } : { values };
    this.setBusy(true);
    replace(this.results);
    this.progress('writing', `Writing ${changed.length} setting${changed.length === 1 ? '' : 's'} to the device`);
    try {
      const written = await api.patch(`/terminals/${encodeURIComponent(this.terminal)}/settings`, body, { signal: this.controller.signal });
      this.applyOutcome(written);
    } catch (error) {
      if (error.name === 'AbortError') return;
      this.showRefusal(error);
    } finally {
      this.setBusy(false);
    }
  }

  applyOutcome(written) {
    for (const outcome of written.settings) {
      const field = this.fields.get(outcome.identifier);
      if (!field) continue;
      if (outcome.ok && outcome.read_back != null) field.setOriginal(valueToText(field.setting, outcome.read_back));
      field.showError(outcome.ok ? null : outcome.error || 'Not applied.');
      field.element.classList.remove('preset-changed');
    }
    this.countChanges();
    replace(this.results, renderOutcome(written));
    this.results.scrollIntoView({ block: 'start', behavior: 'smooth' });
    const failed = written.settings.filter((s) => !s.ok).length;
    if (written.ok) {
      this.setStatus('done', `All ${written.settings.length} settings written and read back.`);
      toast('Settings written.', 'success');
    } else {
      this.setStatus('failed', `${written.settings.length - failed} of ${written.settings.length} settings written; ${failed} failed.`);
    }
  }

  /** A refused write: 422 names each setting; others (403, 409, 504...) say why. */
  showRefusal(error) {
    const errors = Array.isArray(error.detail) ? error.detail : [];
    for (const item of errors) this.fields.get(item.field)?.showError(item.error);
    this.setStatus('error', error.message);
    const first = errors.map((item) => this.fields.get(item.field)).find(Boolean);
    (first?.element ?? this.status).scrollIntoView({ block: 'center', behavior: 'smooth' });
  }

  setBusy(busy) {
    this.busy = busy;
    this.readButton.disabled = busy;
    for (const field of this.fields.values()) field.setDisabled(busy);
    for (const button of this.view.querySelectorAll('[data-test=settings-save], [data-test=apply-preset], [data-test=settings-discard]')) {
      button.disabled = busy;
    }
    if (!busy) clearInterval(this.progressTimer);
  }

  /** A status with a running seconds counter (reads and writes take seconds). */
  progress(state, text) {
    const started = Date.now();
    const show = () => this.setStatus(state, `${text}\u2026 ${Math.floor((Date.now() - started) / 1000)} s`, true);
    show();
    clearInterval(this.progressTimer);
    this.progressTimer = setInterval(show, 1000);
  }

  setStatus(state, text, spinning = false) {
    this.status.dataset.state = state;
    replace(this.status, spinning ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null, h('span', { text }));
  }
}

function inRange(value, low, high) {
  return typeof value === 'number' && value >= low && value <= high ? value : undefined;
}
