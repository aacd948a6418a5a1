// One concert's waiting room and purchase. sessionStorage `fan.concert.<id>` keeps what a
// reload must keep; tokens never go into a URL or a log.
import { api, h, hex, randomId, session } from './fan-api.js';
import { dateTime, num, onLangChange, setText, t, timeOnly } from './fan-i18n.js';

const RETRY_CAP_MS = 20_000;

/** "m:ss" or "h:mm:ss" for a number of seconds. */
function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function etaText(el, seconds, paused) {
  if (paused || seconds === null || seconds === undefined) return setText(el, 'etaUnknown');
  if (seconds < 60) return setText(el, 'etaSoon');
  const minutes = Math.round(seconds / 60);
  return setText(el, 'etaMinutes', { n: minutes });
}

/** A wait around `ms`, spread ±20% so that many pages do not poll in step. */
const jitter = (ms) => Math.round(ms * (0.8 + Math.random() * 0.4));

/** A token's expiry (ms) from its payload; only the service checks tokens. */
function tokenExpiry(token) {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

export function concertPage(root, concertId, { showError, clearError }) {
  const storeKey = `fan.concert.${concertId}`;
  const st = { holds: [], ...(session.get(storeKey) ?? {}) };
  const save = () => session.set(storeKey, st);

  // AUTH_MODE=jwt: the identity token comes in the fragment; wipe it from the address bar at once.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const idToken = fragment.get('id_token');
  if (idToken) history.replaceState(history.state, '', location.pathname + location.search);

  // ---- the parts, built once; phases show and hide them
  const T = (tag, key, attrs) => setText(h(tag, attrs), key);
  const B = (key, attrs) => T('button', key, { type: 'button', ...attrs });
  const card = (id, key, ...kids) => h('section', { class: 'card', hidden: true, 'data-testid': id, 'aria-labelledby': `${id}-h` },
    T('h2', key, { id: `${id}-h` }), ...kids);
  const field = (id, key, attrs) => {
    const input = h('input', { id, 'data-testid': id, inputmode: 'numeric', required: true, ...attrs });
    return [input, h('div', { class: 'field' }, T('label', key, { for: id }), input)];
  };

  const title = T('h1', 'loading', { 'data-testid': 'concert-title' });
  const [userIdInput, userIdField] = field('user-id', 'userId', { autocomplete: 'username' });
  const signInBtn = T('button', 'signIn', { type: 'submit', 'data-testid': 'sign-in' });
  const signInForm = h('form', { class: 'row' }, userIdField, signInBtn);
  const idpNote = T('p', 'idpOnly', { class: 'muted', hidden: true });
  const signIn = card('account', 'signInTitle', signInForm, idpNote);

  const joinBtn = B('join', { class: 'primary', 'data-testid': 'join' });
  const powLine = h('p', { class: 'muted', 'data-testid': 'pow-progress', hidden: true });
  const joinBox = card('join-box', 'joinTitle', T('p', 'joinHint'), joinBtn, powLine);

  const opensIn = h('p', { 'data-testid': 'prequeue-countdown', 'aria-live': 'polite' });
  const ticketLine = h('p', { class: 'mono', 'data-testid': 'draw-ticket' });
  const prequeue = card('prequeue', 'prequeueTitle', opensIn, ticketLine, T('p', 'prequeueHint', { class: 'muted' }));

  const out = (id, big) => h('output', { 'data-testid': id, class: big ? 'big' : null });
  const posOut = out('position', true), aheadOut = out('ahead'), etaOut = out('eta');
  const fact = (key, el) => h('div', {}, T('dt', key, { class: 'muted' }), h('dd', {}, el));
  const bar = h('progress', { max: '1', value: '0', 'aria-labelledby': 'progress-l' });
  const pausedLine = T('p', 'paused', { class: 'note', hidden: true, 'data-testid': 'paused' });
  const retryLine = T('p', 'retrying', { class: 'note calm', hidden: true, 'data-testid': 'retrying' });
  const activeLine = h('p', { hidden: true });
  const waitFacts = h('div', {},
    h('dl', { class: 'facts', 'aria-live': 'polite', 'aria-atomic': 'true' },
      fact('position', posOut), fact('ahead', aheadOut), fact('eta', etaOut)),
    T('label', 'progress', { id: 'progress-l', class: 'muted' }), bar, T('p', 'keepOpen', { class: 'muted' }));
  const status = card('queue-status', 'waitingTitle', waitFacts, activeLine, pausedLine, retryLine);
  const statusTitle = status.firstChild;

  const rejoinBtn = B('rejoin', { class: 'primary', 'data-testid': 'rejoin' });
  const lost = card('lost', 'lostTitle', T('p', 'lostWhy'), rejoinBtn);

  const scheduleList = h('div', { class: 'tabs', role: 'group', 'aria-labelledby': 'shop-h' });
  const seatMap = h('div', { class: 'seats', role: 'group', 'aria-labelledby': 'seats-h' });
  const refreshBtn = B('refreshSeats', { class: 'link' });
  const legend = h('p', { class: 'legend muted' },
    ...['Available', 'Held', 'Mine', 'Sold'].map((k) => T('span', `legend${k}`, { class: `key ${k.toLowerCase()}` })));
  const holdList = h('ul');
  const holdCountdown = h('p', { 'data-testid': 'hold-countdown', hidden: true });
  const totalLine = h('p');
  const balanceOut = out('balance', true);
  const [amountInput, amountField] = field('charge-amount', 'chargeAmount', { type: 'number', min: '1', max: '10000000', step: '1' });
  const chargeBtn = T('button', 'charge', { type: 'submit', 'data-testid': 'charge' });
  const chargeForm = h('form', { class: 'row' }, amountField, chargeBtn);
  const payBtn = B('pay', { class: 'primary', 'data-testid': 'pay', disabled: true });
  const box = (...kids) => h('div', { class: 'card' }, ...kids);
  const shop = h('section', { class: 'shop', hidden: true, 'data-testid': 'shop', 'aria-labelledby': 'shop-h' },
    box(T('h2', 'schedules', { id: 'shop-h' }), scheduleList),
    box(T('h2', 'seats', { id: 'seats-h' }), legend, seatMap, refreshBtn),
    box(T('h2', 'holdsTitle'), holdList, holdCountdown, totalLine),
    box(T('h2', 'balanceTitle'), balanceOut, chargeForm, payBtn));

  const confirmText = h('p');
  const confirmList = h('ul', { class: 'mono' });
  const done = card('confirmation', 'doneTitle', confirmText, confirmList);
  done.classList.add('ok');
  done.tabIndex = -1;

  const back = T('a', 'back', { href: '/', class: 'back' });
  root.append(back, title, signIn, joinBox, prequeue, status, lost, shop, done);

  // ---- phases
  const parts = { signIn, joinBox, prequeue, status, lost, shop, done };
  function show(...visible) {
    for (const [name, el] of Object.entries(parts)) el.hidden = !visible.includes(name);
  }

  /** Runs a user action with its button busy; failures are shown in words. */
  async function action(button, fn) {
    if (button.disabled) return;
    clearError();
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      updateHolds();
    }
  }

  // ---- the concert's name: GET /v1/concerts/:id, else found in the list
  (async () => {
    const concert = await api('GET', `/v1/concerts/${concertId}`)
      .catch(() => api('GET', '/v1/concerts').then((r) => r.concerts.find((c) => c.id === concertId)))
      .catch(showError);
    if (!concert) return setText(title, 'err_noConcert');
    delete title.dataset.t;
    title.textContent = String(concert.title);
  })();

  // ---- sign in
  async function exchange(body) {
    const r = await api('POST', '/v1/tokens', { body });
    st.userToken = r.token;
    st.userId = r.userId;
    st.auth = body.idToken ? 'jwt' : 'open';
    save();
  }

  signInForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const raw = userIdInput.value.trim();
    if (!/^[1-9]\d{0,15}$/.test(raw)) {
      showError({ code: 'err_badUserId' });
      userIdInput.focus();
      return;
    }
    action(signInBtn, async () => {
      try {
        await exchange({ userId: Number(raw) });
      } catch (err) {
        // This service signs in through an identity provider (AUTH_MODE=jwt).
        const said = [err.message, ...err.details.map((d) => `${d.field}: ${d.problem}`)].join(' ');
        if (err.code === 'VALIDATION_FAILED' && /AUTH_MODE=jwt|idToken/.test(said)) {
          signInForm.hidden = true;
          idpNote.hidden = false;
          return;
        }
        throw err;
      }
      show('joinBox');
      joinBtn.focus();
    });
  });

  // ---- join, with the draw nonce and, when asked, a proof of work
  async function join(pow, plain) {
    if (!st.drawNonce) { st.drawNonce = hex(16); save(); }
    const body = plain ? {} : { drawNonce: st.drawNonce };
    if (pow) body.pow = pow;
    let r;
    try {
      r = await api('POST', `/v1/concerts/${concertId}/queue`, { token: st.queueToken || st.userToken, body });
    } catch (err) {
      if (err.code === 'CHALLENGE_REQUIRED' && !pow) return join(await solveChallenge(), plain);
      if (err.status === 401) { showError(err); return signedOut(); }
      // A service without scheduled sales refuses the field: join without it.
      if (err.code === 'VALIDATION_FAILED' && !plain && err.details.some((d) => d.field === 'drawNonce')) return join(pow, true);
      throw err;
    }
    st.queueToken = r.token;
    st.userToken = null; // replaced (revoked) by the queue token
    if (r.drawTicket) st.drawTicket = r.drawTicket;
    save();
    applyPlace(r);
  }

  async function solveChallenge() {
    const ch = await api('GET', '/v1/challenge');
    let worker;
    try {
      worker = new Worker('/assets/pow-worker.js');
    } catch {
      throw { code: 'err_WORKER' };
    }
    powLine.hidden = false;
    setText(powLine, 'powWorking', { tried: num(0) });
    try {
      const nonce = await new Promise((resolve, reject) => {
        worker.onmessage = (ev) => {
          const m = ev.data || {};
          if (m.tried) setText(powLine, 'powWorking', { tried: num(m.tried) });
          if (m.type === 'done') resolve(String(m.nonce));
          else if (m.type === 'error') reject({ code: 'err_WORKER' });
        };
        worker.onerror = () => reject({ code: 'err_WORKER' });
        worker.postMessage({ challenge: ch.challenge, bits: ch.bits });
      });
      return { challenge: ch.challenge, nonce };
    } finally {
      worker.terminate();
    }
  }

  joinBtn.addEventListener('click', () => action(joinBtn, () => join()));
  rejoinBtn.addEventListener('click', () => action(rejoinBtn, async () => {
    if (!st.userToken) {
      if (st.auth !== 'open' || !st.userId) return signedOut();
      await exchange({ userId: st.userId });
    }
    await join();
  }));

  function signedOut() {
    st.userToken = null;
    save();
    if (st.userId) userIdInput.value = String(st.userId);
    show('signIn');
    if (st.auth === 'jwt') { signInForm.hidden = true; idpNote.hidden = false; }
  }

  // ---- the place: polling is the heartbeat
  let pollTimer = null;
  let failures = 0;
  let countdownTimer = null;
  let inShop = false;

  function schedulePoll(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    if (!st.queueToken) return;
    let view;
    try {
      view = await api('GET', '/v1/queue/me', { token: st.queueToken });
    } catch (err) {
      if (err.status === 401 || err.status === 404 || err.status === 403) return placeLost();
      // Busy, switching stores, draining, or the network: a calm line; the place is kept.
      failures++;
      retryLine.hidden = false;
      const base = 1000 * Math.max(1, err.retryAfter ?? 1);
      return schedulePoll(jitter(Math.min(RETRY_CAP_MS, base * 1.5 ** (failures - 1))));
    }
    failures = 0;
    retryLine.hidden = true;
    if (view.token) { st.queueToken = view.token; save(); }
    applyPlace(view);
  }

  function applyPlace(v) {
    if (v.status === 'prequeue') return showPrequeue(v);
    if (v.status === 'waiting') showWaiting(v);
    else if (v.status === 'active') showActive(v);
    else return placeLost();
    // Poll as asked, but soon enough that the refreshed token (past half its life) comes in time.
    const tokenLeft = (tokenExpiry(st.queueToken) - Date.now()) / 3;
    schedulePoll(Math.max(1000, Math.min(tokenLeft, jitter(1000 * Math.max(1, v.pollAfterSeconds ?? 5)))));
  }

  function showPrequeue(v) {
    show('prequeue');
    if (v.drawTicket) { st.drawTicket = v.drawTicket; save(); }
    if (v.opensAt) { st.opensAt = v.opensAt; save(); }
    if (st.drawTicket) setText(ticketLine, 'prequeueTicket', { ticket: String(st.drawTicket) });
    const opensAt = Date.parse(st.opensAt);
    clearInterval(countdownTimer);
    const tickDown = () => {
      const left = (opensAt - Date.now()) / 1000;
      if (!(left > 0)) setText(opensIn, 'prequeueOpening');
      else setText(opensIn, 'prequeueOpens', { left: clock(left) });
    };
    tickDown();
    if (Number.isFinite(opensAt)) countdownTimer = setInterval(tickDown, 1000);
    // Heartbeat as asked, and be there the moment the sale opens.
    const untilOpen = Number.isFinite(opensAt) ? Math.max(1000, opensAt - Date.now() + 500) : Infinity;
    schedulePoll(Math.min(untilOpen, jitter(1000 * Math.max(1, v.pollAfterSeconds ?? 10))));
  }

  function showWaiting(v) {
    clearInterval(countdownTimer);
    if (!st.firstPosition || v.position > st.firstPosition) { st.firstPosition = v.position; save(); }
    show('status');
    waitFacts.hidden = false;
    activeLine.hidden = true;
    setText(statusTitle, 'waitingTitle');
    posOut.textContent = num(v.position);
    aheadOut.textContent = num(v.ahead ?? Math.max(0, v.position - 1));
    etaText(etaOut, v.estimatedWaitSeconds, v.paused);
    bar.max = st.firstPosition;
    bar.value = Math.max(0, st.firstPosition - v.position);
    pausedLine.hidden = !v.paused;
  }

  function showActive(v) {
    clearInterval(countdownTimer);
    show('status', 'shop');
    waitFacts.hidden = true;
    pausedLine.hidden = !v.paused;
    setText(statusTitle, 'activeTitle');
    posOut.textContent = '0';
    if (v.activeUntil) {
      activeLine.hidden = false;
      setText(activeLine, 'activeUntil', { time: timeOnly(v.activeUntil) });
    }
    if (!inShop) {
      inShop = true;
      openShop().catch(showError);
    } else {
      loadSeats().catch(() => {}); // others buy meanwhile: keep the map current
    }
  }

  function placeLost() {
    clearTimeout(pollTimer);
    clearInterval(countdownTimer);
    st.queueToken = null;
    st.holds = [];
    st.firstPosition = null;
    inShop = false;
    save();
    show('lost');
  }

  // ---- choosing seats
  let schedules = [];
  let currentSchedule = null;
  let holdTimer = null;

  async function openShop() {
    const [list] = await Promise.all([api('GET', `/v1/concerts/${concertId}/schedules`, { token: st.queueToken }), loadBalance()]);
    schedules = list.schedules;
    renderSchedules();
    const keep = schedules.find((s) => s.id === currentSchedule) ?? schedules[0];
    if (keep) await pickSchedule(keep.id);
    updateHolds();
  }

  function renderSchedules() {
    scheduleList.textContent = '';
    for (const s of schedules) {
      const b = h('button', { type: 'button', class: 'tab', 'data-testid': `schedule-${s.id}`, 'aria-pressed': String(s.id === currentSchedule) });
      setText(b, 'scheduleOption', { date: dateTime(s.date), available: num(s.available), capacity: num(s.capacity) });
      b.addEventListener('click', () => pickSchedule(s.id).catch(showError));
      scheduleList.append(b);
    }
  }

  async function pickSchedule(id) {
    currentSchedule = id;
    for (const b of scheduleList.children) b.setAttribute('aria-pressed', String(b.dataset.testid === `schedule-${id}`));
    await loadSeats();
  }

  async function loadSeats() {
    if (!currentSchedule) return;
    const shown = currentSchedule;
    const { seats } = await api('GET', `/v1/concerts/${concertId}/schedules/${shown}/seats`, { token: st.queueToken });
    // The same map is updated in place: the seat in focus keeps it.
    const same = seatMap.dataset.schedule === String(shown) && seatMap.children.length === seats.length;
    if (!same) seatMap.textContent = '';
    seatMap.dataset.schedule = String(shown);
    seats.forEach((seat, i) => {
      if (!same) return seatMap.append(seatButton(seat));
      const mine = st.holds.some((x) => x.scheduleId === shown && x.seatNumber === seat.seatNumber);
      setSeat(seatMap.children[i], seat.seatNumber, mine ? 'held' : seat.status, mine);
    });
  }

  refreshBtn.addEventListener('click', () => action(refreshBtn, async () => {
    schedules = (await api('GET', `/v1/concerts/${concertId}/schedules`, { token: st.queueToken })).schedules;
    renderSchedules();
    await loadSeats();
  }));

  function seatButton(seat) {
    const mine = st.holds.some((x) => x.scheduleId === currentSchedule && x.seatNumber === seat.seatNumber);
    const b = h('button', { type: 'button', class: 'seat', 'data-testid': `seat-${seat.seatNumber}` }, String(seat.seatNumber));
    b.dataset.price = seat.price;
    b.dataset.seat = seat.seatNumber;
    setSeat(b, seat.seatNumber, mine ? 'held' : seat.status, mine);
    b.addEventListener('click', () => {
      if (b.dataset.status !== 'available') return;
      action(b, () => hold(b, Number(b.dataset.seat)));
    });
    return b;
  }

  function setSeat(b, n, status, mine) {
    b.dataset.status = status;
    if (mine) b.dataset.mine = 'true'; else delete b.dataset.mine;
    b.setAttribute('aria-disabled', String(status !== 'available'));
    const word = mine ? t('legendMine') : t(`legend${status[0].toUpperCase()}${status.slice(1)}`);
    b.setAttribute('aria-label', t('seatLabel', { n, price: num(Number(b.dataset.price)), status: word }));
  }

  async function hold(b, seatNumber) {
    const scheduleId = currentSchedule;
    let r;
    try {
      r = await api('POST', '/v1/reservations', {
        token: st.queueToken, idempotencyKey: randomId(), body: { scheduleId, seatNumber },
      });
    } catch (err) {
      if (err.code === 'SEAT_UNAVAILABLE') loadSeats().catch(() => {});
      throw err;
    }
    if (!st.holds.some((x) => x.reservationId === r.reservationId)) {
      st.holds.push({ reservationId: r.reservationId, scheduleId, seatNumber, price: r.price, expiresAt: r.expiresAt });
    }
    save();
    setSeat(b, seatNumber, 'held', true);
  }

  async function release(x) {
    await api('DELETE', `/v1/reservations/${encodeURIComponent(x.reservationId)}`, { token: st.queueToken });
    st.holds = st.holds.filter((y) => y.reservationId !== x.reservationId);
    save();
    await loadSeats();
  }

  function updateHolds() {
    const now = Date.now();
    const live = st.holds.filter((x) => Date.parse(x.expiresAt) > now);
    if (live.length !== st.holds.length) {
      st.holds = live;
      save();
      showError({ code: 'holdExpired' });
      loadSeats().catch(() => {});
    }
    holdList.textContent = '';
    if (!live.length) holdList.append(setText(h('li', { class: 'muted' }), 'noHolds'));
    for (const x of live) {
      const rel = setText(h('button', { type: 'button', class: 'link' }), 'release');
      rel.addEventListener('click', () => action(rel, () => release(x)));
      holdList.append(h('li', {}, setText(h('span'), 'holdLine', { n: x.seatNumber, price: num(x.price) }), ' ', rel));
    }
    setText(totalLine, 'total', { amount: num(live.reduce((sum, x) => sum + x.price, 0)) });
    payBtn.disabled = live.length === 0;
    clearInterval(holdTimer);
    holdCountdown.hidden = live.length === 0;
    if (!live.length) return;
    const first = Math.min(...live.map((x) => Date.parse(x.expiresAt)));
    const tickDown = () => {
      const left = (first - Date.now()) / 1000;
      if (left <= 0) return updateHolds();
      setText(holdCountdown, 'holdCountdown', { left: clock(left) });
    };
    tickDown();
    holdTimer = setInterval(tickDown, 1000);
  }

  // ---- money
  async function loadBalance() {
    const r = await api('GET', '/v1/me/balance', { token: st.queueToken });
    setText(balanceOut, 'balance', { amount: num(r.balance) });
  }

  chargeForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const amount = Number(amountInput.value);
    if (!Number.isInteger(amount) || amount < 1 || amount > 10_000_000) {
      showError({ code: 'err_badAmount' });
      amountInput.focus();
      return;
    }
    action(chargeBtn, async () => {
      const r = await api('POST', '/v1/me/balance/charge', { token: st.queueToken, idempotencyKey: randomId(), body: { amount } });
      setText(balanceOut, 'balance', { amount: num(r.balance) });
      amountInput.value = '';
    });
  });

  payBtn.addEventListener('click', () => action(payBtn, async () => {
    const ids = st.holds.map((x) => x.reservationId);
    // The same payment again (a lost answer, a second click) reuses its key.
    const same = st.pay && st.pay.ids.join() === ids.join();
    if (!same) { st.pay = { ids, key: randomId() }; save(); }
    const r = await api('POST', '/v1/payments', { token: st.queueToken, idempotencyKey: st.pay.key, body: { reservationIds: ids } });
    st.confirmation = { amount: r.amount, reservationIds: r.reservationIds ?? ids };
    // The queue token ends with the purchase: nothing left to poll.
    st.queueToken = null;
    st.holds = [];
    st.pay = null;
    save();
    clearTimeout(pollTimer);
    inShop = false;
    showDone();
  }));

  function showDone() {
    const c = st.confirmation;
    setText(confirmText, 'doneText', { amount: num(c.amount) });
    confirmList.textContent = '';
    for (const id of c.reservationIds) confirmList.append(h('li', {}, String(id)));
    show('done');
    done.focus();
  }

  onLangChange(() => {
    for (const b of seatMap.children) setSeat(b, Number(b.dataset.seat), b.dataset.status, b.dataset.mine === 'true');
  });

  // ---- where this fan is: carried on from the session, or a fresh start
  (async () => {
    if (idToken) await exchange({ idToken }).catch(showError);
    if (st.queueToken) {
      show('status');
      setText(statusTitle, 'loading');
      return poll();
    }
    if (st.confirmation) return showDone();
    if (st.userToken) return show('joinBox');
    signedOut();
  })();
}
