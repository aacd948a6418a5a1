import { sql, type ExpressionBuilder, type Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database, TokenType } from '../../store/schema.ts';
import { insertMissingUsers } from '../identity/users.repo.ts';

type Conn = Db | Transaction<Database>;

/** A token's row; `now` is when it was issued. */
export async function insertToken(db: Conn, t: {
  jti: string; userId: number; typ: TokenType; concertId?: number; seq?: number; expiresAt: number; now: number;
}): Promise<void> {
  await db.insertInto('tokens').values({
    jti: t.jti, user_id: t.userId, typ: t.typ, concert_id: t.concertId ?? null, seq: t.seq ?? null,
    expires_at: t.expiresAt, revoked_at: null, created_at: t.now,
  }).onConflict((oc) => oc.column('jti').doNothing()).execute(); // a jti is random: only the same token conflicts
}

/**
 * User tokens in one commit: their users (created with balance 0 if new) and the token rows.
 * PostgreSQL takes both in one statement (one round trip, its own transaction); SQLite, which has
 * no writes inside WITH, in one transaction. Users are inserted in id order, so two batches that
 * create the same new users wait for each other instead of deadlocking. Safe to run again: both
 * inserts skip rows already there.
 */
export async function insertUserTokens(db: Db, ts: { jti: string; userId: number; expiresAt: number; now: number }[]): Promise<void> {
  if (ts.length === 0) return;
  const users = [...new Map(ts.map((t) => [t.userId, t.now])).entries()].sort((a, b) => a[0] - b[0]);
  if (isPostgres(db)) {
    // The rows go as one array a column (unnest), so the statement's text is the same for every
    // batch: nothing to build per row on the hot path, and PostgreSQL parses one shape.
    await sql`WITH new_users AS (
        INSERT INTO "users" (id, balance, created_at)
        SELECT id, 0, created_at FROM unnest(${users.map((u) => u[0])}::bigint[], ${users.map((u) => u[1])}::bigint[]) AS u (id, created_at)
        ORDER BY id
        ON CONFLICT (id) DO NOTHING)
      INSERT INTO "tokens" (jti, user_id, typ, concert_id, seq, expires_at, revoked_at, created_at)
      SELECT jti, user_id, 'user', NULL, NULL, expires_at, NULL, created_at
      FROM unnest(${ts.map((t) => t.jti)}::text[], ${ts.map((t) => t.userId)}::bigint[],
        ${ts.map((t) => t.expiresAt)}::bigint[], ${ts.map((t) => t.now)}::bigint[]) AS t (jti, user_id, expires_at, created_at)
      ON CONFLICT (jti) DO NOTHING`.execute(db);
    return;
  }
  await db.transaction().execute(async (trx) => {
    await insertMissingUsers(trx, users.map(([id, now]) => ({ id, balance: 0, created_at: now }))).execute();
    await trx.insertInto('tokens').values(ts.map((t) => ({
      jti: t.jti, user_id: t.userId, typ: 'user' as const, concert_id: null, seq: null,
      expires_at: t.expiresAt, revoked_at: null, created_at: t.now,
    }))).onConflict((oc) => oc.column('jti').doNothing()).execute();
  });
}

/** insertToken for many tokens in one statement. */
export async function insertTokens(db: Conn, ts: {
  jti: string; userId: number; typ: TokenType; concertId?: number; seq?: number; expiresAt: number; now: number;
}[]): Promise<void> {
  if (ts.length === 0) return;
  if (isPostgres(db)) {
    // One array a column (unnest), rows in the given order: the same statement text for every batch.
    await sql`INSERT INTO tokens (jti, user_id, typ, concert_id, seq, expires_at, revoked_at, created_at)
      SELECT jti, user_id, typ, concert_id, seq, expires_at, NULL, created_at
      FROM unnest(${ts.map((t) => t.jti)}::text[], ${ts.map((t) => t.userId)}::bigint[], ${ts.map((t) => t.typ)}::text[],
        ${ts.map((t) => t.concertId ?? null)}::bigint[], ${ts.map((t) => t.seq ?? null)}::bigint[], ${ts.map((t) => t.expiresAt)}::bigint[],
        ${ts.map((t) => t.now)}::bigint[]) WITH ORDINALITY AS t (jti, user_id, typ, concert_id, seq, expires_at, created_at, n)
      ORDER BY n
      ON CONFLICT (jti) DO NOTHING`.execute(db);
    return;
  }
  await db.insertInto('tokens').values(ts.map((t) => ({
    jti: t.jti, user_id: t.userId, typ: t.typ, concert_id: t.concertId ?? null, seq: t.seq ?? null,
    expires_at: t.expiresAt, revoked_at: null, created_at: t.now,
  }))).onConflict((oc) => oc.column('jti').doNothing()).execute();
}

export async function revokeTokens(db: Conn, jtis: string[], now: number): Promise<void> {
  if (jtis.length === 0) return;
  if (isPostgres(db)) {
    await sql`UPDATE tokens SET revoked_at = ${now} WHERE jti = ANY(${jtis}::text[]) AND revoked_at IS NULL`.execute(db);
    return;
  }
  await db.updateTable('tokens').set({ revoked_at: now }).where('jti', 'in', jtis).where('revoked_at', 'is', null).execute();
}

/**
 * Revokes a queue token, recording it revoked if SQL has no row for it yet (its record still on
 * the way): the row then stays the token's answer, and a record arriving later (an insert that
 * skips existing rows) or an adoption (adoptPlace) cannot make it live again.
 */
export async function revokeQueueToken(db: Conn, t: {
  jti: string; userId: number; concertId: number; seq: number; issuedAt: number; expiresAt: number;
}, now: number): Promise<void> {
  await db.insertInto('tokens').values({
    jti: t.jti, user_id: t.userId, typ: 'queue', concert_id: t.concertId, seq: t.seq,
    expires_at: t.expiresAt, revoked_at: now, created_at: t.issuedAt,
  }).onConflict((oc) => oc.column('jti').doUpdateSet({ revoked_at: now }).where('tokens.revoked_at', 'is', null)).execute();
}

export async function revokeToken(db: Conn, jti: string, now: number): Promise<void> {
  await db.updateTable('tokens').set({ revoked_at: now }).where('jti', '=', jti).where('revoked_at', 'is', null).execute();
}

/** The tokens of a concert's pre-queued fans, drawn (or not) as `prequeue_entries.drawn_seq` records. */
const prequeuedJtis = (concertId: number, drawn: boolean) => (eb: ExpressionBuilder<Database, any>) =>
  eb.selectFrom('prequeue_entries as p').select('p.jti').where('p.concert_id', '=', concertId).where('p.drawn_seq', drawn ? 'is not' : 'is', null);

/** The draw's tokens take their entry numbers; the tokens of fans the draw left out end. */
export async function settleDrawnTokens(trx: Transaction<Database>, concertId: number, now: number): Promise<void> {
  await trx.updateTable('tokens')
    .set((eb) => ({ seq: eb.selectFrom('prequeue_entries as p').select('p.drawn_seq').whereRef('p.jti', '=', 'tokens.jti') }))
    .where('jti', 'in', prequeuedJtis(concertId, true)).execute();
  await trx.updateTable('tokens').set({ revoked_at: now })
    .where('revoked_at', 'is', null).where('jti', 'in', prequeuedJtis(concertId, false)).execute();
}

export async function isTokenLive(db: Db, jti: string, now: number): Promise<boolean> {
  const row = await db.selectFrom('tokens').select('jti')
    .where('jti', '=', jti).where('revoked_at', 'is', null).where('expires_at', '>', now)
    .executeTakeFirst();
  return row !== undefined;
}

/** A queue token's record, read back to sign the token from it (the same string for every reader). */
export async function queueTokenRecord(db: Db | Transaction<Database>, jti: string) {
  return db.selectFrom('tokens').select(['user_id', 'concert_id', 'seq', 'expires_at', 'revoked_at', 'created_at'])
    .where('jti', '=', jti).where('typ', '=', 'queue').executeTakeFirst();
}

export type TokenRow = NonNullable<Awaited<ReturnType<typeof queueTokenRecord>>>;

/** queueTokenRecord for many token ids at once, by id. */
export async function queueTokenRecords(db: Db | Transaction<Database>, jtis: string[]): Promise<Map<string, TokenRow>> {
  if (jtis.length === 0) return new Map();
  const ids = [...new Set(jtis)];
  const rows = isPostgres(db)
    ? (await sql<TokenRow & { jti: string }>`SELECT jti, user_id, concert_id, seq, expires_at, revoked_at, created_at
        FROM tokens WHERE jti = ANY(${ids}::text[]) AND typ = 'queue'`.execute(db)).rows
    : await db.selectFrom('tokens').select(['jti', 'user_id', 'concert_id', 'seq', 'expires_at', 'revoked_at', 'created_at'])
      .where('jti', 'in', ids).where('typ', '=', 'queue').execute();
  return new Map(rows.map(({ jti, ...r }) => [jti, r]));
}

/** Moves a live token's expiry later (never earlier); returns the expiry now recorded, or null when it is not live. */
export async function extendTokenExpiry(db: Db, jti: string, expiresAt: number, now: number): Promise<number | null> {
  await db.updateTable('tokens').set({ expires_at: expiresAt })
    .where('jti', '=', jti).where('revoked_at', 'is', null).where('expires_at', '>', now).where('expires_at', '<', expiresAt)
    .execute();
  const row = await db.selectFrom('tokens').select(['expires_at', 'revoked_at']).where('jti', '=', jti).executeTakeFirst();
  return row && row.revoked_at === null && row.expires_at > now ? row.expires_at : null;
}
