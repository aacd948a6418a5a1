// Every word of the fan pages in English and Korean. Elements keep their key in data-t, so a
// language switch rewrites them in place.

const STRINGS = {
  en: {
    site: 'Tickets',
    switchTo: '한국어',
    switchLabel: 'Change language to Korean',
    concerts: 'Concerts',
    loading: 'Loading…',
    noConcerts: 'No concerts are on sale right now.',
    startsAt: 'Starts {when}',
    back: 'All concerts',
    signInTitle: 'Sign in',
    userId: 'User number',
    signIn: 'Sign in',
    idpOnly: 'Sign in with the sign-in link you were given.',
    joinTitle: 'Waiting room',
    joinHint: 'Join the line to get your turn to choose seats.',
    join: 'Join the line',
    powWorking: 'Checking your browser… {tried} tries',
    prequeueTitle: 'Sale not open yet',
    prequeueOpens: 'The sale opens in {left}.',
    prequeueOpening: 'The sale is opening; your place is being drawn…',
    prequeueTicket: 'Your draw ticket: {ticket}',
    prequeueHint: 'Everyone here before the opening gets a place by a fair draw.',
    waitingTitle: 'You are in line',
    position: 'Your place in line',
    ahead: 'People ahead of you',
    eta: 'Estimated wait',
    etaSoon: 'less than a minute',
    etaMinutes: 'about {n} min',
    etaUnknown: 'not known yet',
    paused: 'The line is paused by the organiser. You keep your place.',
    progress: 'Progress since you joined',
    keepOpen: 'Keep this page open; it updates by itself.',
    retrying: 'The service is busy. Retrying in a moment; you keep your place.',
    lostTitle: 'Your place in line has ended',
    lostWhy: 'A place ends when the page stays closed too long or the time to buy runs out. You can join again, at the back.',
    rejoin: 'Join again',
    activeTitle: 'It\'s your turn',
    activeUntil: 'Your turn lasts until {time}.',
    schedules: 'Dates',
    scheduleOption: '{date} · {available} of {capacity} seats left',
    seats: 'Seats',
    legendAvailable: 'available',
    legendHeld: 'held',
    legendSold: 'sold',
    legendMine: 'yours',
    seatLabel: 'Seat {n}, {price} won, {status}',
    refreshSeats: 'Refresh seats',
    holdsTitle: 'Your held seats',
    noHolds: 'Choose an available seat to hold it.',
    holdLine: 'Seat {n} ({price} won)',
    holdCountdown: 'Held for {left} more',
    holdExpired: 'Your holds have expired. Choose again.',
    release: 'Release',
    total: 'Total: {amount} won',
    balanceTitle: 'Balance',
    balance: '{amount} won',
    chargeAmount: 'Amount to add (won)',
    charge: 'Add money',
    pay: 'Pay for held seats',
    doneTitle: 'Purchase complete',
    doneText: 'Paid {amount} won. Your reservations:',
    // By the service's error code; any other code: err_unknown.
    err_UNAUTHENTICATED: 'You are signed out. Sign in again.',
    err_VALIDATION_FAILED: 'The request was not accepted: {message}',
    err_INSUFFICIENT_BALANCE: 'Your balance is too low. Add money first.',
    err_NOT_ADMITTED: 'It is not your turn yet.',
    err_NOT_FOUND: 'Not found: {message}',
    err_SEAT_UNAVAILABLE: 'That seat was just taken. Choose another one.',
    err_HOLD_EXPIRED: 'A hold expired before payment. Hold the seat again.',
    err_ALREADY_PAID: 'That reservation is already paid.',
    err_HOLD_LIMIT_REACHED: 'You hold as many seats as allowed at once.',
    err_TICKET_LIMIT_REACHED: 'You have as many tickets as allowed for this concert.',
    err_QUEUE_CLOSED: 'The line for this concert is closed.',
    err_CHALLENGE_FAILED: 'The browser check failed. Join again.',
    err_RATE_LIMITED: 'Too many requests. Wait a moment and try again.',
    err_UNAVAILABLE: 'The service is busy right now. Try again in a moment.',
    err_NETWORK: 'Could not reach the service. Check your connection.',
    err_WORKER: 'The browser check cannot run in this browser.',
    err_unknown: 'Something went wrong: {message}',
    err_noConcert: 'There is no such concert.',
    err_badUserId: 'Enter your user number (a whole number).',
    err_badAmount: 'Enter an amount from 1 to 10,000,000 won.',
  },
  ko: {
    site: '티켓',
    switchTo: 'English',
    switchLabel: '영어로 바꾸기',
    concerts: '공연',
    loading: '불러오는 중…',
    noConcerts: '지금 판매 중인 공연이 없습니다.',
    startsAt: '{when} 시작',
    back: '전체 공연',
    signInTitle: '로그인',
    userId: '사용자 번호',
    signIn: '로그인',
    idpOnly: '받은 로그인 링크로 로그인해 주세요.',
    joinTitle: '대기실',
    joinHint: '대기열에 들어가면 차례가 왔을 때 좌석을 고를 수 있습니다.',
    join: '대기열 들어가기',
    powWorking: '브라우저 확인 중… {tried}번 시도',
    prequeueTitle: '아직 판매 전입니다',
    prequeueOpens: '판매까지 {left} 남았습니다.',
    prequeueOpening: '판매가 시작됩니다. 순번을 추첨하는 중…',
    prequeueTicket: '추첨 번호: {ticket}',
    prequeueHint: '판매 전에 들어온 모든 분의 순번은 공정한 추첨으로 정해집니다.',
    waitingTitle: '대기 중입니다',
    position: '내 대기 순서',
    ahead: '내 앞 인원',
    eta: '예상 대기 시간',
    etaSoon: '1분 미만',
    etaMinutes: '약 {n}분',
    etaUnknown: '아직 알 수 없음',
    paused: '주최 측이 대기열을 잠시 멈췄습니다. 순서는 유지됩니다.',
    progress: '들어온 뒤 진행 정도',
    keepOpen: '이 페이지를 열어 두세요. 자동으로 갱신됩니다.',
    retrying: '서비스가 잠시 바쁩니다. 곧 다시 시도하며 순서는 유지됩니다.',
    lostTitle: '대기 순서가 끝났습니다',
    lostWhy: '페이지를 오래 닫았거나 구매 시간이 끝나면 순서가 끝납니다. 맨 뒤에서 다시 줄을 설 수 있습니다.',
    rejoin: '다시 들어가기',
    activeTitle: '내 차례입니다',
    activeUntil: '{time}까지 좌석을 고를 수 있습니다.',
    schedules: '날짜',
    scheduleOption: '{date} · {capacity}석 중 {available}석 남음',
    seats: '좌석',
    legendAvailable: '선택 가능',
    legendHeld: '선점됨',
    legendSold: '판매됨',
    legendMine: '내 좌석',
    seatLabel: '{n}번 좌석, {price}원, {status}',
    refreshSeats: '좌석 새로고침',
    holdsTitle: '선점한 좌석',
    noHolds: '선택 가능한 좌석을 누르면 선점됩니다.',
    holdLine: '{n}번 좌석 ({price}원)',
    holdCountdown: '선점 남은 시간 {left}',
    holdExpired: '선점 시간이 끝났습니다. 다시 골라 주세요.',
    release: '취소',
    total: '합계: {amount}원',
    balanceTitle: '잔액',
    balance: '{amount}원',
    chargeAmount: '충전할 금액(원)',
    charge: '충전하기',
    pay: '선점 좌석 결제',
    doneTitle: '구매 완료',
    doneText: '{amount}원을 결제했습니다. 예약 번호:',
    err_UNAUTHENTICATED: '로그아웃되었습니다. 다시 로그인해 주세요.',
    err_VALIDATION_FAILED: '요청이 받아들여지지 않았습니다: {message}',
    err_INSUFFICIENT_BALANCE: '잔액이 부족합니다. 먼저 충전해 주세요.',
    err_NOT_ADMITTED: '아직 차례가 아닙니다.',
    err_NOT_FOUND: '찾을 수 없습니다: {message}',
    err_SEAT_UNAVAILABLE: '방금 다른 분이 선택한 좌석입니다. 다른 좌석을 골라 주세요.',
    err_HOLD_EXPIRED: '결제 전에 선점 시간이 끝났습니다. 좌석을 다시 선점해 주세요.',
    err_ALREADY_PAID: '이미 결제된 예약입니다.',
    err_HOLD_LIMIT_REACHED: '한 번에 선점할 수 있는 좌석 수를 모두 채웠습니다.',
    err_TICKET_LIMIT_REACHED: '이 공연에서 살 수 있는 매수를 모두 채웠습니다.',
    err_QUEUE_CLOSED: '이 공연의 대기열이 닫혔습니다.',
    err_CHALLENGE_FAILED: '브라우저 확인을 통과하지 못했습니다. 다시 들어가 주세요.',
    err_RATE_LIMITED: '요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.',
    err_UNAVAILABLE: '서비스가 지금 바쁩니다. 잠시 후 다시 시도해 주세요.',
    err_NETWORK: '서비스에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
    err_WORKER: '이 브라우저에서는 브라우저 확인을 실행할 수 없습니다.',
    err_unknown: '문제가 생겼습니다: {message}',
    err_noConcert: '없는 공연입니다.',
    err_badUserId: '사용자 번호(정수)를 입력해 주세요.',
    err_badAmount: '1원부터 10,000,000원까지 입력해 주세요.',
  },
};

const LANG_KEY = 'fan.lang';
const vars = new WeakMap();
let lang = pickInitial();

function pickInitial() {
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch { /* storage off: the page's language stands */ }
  if (saved === 'en' || saved === 'ko') return saved;
  return document.documentElement.lang === 'ko' ? 'ko' : 'en';
}

export const currentLang = () => lang;

/** The string for key in the current language, {name} filled from values. */
export function t(key, values = {}) {
  const table = STRINGS[lang];
  const text = table[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : ''));
}

export const hasKey = (key) => key in STRINGS.en;

/** Writes key's text into el, remembered for a language switch. */
export function setText(el, key, values) {
  el.dataset.t = key;
  if (values) vars.set(el, values); else vars.delete(el);
  el.textContent = t(key, values);
  return el;
}

/** Numbers and dates the way the current language writes them. */
const locale = () => (lang === 'ko' ? 'ko-KR' : 'en-GB');
export const num = (n) => new Intl.NumberFormat(locale()).format(n);
export const dateTime = (iso) => new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
export const timeOnly = (iso) => new Intl.DateTimeFormat(locale(), { timeStyle: 'short' }).format(new Date(iso));

/** Switches the whole page in place and remembers the choice. */
export function setLang(next) {
  lang = next;
  try { localStorage.setItem(LANG_KEY, next); } catch { /* not remembered, still switched */ }
  document.documentElement.lang = next;
  document.title = t('site');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t, vars.get(el));
  for (const fn of listeners) fn();
}

const listeners = [];
/** Runs after a switch, for texts set outside setText (attributes). */
export const onLangChange = (fn) => listeners.push(fn);

export function startLang() {
  document.documentElement.lang = lang;
  document.title = t('site');
}
