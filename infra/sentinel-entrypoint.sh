#!/bin/sh
# Writes this sentinel's config and runs it. Sentinel rewrites its config file at run time, so
# the file is generated into a writable place rather than mounted read-only.
#   SENTINEL_PORT, MASTER_PORT (required); MASTER_NAME (mymaster), QUORUM (2),
#   DOWN_AFTER_MS (1000), FAILOVER_TIMEOUT_MS (5000), SENTINEL_CONF (/data/sentinel.conf)
set -eu
: "${SENTINEL_PORT:?SENTINEL_PORT is required}"
: "${MASTER_PORT:?MASTER_PORT is required}"
conf="${SENTINEL_CONF:-/data/sentinel.conf}"
name="${MASTER_NAME:-mymaster}"
mkdir -p "$(dirname "$conf")"
cat > "$conf" <<CONF
port ${SENTINEL_PORT}
bind 127.0.0.1
protected-mode no
dir "$(dirname "$conf")"
sentinel resolve-hostnames no
sentinel announce-hostnames no
sentinel announce-ip 127.0.0.1
sentinel announce-port ${SENTINEL_PORT}
sentinel monitor ${name} 127.0.0.1 ${MASTER_PORT} ${QUORUM:-2}
sentinel down-after-milliseconds ${name} ${DOWN_AFTER_MS:-1000}
sentinel failover-timeout ${name} ${FAILOVER_TIMEOUT_MS:-5000}
sentinel parallel-syncs ${name} 1
CONF
exec redis-server "$conf" --sentinel
