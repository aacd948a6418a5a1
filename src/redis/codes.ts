import { AppError, errors, UnknownQueueTokenError } from '../errors.ts';

/** Numeric codes returned by the Lua scripts (first element of every reply). */
export enum ScriptCode {
  Ok = 0,
  UnknownToken = 1,
  NotAdmitted = 2,
  PlaceLost = 3,
  QueueClosed = 4,
  NotFound = 5,
  SeatUnavailable = 6,
  HoldLimit = 7,
  HoldExpired = 8,
  Forbidden = 9,
  AlreadyPaid = 10,
  NoQueue = 11,
  TickTaken = 12,
  ShowStarted = 13,
  Reloading = 14,
  TicketLimit = 15,
  DrawPending = 16,
  Prequeued = 17,
  /** joinQueue: the next entry number is above the ceiling SQL reserved (reserveEntryNumbers). */
  SeqCeiling = 18,
}

/** Turns a script's failure code into the domain error the client sees. */
export function scriptError(code: number, ctx: { maxHolds?: number; maxTickets?: number; what?: string } = {}): AppError {
  switch (code as ScriptCode) {
    case ScriptCode.UnknownToken: return new UnknownQueueTokenError();
    case ScriptCode.NotAdmitted: return errors.notAdmitted();
    case ScriptCode.PlaceLost: return errors.unauthenticated('your place in the queue was lost (left, expired or not polled within the grace period)');
    case ScriptCode.QueueClosed: return errors.queueClosed();
    case ScriptCode.NotFound: return errors.notFound(ctx.what ?? 'resource');
    case ScriptCode.SeatUnavailable: return errors.seatUnavailable();
    case ScriptCode.HoldLimit: return errors.holdLimit(ctx.maxHolds ?? 0);
    case ScriptCode.TicketLimit: return errors.ticketLimit(ctx.maxTickets ?? 0);
    case ScriptCode.HoldExpired: return errors.holdExpired();
    case ScriptCode.Forbidden: return errors.forbidden('this reservation belongs to someone else');
    case ScriptCode.AlreadyPaid: return errors.alreadyPaid();
    case ScriptCode.ShowStarted: return errors.seatUnavailable('this show has already started');
    case ScriptCode.DrawPending: return errors.unavailable('the sale opens with a draw that is being made; retry in a moment', 1);
    case ScriptCode.Reloading: return errors.unavailable('the waiting room is being reloaded; retry in a moment', 1);
    default: return new AppError(503, 'UNAVAILABLE', `unexpected script code ${code}`, undefined, 1);
  }
}
