// The fan pages' API calls and DOM builder: what the service sends is only ever text.

/** An answer that is not 2xx: the service's code and message, the status, and Retry-After. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter, details) {
    super(message);
    this.details = Array.isArray(details) ? details : [];
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** One JSON call; a network failure is ApiError 0 NETWORK. The token goes only in Authorization. */
export async function api(method, path, { token, body, idempotencyKey } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'network error', null);
  }
  let data = null;
  try { data = res.status === 204 ? null : await res.json(); } catch { /* not JSON: handled below */ }
  if (res.ok) return data;
  const retry = Number(res.headers.get('Retry-After'));
  const err = data && data.error ? data.error : { code: res.status >= 500 ? 'UNAVAILABLE' : 'unknown', message: `HTTP ${res.status}` };
  throw new ApiError(res.status, String(err.code), String(err.message ?? ''), Number.isFinite(retry) && retry > 0 ? retry : null, err.details);
}

/** A random id for Idempotency-Key and the like. */
export function randomId() {
  return crypto.randomUUID ? crypto.randomUUID() : hex(16);
}

/** n random bytes as lowercase hex (2n characters). */
export function hex(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** h('p', {class: 'x', hidden: true}, 'text', child): strings become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return el;
}

/** sessionStorage as JSON; a browser that refuses storage just keeps nothing. */
export const session = {
  get(key) {
    try { return JSON.parse(sessionStorage.getItem(key) ?? 'null'); } catch { return null; }
  },
  set(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch { /* kept in memory only */ }
  },
};
