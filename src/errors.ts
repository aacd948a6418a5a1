/** A failure the client caused or must know about; mapped to status + code in one place (http/errors.ts). */
export class AppError extends Error {
  constructor(
    readonly status: 400 | 401 | 402 | 403 | 404 | 409 | 422 | 428 | 429 | 503,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/**
 * Redis does not know this queue token (code 1). Usually it was replaced or its place ended;
 * but Redis may also have lost the place (a failover, a master's last writes), while SQL, which
 * recorded it before it was acknowledged, still has it: the queue service looks there first.
 */
export class UnknownQueueTokenError extends AppError {
  constructor() {
    super(401, 'UNAUTHENTICATED', 'token revoked or unknown');
  }
}

export const errors = {
  validation: (message: string, details?: unknown) => new AppError(400, 'VALIDATION_FAILED', message, details),
  unauthenticated: (message = 'a valid token is required') => new AppError(401, 'UNAUTHENTICATED', message),
  notAdmitted: (message = 'your place in the queue has not been admitted yet') => new AppError(403, 'NOT_ADMITTED', message),
  forbidden: (message = 'not allowed') => new AppError(403, 'FORBIDDEN', message),
  notFound: (what: string) => new AppError(404, 'NOT_FOUND', `${what} not found`),
  seatUnavailable: (message = 'the seat is held by someone else or sold') => new AppError(409, 'SEAT_UNAVAILABLE', message),
  holdExpired: () => new AppError(409, 'HOLD_EXPIRED', 'the hold has expired or was released'),
  alreadyPaid: () => new AppError(409, 'ALREADY_PAID', 'this reservation is already paid'),
  holdLimit: (max: number) => new AppError(409, 'HOLD_LIMIT_REACHED', `you already hold ${max} seats`),
  ticketLimit: (max: number) =>
    new AppError(409, 'TICKET_LIMIT_REACHED', `you may hold or buy at most ${max} seats of this concert`),
  insufficientBalance: () => new AppError(402, 'INSUFFICIENT_BALANCE', 'balance is below the price'),
  queueClosed: (message = 'the queue of this concert is closed') => new AppError(409, 'QUEUE_CLOSED', message),
  idempotencyKeyReused: () =>
    new AppError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request'),
  challengeRequired: (bits: number) => new AppError(428, 'CHALLENGE_REQUIRED',
    `joining needs a proof of work: GET /v1/challenge, find a nonce for ${bits} leading zero bits, send {"pow": {"challenge", "nonce"}}`),
  challengeFailed: (message: string) => new AppError(400, 'CHALLENGE_FAILED', message),
  rateLimited: (retryAfter: number) => new AppError(429, 'RATE_LIMITED', 'too many requests', undefined, retryAfter),
  unavailable: (message = 'the service cannot serve this request right now', retryAfter = 2) =>
    new AppError(503, 'UNAVAILABLE', message, undefined, retryAfter),
};
