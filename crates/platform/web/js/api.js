// The platform's HTTP API: JSON in and out, errors as ApiError with the server's message.

/** An API error: HTTP status, the server's `error` text and its `detail`. */
export class ApiError extends Error {
  constructor(status, message, detail = null) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

let unauthorized = () => {};

/** What to do when any call answers 401 (the session ended): go back to the login page. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

async function request(method, path, body, options = {}) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (options.signal) init.signal = options.signal;
  let response;
  try {
    response = await fetch(`/api${path}`, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The platform cannot be reached (network error).');
  }
  const data = await readJson(response);
  if (!response.ok) {
    const message = data?.error || `${response.status} ${response.statusText}`.trim();
    if (response.status === 401 && path !== '/login') unauthorized();
    throw new ApiError(response.status, message, data?.detail ?? null);
  }
  return data;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Builds `?a=1&b=2` from the defined values of `params`. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const api = {
  get: (path, options) => request('GET', path, undefined, options),
  post: (path, body, options) => request('POST', path, body ?? {}, options),
  put: (path, body, options) => request('PUT', path, body, options),
  patch: (path, body, options) => request('PATCH', path, body, options),
  delete: (path, options) => request('DELETE', path, undefined, options),
};
