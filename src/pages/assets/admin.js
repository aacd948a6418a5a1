// The operator console: live concerts with their waiting rooms, controls and the last hour's
// charts. It talks to the admin API like any client, with the key the operator types in; the key
// stays in this tab's sessionStorage and travels only in the X-Admin-Key header. Everything from
// the server is set as text (textContent, attributes), never parsed as markup.

import { renderCharts } from './admin-chart.js';
import { initialLang, LANGS, rememberLang, translate } from './admin-i18n.js';

const KEY_STORE = 'console-admin-key';
const WINDOW_MINUTES = 60;

const state = {
  lang: initialLang(),
  key: readKey(),
  timer: null,
  refreshing: false,
  everyMs: 5000,
  /** concert id → { el, parts, data, dirty } */
  rows: new Map(),
  overview: null,
  status: null,
};

function readKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ''; } catch { return ''; }
}
function keepKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch { /* storage blocked: the key lives in this page only */ }
}

const t = (key, vars) => translate(state.lang, key, vars);

// --- formatting -------------------------------------------------------------------------------

function locale() { return state.lang === 'ko' ? 'ko-KR' : 'en-US'; }
const fmt = {
  number: (v) => new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(v),
  rate: (v) => new Intl.NumberFormat(locale(), { maximumFractionDigits: v < 10 ? 2 : 1 }).format(v),
  seconds(v) {
    const s = Math.round(v);
    if (v < 10 && v !== s) return state.lang === 'ko' ? `${fmt.rate(v)}초` : `${fmt.rate(v)} s`;
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    const ko = state.lang === 'ko';
    const parts = [];
    if (h) parts.push(ko ? `${h}시간` : `${h} h`);
    if (m) parts.push(ko ? `${m}분` : `${m} min`);
    if (r || parts.length === 0) parts.push(ko ? `${r}초` : `${r} s`);
    return parts.join(' ');
  },
  time: (ms) => new Date(ms).toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', second: '2-digit' }),
};
const modeName = (m) => t({ redis: 'modeRedis', sql: 'modeSql', rebuilding: 'modeRebuilding' }[m] ?? 'unknown');

// --- DOM helpers --------------------------------------------------------------------------------

function h(name, attrs = {}, ...children) {
  const e = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'i18n') { e.dataset.i18n = v; e.textContent = t(v); } else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) e.append(c);
  return e;
}

/** Re-labels every element marked with data-i18n (static words) after a language switch. */
function relabel(root = document) {
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  // The switch names the other language in that language, and says so to screen readers.
  const other = LANGS[(LANGS.indexOf(state.lang) + 1) % LANGS.length];
  langButton.lang = other;
  langButton.setAttribute('aria-label', `${t('language')}: ${t('switchTo')}`);
}

/** The status line's words, kept so that a language switch can say them again. */
let statusSaid = null;
function say(key, vars) {
  statusSaid = key ? { key, vars } : null;
  setText(statusLine, key ? t(key, vars) : '');
}

function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}

// --- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { 'X-Admin-Key': state.key, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'same-origin',
  });
  let data = null;
  try { data = await res.json(); } catch { /* no body */ }
  if (!res.ok) throw new ApiError(res.status, data?.error?.code ?? 'HTTP', data?.error?.message ?? `HTTP ${res.status}`);
  return data;
}

// --- the page -----------------------------------------------------------------------------------

const app = document.getElementById('app');
document.documentElement.lang = state.lang;

const langButton = h('button', { type: 'button', class: 'lang', 'data-testid': 'lang', i18n: 'switchTo' });
const keyInput = h('input', {
  id: 'admin-key', type: 'password', autocomplete: 'off', spellcheck: 'false', 'data-testid': 'admin-key',
  'aria-describedby': 'admin-key-hint', required: true,
});
const keyForm = h('form', { class: 'key-form', 'data-testid': 'key-form' },
  h('label', { for: 'admin-key', i18n: 'keyLabel' }),
  h('div', { class: 'key-row' }, keyInput,
    h('button', { type: 'submit', 'data-testid': 'connect', i18n: 'connect' }),
    h('button', { type: 'button', class: 'secondary', 'data-testid': 'forget', i18n: 'forget' })),
  h('p', { id: 'admin-key-hint', class: 'hint', i18n: 'keyHint' }));
const statusLine = h('p', { class: 'status', role: 'status', 'aria-live': 'polite', 'data-testid': 'status' });
const errorLine = h('p', { class: 'error', role: 'alert', 'data-testid': 'error', hidden: true });

const serviceMode = h('dd', { 'data-testid': 'service-mode' });
const serviceBreaker = h('dd', { 'data-testid': 'service-breaker' });
const serviceWb = h('dd', { 'data-testid': 'service-write-behind' });
const service = h('section', { class: 'service', 'aria-labelledby': 'service-title', hidden: true },
  h('h2', { id: 'service-title', i18n: 'service' }),
  h('dl', { class: 'stats' },
    h('div', {}, h('dt', { i18n: 'mode' }), serviceMode),
    h('div', {}, h('dt', { i18n: 'breaker' }), serviceBreaker),
    h('div', {}, h('dt', { i18n: 'writeBehind' }), serviceWb)));

const concertList = h('div', { class: 'concert-list', 'data-testid': 'concerts' });
const emptyNote = h('p', { class: 'hint', i18n: 'none', hidden: true });
const concerts = h('section', { class: 'concerts', 'aria-labelledby': 'concerts-title', hidden: true },
  h('h2', { id: 'concerts-title', i18n: 'concerts' }), emptyNote, concertList);

function field(id, labelKey, input) {
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id, i18n: labelKey }), input);
}
const inLocalTime = (ms) => {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
const createTitle = h('input', { type: 'text', maxlength: 200, required: true, 'data-testid': 'create-title' });
const createDate = h('input', { type: 'datetime-local', required: true, 'data-testid': 'create-date', value: inLocalTime(Date.now() + 30 * 86_400_000) });
const createSeats = h('input', { type: 'number', min: 1, max: 10000, step: 1, inputmode: 'numeric', required: true, value: 100, 'data-testid': 'create-seats' });
const createPrice = h('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric', required: true, value: 50000, 'data-testid': 'create-price' });
const createMessage = h('p', { class: 'msg', role: 'status', 'data-testid': 'create-message' });
const createForm = h('form', { class: 'create', 'data-testid': 'create-form' },
  field('create-title', 'createTitle', createTitle), field('create-date', 'createDate', createDate),
  field('create-seats', 'createSeats', createSeats), field('create-price', 'createPrice', createPrice),
  h('button', { type: 'submit', 'data-testid': 'create-submit', i18n: 'createSubmit' }), createMessage);
const create = h('section', { class: 'panel', 'aria-labelledby': 'create-title-h', hidden: true },
  h('h2', { id: 'create-title-h', i18n: 'create' }), createForm);

const rebuildButton = h('button', { type: 'button', class: 'danger', 'data-testid': 'rebuild', i18n: 'rebuild' });
const rebuildMessage = h('p', { class: 'msg', role: 'status', 'data-testid': 'rebuild-message' });
const ops = h('section', { class: 'panel', 'aria-labelledby': 'ops-title', hidden: true },
  h('h2', { id: 'ops-title', i18n: 'operations' }), h('p', { class: 'hint', i18n: 'rebuildHint' }), rebuildButton, rebuildMessage);

app.replaceChildren(
  h('header', { class: 'top' }, h('h1', { i18n: 'title' }), langButton),
  h('section', { class: 'panel' }, keyForm), statusLine, errorLine, service, concerts, create, ops);
keyInput.value = state.key;
relabel();

function showError(message) {
  errorLine.hidden = !message;
  setText(errorLine, message || '');
}

function showConnected(on) {
  for (const s of [service, concerts, create, ops]) s.hidden = !on;
}

// --- one concert's row --------------------------------------------------------------------------

function stat(labelKey, testid) {
  const dd = h('dd', { 'data-testid': testid });
  return { wrap: h('div', {}, h('dt', { i18n: labelKey }), dd), dd };
}

function buildRow(id) {
  const titleId = `concert-${id}-title`;
  const stats = {
    waiting: stat('waiting', 'waiting'), active: stat('active', 'active'), rate: stat('admitRate', 'admit-rate'),
    tail: stat('tailEta', 'tail-eta'), lag: stat('lag', 'lag'), mode: stat('mode', 'mode'),
  };
  const title = h('h3', { id: titleId });
  const badge = h('span', { class: 'badge', 'data-testid': 'state' });
  const pause = h('button', { type: 'button', 'data-testid': 'pause', 'aria-pressed': 'false' });
  const maxActive = h('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric', required: true, 'data-testid': 'max-active', id: `c${id}-max-active` });
  const admitRate = h('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric', required: true, 'data-testid': 'admit-per-second', id: `c${id}-admit` });
  const save = h('button', { type: 'submit', 'data-testid': 'save', i18n: 'save' });
  const message = h('p', { class: 'msg', role: 'status', 'data-testid': 'row-message' });
  // novalidate: the row says what is wrong itself, in the console's language.
  const form = h('form', { class: 'controls', novalidate: true },
    pause,
    h('div', { class: 'field' }, h('label', { for: maxActive.id, i18n: 'maxActive' }), maxActive),
    h('div', { class: 'field' }, h('label', { for: admitRate.id, i18n: 'admitPerSecond' }), admitRate),
    save, message);
  const charts = h('div', { class: 'charts', 'data-testid': 'charts' });
  const details = h('details', { open: true }, h('summary', { i18n: 'chartsOf' }), charts);
  const article = h('article', { class: 'concert', 'data-testid': `concert-${id}`, 'aria-labelledby': titleId },
    h('header', {}, title, badge),
    h('dl', { class: 'stats' }, ...Object.values(stats).map((s) => s.wrap)),
    form, details);
  const row = { el: article, data: null, samples: null, dirty: new Set(), parts: { stats, title, badge, pause, maxActive, admitRate, message, charts, details } };

  for (const [name, input] of [['maxActive', maxActive], ['admitPerSecond', admitRate]]) {
    input.addEventListener('input', () => row.dirty.add(name));
  }
  pause.addEventListener('click', () => void act(row, async () => {
    const cfg = await api('PATCH', `/admin/concerts/${id}/queue`, { paused: !row.data.paused });
    row.data = { ...row.data, paused: cfg.paused };
    paint(row);
  }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [name, input, labelKey] of [['maxActive', maxActive, 'maxActive'], ['admitPerSecond', admitRate, 'admitPerSecond']]) {
      const raw = input.value.trim();
      if (!/^[1-9]\d*$/.test(raw)) {
        setText(message, t('wholeNumber', { field: t(labelKey) }));
        input.focus();
        return;
      }
      body[name] = Number(raw);
    }
    void act(row, async () => {
      const cfg = await api('PATCH', `/admin/concerts/${id}/queue`, body);
      row.dirty.clear();
      row.data = { ...row.data, maxActive: cfg.maxActive, admitPerSecond: cfg.admitPerSecond, paused: cfg.paused };
      paint(row);
      setText(message, t('saved'));
    });
  });
  details.addEventListener('toggle', () => { if (details.open) void loadSamples(row); });
  return row;
}

/** Runs a control's call with its buttons disabled; the outcome is said in the row. */
async function act(row, fn) {
  const buttons = row.el.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  setText(row.parts.message, '');
  try {
    await fn();
    void refresh();
  } catch (err) {
    if (!handleAuth(err)) setText(row.parts.message, err.message);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function paint(row) {
  const d = row.data;
  const p = row.parts;
  setText(p.title, `#${d.id} ${d.title}`);
  setText(p.stats.waiting.dd, fmt.number(d.waiting));
  setText(p.stats.active.dd, fmt.number(d.active));
  setText(p.stats.rate.dd, d.admittedPerSecond === null ? t('unknown') : fmt.rate(d.admittedPerSecond));
  setText(p.stats.tail.dd, d.tailEtaSeconds === null ? t('unknown') : fmt.seconds(d.tailEtaSeconds));
  setText(p.stats.lag.dd, d.writeBehindLagSeconds === null ? t('unknown') : fmt.seconds(d.writeBehindLagSeconds));
  setText(p.stats.mode.dd, modeName(d.mode));
  for (const [k, v] of Object.entries({ waiting: d.waiting, active: d.active, 'admit-rate': d.admittedPerSecond ?? '' })) {
    row.el.querySelector(`[data-testid="${k}"]`).dataset.value = String(v);
  }
  p.stats.mode.dd.dataset.value = d.mode;
  p.stats.mode.dd.className = `mode m-${d.mode}`;
  setText(p.badge, t(d.paused ? 'paused' : 'running'));
  p.badge.className = `badge ${d.paused ? 'is-paused' : 'is-running'}`;
  row.el.classList.toggle('paused', d.paused);
  setText(p.pause, t(d.paused ? 'resume' : 'pause'));
  p.pause.setAttribute('aria-pressed', String(d.paused));
  // An operator's unsaved edit, or the field being typed in, is not overwritten by a refresh.
  for (const [name, input] of [['maxActive', p.maxActive], ['admitPerSecond', p.admitRate]]) {
    if (!row.dirty.has(name) && document.activeElement !== input) input.value = String(d[name]);
  }
}

async function loadSamples(row) {
  if (!row.parts.details.open || !row.data) return;
  try {
    row.samples = await api('GET', `/admin/concerts/${row.data.id}/samples?minutes=${WINDOW_MINUTES}`);
    drawCharts(row);
  } catch (err) {
    if (!handleAuth(err)) setText(row.parts.message, err.message);
  }
}

function drawCharts(row) {
  const body = row.samples;
  if (!body) return;
  const intervalMs = body.sampleSeconds * 1000;
  if (body.samples.length === 0) {
    row.parts.charts.replaceChildren(h('p', { class: 'hint' }, t('noSamples', { n: body.sampleSeconds })));
    return;
  }
  const samples = body.samples.map((s) => ({
    t: Date.parse(s.at), waiting: s.waiting, active: s.active, admitPerSecond: s.admitPerSecond, lag: s.writeBehindLagSeconds, mode: s.mode,
  }));
  const t1 = Math.max(state.overview ? Date.parse(state.overview.at) : 0, samples[samples.length - 1].t);
  // The hour, or less while there is less history (10 minutes at least): a concert that opened
  // a minute ago still gets readable lines instead of a sliver at the right edge.
  const span = Math.min(WINDOW_MINUTES * 60_000, Math.max(10 * 60_000, t1 - samples[0].t + intervalMs));
  renderCharts(row.parts.charts, {
    samples, modeChanges: body.modeChanges.map((c) => ({ t: Date.parse(c.at), from: c.from, to: c.to })),
    t0: t1 - span, t1, intervalMs, t, fmt, modeName,
  });
}

// --- refreshing ---------------------------------------------------------------------------------

/** 401 or 403: the key is wrong; stop asking with it. */
function handleAuth(err) {
  if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) return false;
  stop();
  state.key = '';
  keepKey('');
  showConnected(false);
  say(null);
  showError(t('wrongKey', { status: err.status }));
  keyInput.focus();
  return true;
}

function paintService() {
  const o = state.overview;
  const s = state.status;
  if (o) {
    setText(serviceMode, modeName(o.mode));
    serviceMode.className = `mode m-${o.mode}`;
    serviceMode.dataset.value = o.mode;
  }
  if (s) {
    setText(serviceBreaker, s.breaker);
    const wb = s.writeBehind;
    setText(serviceWb, wb.pending === null ? t('unknown') : `${t('pending', { n: fmt.number(wb.pending) })} · ${fmt.seconds(wb.lagSeconds ?? 0)}`);
  }
}

async function refresh() {
  if (!state.key || state.refreshing) return;
  state.refreshing = true;
  try {
    const [overview, status] = await Promise.all([api('GET', '/admin/overview'), api('GET', '/admin/status')]);
    state.overview = overview;
    state.status = status;
    state.everyMs = Math.min(10_000, Math.max(1000, overview.sampleSeconds * 1000));
    showConnected(true);
    showError('');
    paintService();
    const seen = new Set();
    for (const c of overview.concerts) {
      seen.add(c.id);
      let row = state.rows.get(c.id);
      if (!row) {
        row = buildRow(c.id);
        state.rows.set(c.id, row);
      }
      row.data = c;
      paint(row);
    }
    for (const [id, row] of state.rows) {
      if (!seen.has(id)) {
        row.el.remove();
        state.rows.delete(id);
      }
    }
    // In id order, the newest last; only moved when the order changed (keeps focus in place).
    const ordered = [...state.rows.values()].sort((a, b) => a.data.id - b.data.id).map((r) => r.el);
    if (ordered.some((e, i) => concertList.children[i] !== e)) concertList.replaceChildren(...ordered);
    emptyNote.hidden = overview.concerts.length > 0;
    say('updated', { time: fmt.time(Date.now()) });
    await Promise.all([...state.rows.values()].map((r) => loadSamples(r)));
  } catch (err) {
    if (!handleAuth(err)) showError(t('failed', { message: err.message }));
  } finally {
    state.refreshing = false;
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (!state.key) return;
  state.timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, state.everyMs);
}

function stop() {
  clearTimeout(state.timer);
  state.timer = null;
}

async function connect() {
  if (!state.key) {
    showConnected(false);
    say('noKey');
    return;
  }
  say('loading');
  await refresh();
  if (state.key) schedule();
}

// --- controls outside the rows --------------------------------------------------------------------

keyForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.key = keyInput.value.trim();
  keepKey(state.key);
  showError('');
  void connect();
});
keyForm.querySelector('[data-testid="forget"]').addEventListener('click', () => {
  stop();
  state.key = '';
  keyInput.value = '';
  keepKey('');
  for (const row of state.rows.values()) row.el.remove();
  state.rows.clear();
  showConnected(false);
  say('noKey');
  keyInput.focus();
});

langButton.addEventListener('click', () => {
  state.lang = LANGS[(LANGS.indexOf(state.lang) + 1) % LANGS.length];
  rememberLang(state.lang);
  document.documentElement.lang = state.lang;
  relabel();
  paintService();
  for (const row of state.rows.values()) {
    if (row.data) paint(row);
    drawCharts(row);
  }
  if (statusSaid) say(statusSaid.key, statusSaid.vars);
});

createForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  setText(createMessage, '');
  const date = new Date(createDate.value);
  const submit = createForm.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const concert = await api('POST', '/admin/concerts', {
      title: createTitle.value,
      schedules: [{
        date: Number.isNaN(date.getTime()) ? createDate.value : date.toISOString(),
        seats: Number(createSeats.value), price: Number(createPrice.value),
      }],
    });
    setText(createMessage, t('created', { id: concert.id }));
    createTitle.value = '';
    await refresh();
  } catch (err) {
    if (!handleAuth(err)) setText(createMessage, err.message);
  } finally {
    submit.disabled = false;
  }
});

// The rebuild pauses changes to places and holds for a moment: it takes a second press.
let rebuildArmed = null;
rebuildButton.addEventListener('click', async () => {
  if (!rebuildArmed) {
    setText(rebuildMessage, t('rebuildConfirm'));
    rebuildArmed = setTimeout(() => { rebuildArmed = null; setText(rebuildMessage, ''); }, 5000);
    return;
  }
  clearTimeout(rebuildArmed);
  rebuildArmed = null;
  rebuildButton.disabled = true;
  try {
    const r = await api('POST', '/admin/cache/rebuild');
    setText(rebuildMessage, t(r.started ? 'rebuildStarted' : 'rebuildRunning'));
    void refresh();
  } catch (err) {
    if (!handleAuth(err)) setText(rebuildMessage, err.message);
  } finally {
    rebuildButton.disabled = false;
  }
});

document.addEventListener('visibilitychange', () => { if (!document.hidden && state.key) void refresh(); });

void connect();
