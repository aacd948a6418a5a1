import { randomUUID } from 'node:crypto';

/**
 * A reservation id names its concert (`<concertId>-<uuid>`), so the server finds the concert's
 * Redis slot without asking SQL, which learns of holds only through the write-behind stream.
 */
export const RESERVATION_ID = /^([1-9]\d{0,14})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export function newReservationId(concertId: number): string {
  return `${concertId}-${randomUUID()}`;
}

/** The concert of a well-formed reservation id; null for any other string. */
export function concertOfReservation(id: string): number | null {
  const m = RESERVATION_ID.exec(id);
  return m ? Number(m[1]) : null;
}
