/**
 * The test tiers: every tests/*.test.ts file in exactly one (tests/tiers.test.ts checks it).
 * `bun scripts/test-tier.ts <tier>` runs one; `npm test` still runs every file.
 *
 * fast: units, Lua scripts and the HTTP contract on SQLite, for the edit-test loop (under 30 s);
 *   needs only redis-server. Its PostgreSQL half runs with the integration tier.
 * integration: PostgreSQL-only suites, Sentinel, Cluster, Chromium, Docker, the Node build,
 *   child processes started as the service (start-up, shutdown, demo).
 * chaos: the fault checker and the suites that kill, freeze or stop Redis and PostgreSQL.
 */
export type Tier = 'fast' | 'integration' | 'chaos';

export const TIERS: Record<Tier, readonly string[]> = {
  fast: [
    // Units and the Lua scripts on a bare redis-server.
    'codecs.test.ts',
    'config.test.ts',
    'draw-uniformity.test.ts',
    'draw-verify.test.ts',
    'hold-scripts.test.ts',
    'jwt.test.ts',
    'scripts.test.ts',
    'table-writers.test.ts',
    'tiers.test.ts',
    // The HTTP contract, in both service modes.
    'http-admin.test.ts',
    'http-catalog.test.ts',
    'http-cors-limits.test.ts',
    'http-draw.test.ts',
    'http-ops.test.ts',
    'http-queue-eta.test.ts',
    'http-queue-time.test.ts',
    'http-queue.test.ts',
    'http-tokens.test.ts',
    'validation-messages.test.ts',
    // Holds, admissions, rate limits and the SQL record behind Redis.
    'admission-record.test.ts',
    'admission-write-through.test.ts',
    'concert-load.test.ts',
    'hold-write-through.test.ts',
    'holds-retry.test.ts',
    'join-group-commit.test.ts',
    'place-adoption.test.ts',
    'streamed-token-records.test.ts',
    'place-recovery.test.ts',
    'rate-limit.test.ts',
    'seq-collision.test.ts',
    'write-behind.test.ts',
  ],
  integration: [
    // Service suites that take seconds each (races, two instances, sales models, simulations,
    // property-based checks).
    'admission-multi.test.ts',
    'console-samples.test.ts',
    'eta-sim.test.ts',
    'holds-race.test.ts',
    'identity.test.ts',
    'join-pow.test.ts',
    'mode-fence.test.ts',
    'paid-stays-paid.test.ts',
    'property.test.ts',
    'payments-multi.test.ts',
    'payments.test.ts',
    'queue-race.test.ts',
    'rebuild-drain.test.ts',
    'reservations.test.ts',
    'sales-model.test.ts',
    'sales-random.test.ts',
    'token-lifecycle.test.ts',
    'write-behind-backlog.test.ts',
    // PostgreSQL only, or a private PostgreSQL cluster.
    'token-group-commit.test.ts',
    'write-behind-locks.test.ts',
    // Sentinel and Cluster topologies.
    'cluster.test.ts',
    'infra-redis-reconnect.test.ts',
    'replica-wait.test.ts',
    'topology.test.ts',
    // Chromium.
    'openapi.test.ts',
    'pages-console.test.ts',
    'pages-fan.test.ts',
    'pow-worker-browser.test.ts',
    // Docker (skipped without an engine unless CI is set) and the compose topology.
    'infra.test.ts',
    // The service as a process: start-up, shutdown, the Node build, the demo.
    'demo.test.ts',
    'node-runtime.test.ts',
    'shutdown.test.ts',
    'startup-anywhere.test.ts',
    'startup-errors.test.ts',
    'startup-mode.test.ts',
  ],
  chaos: [
    // The fault checker, the failover drills, Redis killed or frozen, PostgreSQL stopped or slow.
    'chaos-checker.test.ts',
    'chaos.test.ts',
    'drill.test.ts',
    'resilience.test.ts',
    'sql-outage.test.ts',
  ],
};

export const isTier = (name: string): name is Tier => Object.hasOwn(TIERS, name);
