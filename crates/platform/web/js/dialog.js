// A modal question (confirm, or one input) in the page instead of window.prompt/confirm.

import { h } from './dom.js';

/**
 * Asks; resolves to {value} (the input's value, or '' without input) or null when cancelled.
 * `input`: {type, label, minLength} for one field.
 */
export function ask({ title, text = '', input = null, confirm = 'OK', danger = false }) {
  return new Promise((resolve) => {
    const field = input ? h('input', { class: 'input', type: input.type ?? 'text', 'data-test': 'dialog-input',
      id: 'dialog-input', autocomplete: 'off', minlength: input.minLength ?? null }) : null;
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { text: title }),
      text ? h('p', { class: 'muted', text }) : null,
      field ? h('label', { class: 'dialog-field', for: 'dialog-input' }, input.label, field) : null,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-ghost', 'data-test': 'dialog-cancel', text: 'Cancel', onclick: () => finish(null) }),
        h('button', { type: 'submit', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, 'data-test': 'dialog-confirm', text: confirm })));
    const dialog = h('dialog', { class: 'dialog dialog-small', 'data-test': 'dialog' }, form);
    const finish = openModal(dialog, resolve, field ?? form.querySelector('[data-test=dialog-confirm]'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      finish({ value: field ? field.value : '' });
    });
  });
}

/**
 * Shows `dialog` as a modal with `focus` focused; Escape resolves null. Returns `finish(result)`,
 * which closes and removes it and resolves `result` (once: later calls do nothing).
 */
export function openModal(dialog, resolve, focus) {
  let done = false;
  function finish(result) {
    if (done) return;
    done = true;
    dialog.close();
    dialog.remove();
    resolve(result);
  }
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    finish(null);
  });
  document.body.append(dialog);
  dialog.showModal();
  focus?.focus();
  return finish;
}
