/** A Redis call that failed because Redis is unreachable, frozen, read-only or failing over. */
export function isRedisFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { name?: string; message?: string };
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'TaskCancelledError' || e.name === 'BrokenCircuitError') return true;
  return /Command timed out|Connection is closed|Stream isn't writeable|Reached the max retries|READONLY|NOREPLICAS|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|None of the sentinels are available|All sentinels are unreachable|Failed to refresh slots cache/
    .test(e.message ?? '');
}

/**
 * A SQL call that failed because the database is unreachable or busy, or a transaction lost a
 * deadlock or serialization race: nothing was changed, and the same request may be retried.
 */
export function isSqlFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: string; message?: string };
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P03', '08006', '08001', '08003', '40P01', '40001', '55P03', '57014', 'SQLITE_BUSY'].includes(e.code ?? '') ||
    /Connection terminated|database is locked|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (starting up|shutting down)/i.test(e.message ?? '');
}
