// The fan pages: the concert list (/) and a concert's waiting room and purchase (/concerts/:id).
import { api, h } from './fan-api.js';
import { dateTime, hasKey, onLangChange, setLang, setText, currentLang, startLang, t } from './fan-i18n.js';
import { concertPage } from './fan-concert.js';

const app = document.getElementById('app');
startLang();

/** The error line: role=alert, empty (hidden) when all is well. */
const errorBox = h('p', { class: 'error', role: 'alert', 'data-testid': 'error' });

/** A failure in words: its code's text in the page's language, else the service's message. */
export function showError(err) {
  const code = err && err.code ? String(err.code) : 'unknown';
  const key = hasKey(`err_${code}`) ? `err_${code}` : hasKey(code) ? code : 'err_unknown';
  setText(errorBox, key, { message: err && err.message ? String(err.message) : '' });
}
export const clearError = () => { errorBox.textContent = ''; delete errorBox.dataset.t; };

function header() {
  const toggle = h('button', { type: 'button', class: 'lang', 'data-testid': 'lang-switch' });
  const label = () => {
    setText(toggle, 'switchTo');
    toggle.setAttribute('aria-label', t('switchLabel'));
    toggle.setAttribute('lang', currentLang() === 'ko' ? 'en' : 'ko');
  };
  label();
  toggle.addEventListener('click', () => setLang(currentLang() === 'ko' ? 'en' : 'ko'));
  onLangChange(label);
  return h('header', { class: 'top' }, setText(h('a', { href: '/', class: 'brand' }), 'site'), toggle);
}

async function concertList(root) {
  const list = h('ul', { class: 'concerts', 'aria-busy': 'true' });
  root.append(setText(h('h1'), 'concerts'), list);
  list.append(setText(h('li', { class: 'muted' }), 'loading'));
  try {
    const { concerts } = await api('GET', '/v1/concerts');
    list.textContent = '';
    if (!concerts.length) list.append(setText(h('li', { class: 'muted' }), 'noConcerts'));
    for (const c of concerts) {
      const when = h('span', { class: 'muted' });
      const fill = () => setText(when, 'startsAt', { when: dateTime(c.startsAt) });
      fill();
      onLangChange(fill);
      list.append(h('li', {},
        h('a', { href: `/concerts/${encodeURIComponent(c.id)}`, class: 'card', 'data-testid': `concert-link-${c.id}` },
          h('strong', { class: 'title' }, String(c.title)), when)));
    }
  } catch (err) {
    list.textContent = '';
    showError(err);
  } finally {
    list.removeAttribute('aria-busy');
  }
}

// A failure nobody caught still ends up in words.
addEventListener('unhandledrejection', (ev) => showError(ev.reason));

const root = h('div', { class: 'page' });
app.append(header(), errorBox, root);
const page = document.body.dataset.page;
if (page === 'concert') {
  const m = /^\/concerts\/(\d+)\/?$/.exec(location.pathname);
  if (m) concertPage(root, Number(m[1]), { showError, clearError });
  else setText(errorBox, 'err_noConcert');
} else {
  concertList(root);
}
