// Every word the fan pages show, in English and Korean. Elements carry their key in data-t so
// that switching the language rewrites them in place (focus and state stay where they are).

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
    signingIn: 'Signing in…',
    idpOnly: 'This site signs you in through its identity provider. Open the sign-in link you were given to come back here signed in.',
    joinTitle: 'Waiting room',
    joinHint: 'Join the line to get your turn to choose seats. Keep this page open; it updates by itself.',
    join: 'Join the line',
    joining: 'Joining…',
    powWorking: 'Checking your browser before joining… {tried} tries so far',
    powDone: 'Check finished; joining…',
    prequeueTitle: 'Sale not open yet',
    prequeueOpens: 'The sale opens in {left}.',
    prequeueOpening: 'The sale is opening; your place is being drawn…',
    prequeueTicket: 'Your draw ticket: {ticket}',
    prequeueHint: 'Everyone who is here before the sale opens gets a place in a fair random draw. You don\'t need to hurry.',
    waitingTitle: 'You are in line',
    position: 'Your place in line',
    ahead: 'People ahead of you',
    eta: 'Estimated wait',
    etaSoon: 'less than a minute',
    etaMinutes: 'about {n} min',
    etaHours: 'about {h} h {m} min',
    etaUnknown: 'not known yet',
    paused: 'The line is paused by the organiser. You keep your place; it moves again when the sale resumes.',
    progress: 'Progress since you joined',
    keepOpen: 'Keep this page open. It checks your place by itself.',
    retrying: 'The service is busy. Trying again in a moment; you keep your place.',
    lostTitle: 'Your place in line has ended',
    lostWhy: 'Places end when the page is closed for too long, the time to buy runs out, or the purchase is done. You can join the line again (at the back).',
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
    paying: 'Paying…',
    doneTitle: 'Purchase complete',
    doneText: 'Paid {amount} won. Your reservations:',
    working: 'Working…',
    // Errors, by the service's code; `unknown` falls back to the service's own message.
    err_UNAUTHENTICATED: 'You are signed out. Sign in again.',
    err_VALIDATION_FAILED: 'The request was not accepted: {message}',
    err_INSUFFICIENT_BALANCE: 'Your balance is too low for this payment. Add money first.',
    err_NOT_ADMITTED: 'It is not your turn yet.',
    err_FORBIDDEN: 'That is not allowed.',
    err_NOT_FOUND: 'Not found: {message}',
    err_SEAT_UNAVAILABLE: 'That seat was just taken. Choose another one.',
    err_HOLD_EXPIRED: 'A hold expired before payment. Hold the seat again.',
    err_ALREADY_PAID: 'That reservation is already paid.',
    err_HOLD_LIMIT_REACHED: 'You hold as many seats as allowed at once.',
    err_TICKET_LIMIT_REACHED: 'You have reached the number of tickets allowed for this concert.',
    err_QUEUE_CLOSED: 'The line for this concert is closed.',
    err_IDEMPOTENCY_KEY_REUSED: 'That request was already made with other details. Try again.',
    err_CHALLENGE_FAILED: 'The browser check did not pass. Try joining again.',
    err_CHALLENGE_REQUIRED: 'A browser check is needed before joining.',
    err_RATE_LIMITED: 'Too many requests. Wait a moment and try again.',
    err_UNAVAILABLE: 'The service is busy right now. Try again in a moment.',
    err_NETWORK: 'Could not reach the service. Check your connection and try again.',
    err_WORKER: 'The browser check could not run in this browser.',
    err_unknown: 'Something went wrong: {message}',
    err_noConcert: 'There is no such concert.',
    err_badUserId: 'Enter your user number (a whole number from 1).',
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
    signingIn: '로그인 중…',
    idpOnly: '이 사이트는 본인 확인 서비스로 로그인합니다. 받은 로그인 링크를 열면 로그인된 상태로 이곳에 돌아옵니다.',
    joinTitle: '대기실',
    joinHint: '대기열에 들어가면 차례가 왔을 때 좌석을 고를 수 있습니다. 이 페이지를 열어 두세요. 자동으로 갱신됩니다.',
    join: '대기열 들어가기',
    joining: '들어가는 중…',
    powWorking: '입장 전 브라우저 확인 중… 지금까지 {tried}번 시도',
    powDone: '확인 완료, 입장하는 중…',
    prequeueTitle: '아직 판매 전입니다',
    prequeueOpens: '판매까지 {left} 남았습니다.',
    prequeueOpening: '판매가 시작됩니다. 순번을 추첨하는 중…',
    prequeueTicket: '추첨 번호: {ticket}',
    prequeueHint: '판매 시작 전에 들어온 모든 분은 공정한 무작위 추첨으로 순번을 받습니다. 서두르지 않으셔도 됩니다.',
    waitingTitle: '대기 중입니다',
    position: '내 대기 순서',
    ahead: '내 앞 인원',
    eta: '예상 대기 시간',
    etaSoon: '1분 미만',
    etaMinutes: '약 {n}분',
    etaHours: '약 {h}시간 {m}분',
    etaUnknown: '아직 알 수 없음',
    paused: '주최 측이 대기열을 잠시 멈췄습니다. 순서는 그대로 유지되며 판매가 재개되면 다시 움직입니다.',
    progress: '들어온 뒤 진행 정도',
    keepOpen: '이 페이지를 열어 두세요. 순서를 자동으로 확인합니다.',
    retrying: '서비스가 잠시 바쁩니다. 곧 다시 시도합니다. 순서는 그대로 유지됩니다.',
    lostTitle: '대기 순서가 끝났습니다',
    lostWhy: '페이지를 너무 오래 닫아 두었거나, 구매 시간이 끝났거나, 구매를 마치면 순서가 끝납니다. 다시 줄을 설 수 있습니다(맨 뒤부터).',
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
    paying: '결제 중…',
    doneTitle: '구매 완료',
    doneText: '{amount}원을 결제했습니다. 예약 번호:',
    working: '처리 중…',
    err_UNAUTHENTICATED: '로그아웃되었습니다. 다시 로그인해 주세요.',
    err_VALIDATION_FAILED: '요청이 받아들여지지 않았습니다: {message}',
    err_INSUFFICIENT_BALANCE: '잔액이 부족합니다. 먼저 충전해 주세요.',
    err_NOT_ADMITTED: '아직 차례가 아닙니다.',
    err_FORBIDDEN: '허용되지 않는 요청입니다.',
    err_NOT_FOUND: '찾을 수 없습니다: {message}',
    err_SEAT_UNAVAILABLE: '방금 다른 분이 선택한 좌석입니다. 다른 좌석을 골라 주세요.',
    err_HOLD_EXPIRED: '결제 전에 선점 시간이 끝났습니다. 좌석을 다시 선점해 주세요.',
    err_ALREADY_PAID: '이미 결제된 예약입니다.',
    err_HOLD_LIMIT_REACHED: '한 번에 선점할 수 있는 좌석 수를 모두 채웠습니다.',
    err_TICKET_LIMIT_REACHED: '이 공연에서 살 수 있는 매수를 모두 채웠습니다.',
    err_QUEUE_CLOSED: '이 공연의 대기열이 닫혔습니다.',
    err_IDEMPOTENCY_KEY_REUSED: '다른 내용으로 이미 보낸 요청입니다. 다시 시도해 주세요.',
    err_CHALLENGE_FAILED: '브라우저 확인을 통과하지 못했습니다. 다시 들어가 주세요.',
    err_CHALLENGE_REQUIRED: '입장 전에 브라우저 확인이 필요합니다.',
    err_RATE_LIMITED: '요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.',
    err_UNAVAILABLE: '서비스가 지금 바쁩니다. 잠시 후 다시 시도해 주세요.',
    err_NETWORK: '서비스에 연결할 수 없습니다. 연결을 확인하고 다시 시도해 주세요.',
    err_WORKER: '이 브라우저에서는 브라우저 확인을 실행할 수 없습니다.',
    err_unknown: '문제가 생겼습니다: {message}',
    err_noConcert: '없는 공연입니다.',
    err_badUserId: '사용자 번호(1 이상의 정수)를 입력해 주세요.',
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

/** Writes a translated text into el and remembers how, so a language switch can rewrite it. */
export function setText(el, key, values) {
  el.dataset.t = key;
  if (values) vars.set(el, values); else vars.delete(el);
  el.textContent = t(key, values);
  return el;
}

/** Numbers and dates the way the current language writes them. */
export const num = (n) => new Intl.NumberFormat(lang === 'ko' ? 'ko-KR' : 'en-US').format(n);
export const dateTime = (iso) => new Intl.DateTimeFormat(lang === 'ko' ? 'ko-KR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
export const timeOnly = (iso) => new Intl.DateTimeFormat(lang === 'ko' ? 'ko-KR' : 'en-GB', { timeStyle: 'short' }).format(new Date(iso));

/** Changes the language of the whole page in place and remembers the choice. */
export function setLang(next) {
  lang = next;
  try { localStorage.setItem(LANG_KEY, next); } catch { /* not remembered, still switched */ }
  document.documentElement.lang = next;
  document.title = t('site');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t, vars.get(el));
  for (const fn of listeners) fn();
}

const listeners = [];
/** Called after a switch, for texts built from several values (countdowns, labels). */
export const onLangChange = (fn) => listeners.push(fn);

export function startLang() {
  document.documentElement.lang = lang;
  document.title = t('site');
}
