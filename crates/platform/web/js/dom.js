// Small DOM helpers: build elements without HTML strings (no escaping mistakes).

/**
 * Creates an element. `attrs`: `class`, `text`, `on<event>` handlers, `dataset`-style
 * `data-*` keys and any other attribute; `null`, `undefined` and `false` values are skipped.
 * Children: nodes, strings (text), arrays of them; `null`/`false` are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' && 'value' in element) element.value = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Appends children (nodes, strings, nested arrays) to `parent`. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces all children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** Sets text only when it differs (keeps the DOM quiet on live refreshes). */
export function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

/** A page-level card with a title row. */
export function card(title, body, extra = null, attrs = {}) {
  return h('section', { class: 'card', ...attrs },
    h('div', { class: 'card-head' }, h('h2', { text: title }), extra),
    body);
}

/** A message box for errors and empty states. */
export function notice(text, kind = 'info', attrs = {}) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : null, ...attrs }, text);
}

/** Calls `fn` at most once per `wait` ms (a number, or a function giving it), trailing call included. */
export function throttle(fn, wait) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const now = Date.now();
    const due = last + (typeof wait === 'function' ? wait() : wait) - now;
    if (due <= 0 && !timer) {
      last = now;
      fn(...args);
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn(...args);
      }, Math.max(due, 0));
    }
  };
}
