// Small charts of a concert's last hour, drawn as inline SVG with DOM calls (no library, no
// markup strings). Axis labels are HTML beside the drawing, so they stay readable when the
// drawing stretches to the width of a phone or a wall screen.

const SVG = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 100;

function svgEl(name, attrs = {}) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function el(name, attrs = {}, text) {
  const e = document.createElement(name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A round upper bound for the y axis: 1, 2, 5, 10, 20, 50 … at or above the largest value. */
export function niceMax(values) {
  const max = Math.max(0, ...values.filter((v) => typeof v === 'number' && Number.isFinite(v)));
  if (max <= 0) return 1;
  const exp = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * exp >= max) return m * exp;
  return 10 * exp;
}

/**
 * Runs of drawable points: a missing value, or a gap of more than a few intervals (nobody
 * sampled: the fleet was down), ends a line instead of bridging it with a straight guess.
 */
function runs(points, maxGapMs) {
  const out = [];
  let run = [];
  let lastT = null;
  for (const p of points) {
    if (p.v === null || p.v === undefined || (lastT !== null && p.t - lastT > maxGapMs)) {
      if (run.length) out.push(run);
      run = [];
    }
    if (p.v !== null && p.v !== undefined) run.push(p);
    lastT = p.t;
  }
  if (run.length) out.push(run);
  return out;
}

function plot(view, series, { t0, t1, max, changes, maxGapMs, label }) {
  const x = (t) => ((t - t0) / (t1 - t0)) * W;
  const y = (v) => H - (v / max) * (H - 4) - 2;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label, class: 'plot-svg' });
  for (const f of [0.5]) svg.append(svgEl('line', { x1: 0, x2: W, y1: y(max * f), y2: y(max * f), class: 'grid' }));
  for (const c of changes) {
    const line = svgEl('line', { x1: x(c.t), x2: x(c.t), y1: 0, y2: H, class: `change mode-${c.to}` });
    line.append(svgEl('title'));
    line.lastChild.textContent = c.text;
    svg.append(line);
  }
  for (const s of series) {
    for (const run of runs(s.points, maxGapMs)) {
      const pts = run.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      // A single point still shows: a dot instead of a line.
      if (run.length === 1) svg.append(svgEl('circle', { cx: x(run[0].t), cy: y(run[0].v), r: 2.5, class: `dot ${s.cls}` }));
      else svg.append(svgEl('polyline', { points: pts.join(' '), class: `line ${s.cls}`, 'data-series': s.key }));
    }
  }
  view.append(svg);
}

/**
 * Draws into `container` (replacing what was there): waiting and active, admissions per second,
 * write-behind lag, and the mode as a band, all on one time axis from `t0` to `t1`.
 */
export function renderCharts(container, { samples, modeChanges, t0, t1, intervalMs, t, fmt, modeName }) {
  const figures = [];
  const maxGapMs = Math.max(intervalMs * 3, 1);
  const pts = (get) => samples.map((s) => ({ t: s.t, v: get(s) }));
  const changes = modeChanges.map((c) => ({
    t: c.t, to: c.to, text: t('modeChange', { time: fmt.time(c.t), from: modeName(c.from), to: modeName(c.to) }),
  }));
  const last = samples[samples.length - 1];

  const panel = (key, title, series, current) => {
    const values = series.flatMap((s) => s.points.map((p) => p.v));
    const max = niceMax(values);
    const fig = el('figure', { class: 'chart', 'data-testid': `chart-${key}` });
    const cap = el('figcaption');
    cap.append(el('span', { class: 'chart-title' }, title));
    const legend = el('span', { class: 'chart-now' });
    for (const s of series) legend.append(el('span', { class: `key ${s.cls}` }, `${s.name} ${current(s)}`));
    cap.append(legend);
    fig.append(cap);
    const view = el('div', { class: 'plot' });
    view.append(el('span', { class: 'ymax', 'aria-hidden': 'true' }, max < 1 ? fmt.rate(max) : fmt.number(max)), el('span', { class: 'ymin', 'aria-hidden': 'true' }, '0'));
    plot(view, series, { t0, t1, max, changes, maxGapMs, label: `${title}: ${series.map((s) => `${s.name} ${current(s)}`).join(', ')}` });
    fig.append(view);
    figures.push(fig);
  };

  const now = (s) => {
    const p = [...s.points].reverse().find((q) => q.v !== null && q.v !== undefined);
    return p ? s.format(p.v) : t('unknown');
  };
  panel('waiting', t('chartWaiting'), [
    { key: 'waiting', name: t('waiting'), cls: 's-waiting', points: pts((s) => s.waiting), format: fmt.number },
    { key: 'active', name: t('active'), cls: 's-active', points: pts((s) => s.active), format: fmt.number },
  ], now);
  panel('admits', t('chartAdmits'), [
    { key: 'admits', name: t('admitRate'), cls: 's-admits', points: pts((s) => s.admitPerSecond), format: fmt.rate },
  ], now);
  panel('lag', t('chartLag'), [
    { key: 'lag', name: t('lag'), cls: 's-lag', points: pts((s) => s.lag), format: fmt.seconds },
  ], now);

  // The mode as a band of colour, one stretch per sample, and the changes as marks.
  const band = el('figure', { class: 'chart modes', 'data-testid': 'chart-modes' });
  const cap = el('figcaption');
  cap.append(el('span', { class: 'chart-title' }, t('chartModes')));
  const legend = el('span', { class: 'chart-now' });
  for (const m of ['redis', 'sql', 'rebuilding']) legend.append(el('span', { class: `key m-${m}` }, modeName(m)));
  cap.append(legend);
  band.append(cap);
  const svg = svgEl('svg', { viewBox: `0 0 ${W} 12`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `${t('chartModes')}: ${last ? modeName(last.mode) : t('unknown')}`, class: 'band-svg' });
  const x = (v) => ((v - t0) / (t1 - t0)) * W;
  samples.forEach((s, i) => {
    const next = samples[i + 1];
    const end = next && next.t - s.t <= maxGapMs ? next.t : Math.min(t1, s.t + intervalMs);
    // A hair of overlap, so that neighbouring stretches show no seam.
    const width = Math.max(0.5, x(end) - x(s.t)) + 0.6;
    svg.append(svgEl('rect', { x: x(s.t).toFixed(1), y: 0, width: width.toFixed(1), height: 12, class: `m-${s.mode}` }));
  });
  for (const c of changes) {
    const mark = svgEl('line', { x1: x(c.t), x2: x(c.t), y1: 0, y2: 12, class: 'change' });
    mark.append(svgEl('title'));
    mark.lastChild.textContent = c.text;
    svg.append(mark);
  }
  band.append(svg);
  if (changes.length) {
    const list = el('ul', { class: 'changes' });
    for (const c of changes.slice(-5)) list.append(el('li', {}, c.text));
    band.append(list);
  }
  figures.push(band);

  const axis = el('div', { class: 'xaxis', 'aria-hidden': 'true' });
  const minutes = Math.round((t1 - t0) / 60_000);
  axis.append(el('span', {}, t('minutesAgo', { n: minutes })), el('span', {}, t('minutesAgo', { n: Math.round(minutes / 2) })), el('span', {}, t('now')));
  figures.push(axis);
  container.replaceChildren(...figures);
}
