// Live updates: the server-sent events of GET /api/events, with polling as the fallback.
//
// Events (see crates/platform/src/api/events.rs):
//   hello  {}                                   on connect
//   fleet  {"terminals": ["0003E8", ...]}       terminals that uploaded (fleet stream)
//   upload {"terminal": "0003E8", "at": ms}     one terminal uploaded (terminal stream)
//   alarm  {"change", "terminal", "id", "kind", "warning", "at"}
//   resync {"missed": n}                        events were lost: refetch everything
// Pages subscribe with `onLive(type, handler)`; `refresh` fires every 5 s while polling and
// once after (re)connecting, so pages catch up on what they may have missed.

const POLL_MS = 5000;
const RETRY_MS = 15000;
const EVENT_TYPES = ['fleet', 'upload', 'alarm'];

const handlers = new Map();
let source = null;
let scope = undefined;
let state = 'polling';
let pollTimer = null;
let retryTimer = null;

/** Subscribes to a live event type (`fleet`, `upload`, `alarm`, `refresh`, `state`). */
export function onLive(type, handler) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(handler);
  return () => handlers.get(type)?.delete(handler);
}

function emit(type, data) {
  for (const handler of handlers.get(type) ?? []) {
    try {
      handler(data);
    } catch (error) {
      console.error(`live ${type} handler failed`, error);
    }
  }
}

export function liveState() {
  return state;
}

/** Listens to the fleet stream (`terminal` null) or one terminal's; no-op if already there. */
export function liveConnect(terminal = null) {
  if (source && scope === terminal) return;
  scope = terminal;
  open();
}

/** Closes the stream and stops polling (on logout). */
export function liveDisconnect() {
  scope = undefined;
  closeSource();
  stopPolling();
  clearTimeout(retryTimer);
}

function open() {
  closeSource();
  clearTimeout(retryTimer);
  if (typeof EventSource === 'undefined') {
    startPolling();
    return;
  }
  const url = scope ? `/api/events?terminal=${encodeURIComponent(scope)}` : '/api/events';
  const stream = new EventSource(url, { withCredentials: true });
  source = stream;
  stream.addEventListener('open', () => connected(stream));
  stream.addEventListener('hello', () => connected(stream));
  for (const type of EVENT_TYPES) {
    stream.addEventListener(type, (event) => deliver(type, event));
  }
  stream.addEventListener('resync', () => emit('refresh', { reason: 'resync' }));
  stream.addEventListener('error', () => failed(stream));
}

function connected(stream) {
  if (stream !== source || state === 'live') return;
  stopPolling();
  setState('live');
  emit('refresh', { reason: 'connected' });
}

function deliver(type, event) {
  let data = {};
  try {
    data = event.data ? JSON.parse(event.data) : {};
  } catch {
    return;
  }
  emit(type, data);
}

function failed(stream) {
  if (stream !== source) return;
  startPolling();
  if (stream.readyState === EventSource.CLOSED) {
    // Refused (no such route yet, or not logged in): poll, and try the stream again later.
    closeSource();
    setState('polling');
    retryTimer = setTimeout(() => scope !== undefined && open(), RETRY_MS);
  } else {
    setState('reconnecting');
  }
}

function closeSource() {
  if (source) source.close();
  source = null;
}

function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(() => emit('refresh', { reason: 'poll' }), POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function setState(next) {
  state = next;
  const indicator = document.querySelector('[data-test=live-status]');
  if (indicator) {
    indicator.dataset.state = next;
    const text = indicator.querySelector('.live-text');
    if (text) text.textContent = next;
    indicator.title = {
      live: 'Live: updates arrive as the packs upload',
      reconnecting: 'Connection lost: reconnecting (polling meanwhile)',
      polling: 'Live stream unavailable: refreshing every 5 s',
    }[next];
  }
  emit('state', next);
}
