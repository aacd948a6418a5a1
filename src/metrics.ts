import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  return {
    registry,
    requests: new Counter({
      name: 'http_requests_total', help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'] as const, registers: [registry],
    }),
    latency: new Histogram({
      name: 'http_request_duration_seconds', help: 'HTTP request latency by route',
      labelNames: ['route', 'method'] as const, registers: [registry],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    }),
    waiting: new Gauge({ name: 'queue_waiting_users', help: 'Users waiting per concert', labelNames: ['concert'] as const, registers: [registry] }),
    active: new Gauge({ name: 'queue_active_users', help: 'Admitted users per concert', labelNames: ['concert'] as const, registers: [registry] }),
    admissions: new Counter({ name: 'queue_admissions_total', help: 'Users admitted', labelNames: ['concert'] as const, registers: [registry] }),
    placesRestored: new Counter({
      name: 'queue_places_restored_total', help: 'Places a request named that the serving store had lost (Redis) or never recorded (SQL), put back',
      labelNames: ['mode'] as const, registers: [registry],
    }),
    lapsed: new Counter({ name: 'queue_lapsed_total', help: 'Waiting users skipped because their heartbeat lapsed', labelNames: ['concert'] as const, registers: [registry] }),
    writeBehindPending: new Gauge({ name: 'write_behind_pending_entries', help: 'Stream entries not yet committed to SQL', registers: [registry] }),
    writeBehindLag: new Gauge({ name: 'write_behind_lag_seconds', help: 'Age of the oldest stream entry not yet committed to SQL', registers: [registry] }),
    writeBehindApplied: new Counter({ name: 'write_behind_applied_total', help: 'Stream entries committed to SQL', registers: [registry] }),
    mode: new Gauge({ name: 'service_mode', help: '1 for the current mode', labelNames: ['mode'] as const, registers: [registry] }),
    modeTransitions: new Counter({ name: 'service_mode_transitions_total', help: 'Mode changes', labelNames: ['to'] as const, registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
