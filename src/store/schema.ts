import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Times are epoch milliseconds; money is whole won. */
export interface UsersTable {
  id: number;
  balance: number;
  created_at: number;
}

export interface LedgerTable {
  id: Generated<number>;
  user_id: number;
  /** Signed: charges are positive, payments negative. */
  amount: number;
  kind: 'charge' | 'payment';
  ref: string;
  created_at: number;
}

export interface ConcertsTable {
  id: Generated<number>;
  title: string;
  starts_at: number;
  ends_at: number;
  created_at: number;
  /** Scheduled sale: joins before it are pre-queued and drawn (null: open from creation). */
  sale_starts_at: number | null;
  /** The draw's secret seed, revealed once drawn; its lowercase hex SHA-256 is public from creation. */
  draw_seed: string | null;
  draw_commitment: string | null;
  /** Set, once, in the transaction that records the drawn order. */
  drawn_at: number | null;
}

export interface SchedulesTable {
  id: Generated<number>;
  concert_id: number;
  date: number;
  capacity: number;
  price: number;
}

export type SeatStatus = 'available' | 'held' | 'sold';

export interface SeatsTable {
  schedule_id: number;
  seat_number: number;
  concert_id: number;
  price: number;
  status: SeatStatus;
  hold_reservation_id: string | null;
  hold_user_id: number | null;
  hold_expires_at: number | null;
}

export type ReservationStatus = 'held' | 'paid' | 'expired' | 'released';

export interface ReservationsTable {
  id: string;
  user_id: number;
  concert_id: number;
  schedule_id: number;
  seat_number: number;
  price: number;
  status: ReservationStatus;
  expires_at: number;
  created_at: number;
  updated_at: number;
}

export interface PaymentsTable {
  id: string;
  reservation_id: string;
  user_id: number;
  concert_id: number;
  schedule_id: number;
  seat_number: number;
  amount: number;
  created_at: number;
}

export type TokenType = 'user' | 'queue';

export interface TokensTable {
  jti: string;
  user_id: number;
  typ: TokenType;
  concert_id: number | null;
  seq: number | null;
  expires_at: number;
  revoked_at: number | null;
  created_at: number;
}

/** The queue token a join made with `src_jti` issued (see join-replays.repo.ts). */
export interface JoinReplaysTable {
  src_jti: string;
  concert_id: number;
  queue_jti: string;
  user_id: number;
  created_at: number;
}

/** A proof-of-work challenge used for a join (src/modules/pow/spent-challenges.repo.ts). */
export interface SpentChallengesTable {
  id: string;
  /** The join that spent it: `<jti of the token the join was made with>:<concertId>`. */
  spent_by: string;
  keep_until: number;
}

export type QueueEntryStatus = 'waiting' | 'active' | 'left' | 'expired' | 'done';

export interface QueueEntriesTable {
  concert_id: number;
  seq: number;
  user_id: number;
  status: QueueEntryStatus;
  joined_at: number;
  admitted_at: number | null;
  active_until: number | null;
  last_seen_at: number;
  updated_at: number;
}

export type PrequeueStatus = 'waiting' | 'left' | 'lapsed';

/** A fan pre-queued for a scheduled sale; `drawn_seq` is the entry number the draw gave. */
export interface PrequeueEntriesTable {
  concert_id: number;
  user_id: number;
  ticket: string;
  jti: string;
  status: PrequeueStatus;
  joined_at: number;
  last_seen_at: number;
  drawn_seq: number | null;
}

/** One row per concert: the queue's counters and configuration. */
export interface QueueStateTable {
  concert_id: number;
  last_seq: number;
  last_admitted_seq: number;
  admitted_total: number;
  max_active: number;
  admit_per_second: number;
  active_ttl_seconds: number;
  paused: number;
  last_tick: number;
  /** The wait estimate's state (src/modules/queue/eta.ts); Generated: they have defaults. */
  eta_state: Generated<string | null>;
  eta_mean_hold: Generated<number | null>;
  eta_spread: Generated<number>;
  /** The highest entry number Redis mode may give out, reserved before it does (Generated: default 0). */
  seq_ceiling: Generated<number>;
}

export interface IdempotencyKeysTable {
  user_id: number;
  scope: string;
  key: string;
  request_hash: string;
  status_code: number;
  response_body: string;
  created_at: number;
}

export interface ServiceModeTable {
  id: number;
  mode: 'redis' | 'sql' | 'rebuilding';
  epoch: number;
  owner: string | null;
  reason: string | null;
  updated_at: number;
}

/** AUTH_MODE=jwt: the service's own user id of an identity-provider subject. */
export interface IdentitiesTable {
  iss: string;
  sub: string;
  user_id: number;
  created_at: number;
}

/** One row (id 1): the last user id handed to a new identity. */
export interface UserIdCounterTable {
  id: number;
  last_id: number;
}

/** The operator console's samples in SQL mode: one row per concert per sampling slot (src/jobs/console-sampler.ts). */
export interface ConsoleSamplesTable {
  concert_id: number;
  slot: number;
  at: number;
  waiting: number;
  active: number;
  admitted_total: number;
  lag_seconds: number | null;
  mode: string;
  /** JSON list of {at, from, to}, or null when the mode did not change. */
  mode_changes: string | null;
}

/** One row (id 1): the last sampling slot an instance claimed. */
export interface ConsoleSamplerTable {
  id: number;
  last_slot: number;
}

export interface Database {
  users: UsersTable;
  ledger: LedgerTable;
  concerts: ConcertsTable;
  schedules: SchedulesTable;
  seats: SeatsTable;
  reservations: ReservationsTable;
  payments: PaymentsTable;
  tokens: TokensTable;
  join_replays: JoinReplaysTable;
  spent_challenges: SpentChallengesTable;
  queue_entries: QueueEntriesTable;
  queue_state: QueueStateTable;
  prequeue_entries: PrequeueEntriesTable;
  idempotency_keys: IdempotencyKeysTable;
  service_mode: ServiceModeTable;
  identities: IdentitiesTable;
  user_id_counter: UserIdCounterTable;
  console_samples: ConsoleSamplesTable;
  console_sampler: ConsoleSamplerTable;
}

export type User = Selectable<UsersTable>;
export type Concert = Selectable<ConcertsTable>;
export type NewConcert = Insertable<ConcertsTable>;
export type Schedule = Selectable<SchedulesTable>;
export type Seat = Selectable<SeatsTable>;
export type Reservation = Selectable<ReservationsTable>;
export type NewReservation = Insertable<ReservationsTable>;
export type Payment = Selectable<PaymentsTable>;
export type TokenRow = Selectable<TokensTable>;
export type QueueEntry = Selectable<QueueEntriesTable>;
export type QueueState = Selectable<QueueStateTable>;
export type PrequeueEntry = Selectable<PrequeueEntriesTable>;
export type QueueStateUpdate = Updateable<QueueStateTable>;
