#!/usr/bin/env bash
# A private Docker engine for tests: its own socket, data root, exec root, pid file and cgroup
# parent, all under one directory, and its own bridge interface instead of docker0. No iptables
# rules, no ip_forward, no masquerading: the compose file uses host networking only, and the
# bridge exists because testcontainers asks the engine for its "bridge" network. A system
# Docker, if any, is never touched. Needs root (dockerd does) and iproute2.
#
#   infra/private-dockerd.sh start DIR   # prints DOCKER_HOST=unix://DIR/docker.sock when ready
#   infra/private-dockerd.sh stop DIR    # removes every container, stops the engine, unmounts
#                                        # and deletes DIR and its cgroups: nothing is left
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
sock="$dir/docker.sock"
# The cgroup parent is named after the directory, so stop knows what to remove.
cgroup="ci-docker-$(basename "$dir")"
# Interface names have at most 15 characters.
bridge="cidk$(basename "$dir" | tr -cd 'A-Za-z0-9' | tail -c 8)"

case "$cmd" in
  start)
    if [ -e "$dir/dockerd.pid" ] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
      echo "private-dockerd: already running in $dir" >&2
      exit 1
    fi
    mkdir -p "$dir/data" "$dir/exec"
    # The bridge's subnet: the first candidate no route of this machine overlaps.
    subnet=""
    for candidate in 10.213.7 10.231.9 172.29.213 192.168.213; do
      if ! ip -4 route | grep -q "^${candidate}\."; then subnet="$candidate"; break; fi
    done
    [ -n "$subnet" ] || { echo "private-dockerd: no free subnet for the bridge" >&2; exit 1; }
    ip link add name "$bridge" type bridge
    ip addr add "$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    # setsid: the engine outlives this script but not the caller's `stop`.
    setsid dockerd \
      --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      -H "unix://$sock" --cgroup-parent "/$cgroup" \
      --bridge "$bridge" --iptables=false --ip-forward=false --ip-masq=false \
      --storage-driver overlay2 >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 150); do
      if DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        echo "DOCKER_HOST=unix://$sock"
        exit 0
      fi
      if ! kill -0 $! 2>/dev/null; then break; fi
      sleep 0.2
    done
    echo "private-dockerd: the engine did not answer on $sock; its log:" >&2
    tail -n 30 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    export DOCKER_HOST="unix://$sock"
    if [ -e "$dir/dockerd.pid" ]; then
      pid="$(cat "$dir/dockerd.pid")"
      if kill -0 "$pid" 2>/dev/null; then
        # Containers first (their mounts and cgroups go with them), then the engine itself.
        ids="$(docker ps -aq 2>/dev/null || true)"
        # shellcheck disable=SC2086 # a list of ids
        [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
        kill -TERM "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
          echo "private-dockerd: engine $pid did not stop in 30 s: killed" >&2
          kill -KILL "$pid" 2>/dev/null || true
          sleep 1
        fi
      fi
    fi
    # Whatever the engine left mounted under DIR (its network namespace file, an overlay after a
    # kill), deepest first, then DIR itself.
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    rm -rf "$dir"
    if ip link show "$bridge" >/dev/null 2>&1; then ip link del "$bridge"; fi
    find /sys/fs/cgroup -maxdepth 2 -type d -name "$cgroup" 2>/dev/null | while read -r cg; do
      rmdir "$cg"/* 2>/dev/null || true
      rmdir "$cg" 2>/dev/null || echo "private-dockerd: could not remove cgroup $cg" >&2
    done
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
