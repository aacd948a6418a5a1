import type { DrainState } from './http/drain.ts';
import type { Logger } from './logger.ts';
import { sleep as pause } from './runtime/index.ts';

export interface ShutdownSteps {
  drain: DrainState;
  /** How long the instance keeps serving after the signal, with /readyz failing. */
  drainSeconds: number;
  /** Stops accepting connections (idle keep-alive ones are closed); requests in flight go on. */
  stopListening: () => Promise<void>;
  /** Stops the background jobs and waits for the passes under way. */
  stopJobs: () => Promise<void>;
  /** Writes to SQL what this instance still owes it (the write-behind streams). */
  flush: () => Promise<unknown>;
  /** Closes Redis and SQL. */
  close: () => Promise<void>;
  log: Logger;
  /** Longest the requests still in flight after the listener stopped may take. */
  inFlightTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Graceful shutdown, in the order that loses nothing:
 * 1. draining: /readyz answers 503 and every answer closes its connection, but the instance
 *    keeps serving for `drainSeconds`, the time a load balancer needs to stop sending here;
 * 2. stop accepting, and wait for every request in flight to be answered;
 * 3. stop the jobs (waiting for their passes), then flush the write-behind once more: what
 *    the last requests queued for SQL is written before SQL closes;
 * 4. close Redis and SQL.
 * Returns the function to call on a signal: the first call runs the sequence, later calls
 * (a second SIGTERM, an impatient Ctrl-C) only log and get the same outcome. Resolves to the
 * exit code: 0, or 1 when requests were still unanswered at the deadline.
 */
export function gracefulShutdown(steps: ShutdownSteps): (signal: string) => Promise<number> {
  const sleep = steps.sleep ?? pause;
  const { log, drain } = steps;
  let outcome: Promise<number> | null = null;

  const run = async (signal: string): Promise<number> => {
    drain.begin();
    log.info('draining: /readyz fails, still serving', { signal, drainSeconds: steps.drainSeconds });
    await sleep(steps.drainSeconds * 1000);

    log.info('no longer accepting connections', { inFlight: drain.requestsInFlight });
    const limit = steps.inFlightTimeoutMs ?? 30_000;
    const answered = await Promise.race([
      Promise.all([steps.stopListening(), drain.idle()]).then(() => true),
      sleep(limit).then(() => false),
    ]);
    if (!answered) log.error('requests still in flight at the shutdown deadline', { inFlight: drain.requestsInFlight, limitMs: limit });

    let code = answered ? 0 : 1;
    await steps.stopJobs().catch((err) => log.warn('stopping the jobs failed', { err }));
    await steps.flush().catch((err) => {
      // Not lost: the entries stay in the stream for the other instances (or the next start).
      log.warn('final write-behind flush failed; the entries stay in Redis for the other instances', { err });
    });
    await steps.close().catch((err) => {
      log.error('closing the connections failed', { err });
      code = 1;
    });
    log.info('shut down', { signal, code });
    return code;
  };

  return (signal: string) => {
    if (outcome) {
      log.info('already shutting down', { signal });
      return outcome;
    }
    outcome = run(signal).catch((err) => {
      log.error('shutdown failed', { err });
      return 1;
    });
    return outcome;
  };
}
