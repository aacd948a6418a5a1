#!/usr/bin/env bash
# Builds the images infra/docker-compose.yml names, from this machine's own binaries, for a
# Docker engine that cannot pull from any registry (CI here). Nothing is pulled: each image is a
# root filesystem of host binaries plus the libraries `ldd` lists, loaded with `docker import`.
#
#   infra/local-images.sh [redis] [postgres] [app]     (default: all three)
#
# Tags are the compose file's own, so the unchanged file runs on them:
#   redis:7.0        redis-server, redis-cli and a shell from the host (Debian's 7.0)
#   postgres:15      the host's PostgreSQL 15 (/usr/lib/postgresql/15) behind a small entrypoint
#                    that honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB like the
#                    official image's; data in /var/lib/postgresql/data, runs as uid 999
#   ticketing:latest the bun binary npm installed, src/ and the production node_modules
# A user with Docker Hub does not need this script: `docker compose up --build` pulls and builds.
# Each image carries the label ticketing.local-image=1, so `docker images -f label=...` finds them.
# Needs: docker (DOCKER_HOST honoured), ldd, tar; redis-server and PostgreSQL 15 installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_DIR="${PG_DIR:-/usr/lib/postgresql/15}"
LABEL="ticketing.local-image=1"

work="$(mktemp -d "${TMPDIR:-/tmp}/local-images-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A fresh root filesystem with Debian's merged-/usr layout, so the paths `ldd` prints
# (/lib/x86_64-linux-gnu/...) and the binaries' own paths land in one tree.
new_rootfs() {
  local root="$work/$1"
  rm -rf "$root"
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,tmp,var,root}
  ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"
  echo "$root"
}

# Copies files (symlinks followed) to the same path inside the root filesystem.
copy_in() {
  local root=$1; shift
  local f
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
  done
}

# Copies binaries or shared objects and every library `ldd` resolves for them (the dynamic
# loader included). A static binary has no list; a library that is not found is an error.
copy_with_libs() {
  local root=$1; shift
  local f libs
  for f in "$@"; do
    copy_in "$root" "$f"
    libs="$(ldd "$f" 2>/dev/null || true)"
    if grep -q 'not found' <<<"$libs"; then
      echo "local-images: $f: a library is missing:" >&2
      grep 'not found' <<<"$libs" >&2
      exit 1
    fi
    # "libx.so => /lib/.../libx.so (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs" | sort -u | while read -r lib; do
      [ -e "$root$lib" ] || copy_in "$root" "$lib"
    done
  done
}

# The image from a root filesystem. Everything belongs to root, except the paths listed in
# owned_paths (relative to root, e.g. ./var/lib/postgresql), which belong to owned_uid: they are
# appended to the archive with their own owner, so no chown (and no root) is needed here.
import_image() {
  local root=$1 tag=$2 owned_uid=$3 owned_paths=$4; shift 4
  local archive="$work/$(basename "$root").tar" excludes=() p
  for p in $owned_paths; do excludes+=(--exclude="$p"); done
  tar -C "$root" -cf "$archive" --numeric-owner --owner=0 --group=0 "${excludes[@]}" .
  if [ -n "$owned_paths" ]; then
    # shellcheck disable=SC2086 # a list of paths
    tar -C "$root" -rf "$archive" --numeric-owner --owner="$owned_uid" --group="$owned_uid" $owned_paths
  fi
  local changes=(--change "LABEL $LABEL") c
  for c in "$@"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" "$archive" "$tag" >/dev/null
  echo "local-images: $tag ($(du -m "$archive" | cut -f1) MB)"
}

build_redis() {
  local root; root="$(new_rootfs redis)"
  # The healthcheck runs `redis-cli ... | grep -q PONG` in a shell; the sentinel entrypoint
  # uses mkdir, dirname and cat.
  copy_with_libs "$root" "$(command -v redis-server)" "$(command -v redis-cli)" /bin/sh \
    "$(command -v cat)" "$(command -v mkdir)" "$(command -v dirname)" "$(command -v grep)"
  ln -sf redis-server "$root/usr/bin/redis-sentinel"
  mkdir -p "$root/data"
  import_image "$root" redis:7.0 0 "" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'WORKDIR /data' 'EXPOSE 6379' 'CMD ["redis-server"]'
}

build_postgres() {
  [ -x "$PG_DIR/bin/postgres" ] || { echo "local-images: no PostgreSQL at $PG_DIR (set PG_DIR)" >&2; exit 1; }
  local major; major="$(basename "$PG_DIR")"
  local root; root="$(new_rootfs postgres)"
  local bins=() b
  for b in postgres initdb pg_ctl pg_isready psql; do bins+=("$PG_DIR/bin/$b"); done
  # Every server module but the JIT provider (llvmjit.so pulls in 100 MB of LLVM; without it
  # the server runs with jit unavailable, as plenty of builds do).
  for b in "$PG_DIR"/lib/*.so; do case "$b" in */llvmjit*) ;; *) bins+=("$b") ;; esac; done
  copy_with_libs "$root" "${bins[@]}" /bin/sh "$(command -v rm)"
  mkdir -p "$root/usr/share/postgresql"
  cp -a "/usr/share/postgresql/$major" "$root/usr/share/postgresql/"
  cp -a /usr/share/zoneinfo "$root/usr/share/"
  printf 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >> "$root/etc/passwd"
  printf 'postgres:x:999:\n' >> "$root/etc/group"
  mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
  chmod 700 "$root/var/lib/postgresql/data"
  mkdir -p "$root/usr/local/bin"
  cat > "$root/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# First start on an empty data directory: a cluster whose superuser is POSTGRES_USER (password
# POSTGRES_PASSWORD, required for TCP) and a database POSTGRES_DB. Then the given command.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  user="${POSTGRES_USER:-postgres}"
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
  initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$db" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi
exec "$@"
ENTRY
  chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
  import_image "$root" "postgres:$major" 999 "./var/lib/postgresql ./var/run/postgresql" \
    "ENV PATH=/usr/local/sbin:/usr/local/bin:$PG_DIR/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    'ENV PGDATA=/var/lib/postgresql/data' 'ENV TZ=UTC' 'USER postgres' 'EXPOSE 5432' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
}

build_app() {
  # node_modules/.bin/bun is the real binary once bun's postinstall has run (npm ci does).
  local bun; bun="$(readlink -f "$ROOT/node_modules/.bin/bun")"
  if [ "$(head -c 4 "$bun" | tail -c 3)" != ELF ]; then
    echo "local-images: $bun is not the bun binary (did npm run bun's postinstall?)" >&2
    exit 1
  fi
  local root; root="$(new_rootfs app)"
  mkdir -p "$root/usr/local/bin" "$root/app" "$root/home/bun"
  cp "$bun" "$root/usr/local/bin/bun"
  copy_with_libs "$root" /bin/sh
  # ldd of the binary, copied under its image path.
  local tmpbin="$root/usr/local/bin/bun"
  ldd "$tmpbin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u | while read -r lib; do
    [ -e "$root$lib" ] || copy_in "$root" "$lib"
  done
  printf 'bun:x:1000:1000:bun:/home/bun:/bin/sh\n' >> "$root/etc/passwd"
  printf 'bun:x:1000:\n' >> "$root/etc/group"
  cp -a "$ROOT/package.json" "$ROOT/bunfig.toml" "$ROOT/tsconfig.json" "$ROOT/src" "$root/app/"
  # The production dependencies (what `bun install --production` would give), without the bun
  # package itself: the binary is /usr/local/bin/bun.
  (cd "$ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null) | while read -r dir; do
    local rel="${dir#"$ROOT"/}"
    case "$rel" in
      node_modules/*) ;;
      *) continue ;;
    esac
    case "$rel" in node_modules/bun|node_modules/@oven/*) continue ;; esac
    mkdir -p "$root/app/$(dirname "$rel")"
    cp -a "$dir" "$root/app/$rel"
  done
  import_image "$root" ticketing:latest 1000 "./home/bun" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV NODE_ENV=production' 'ENV PORT=3000' 'ENV HOME=/home/bun' \
    'WORKDIR /app' 'USER bun' 'EXPOSE 3000' 'CMD ["bun", "src/main.ts"]'
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(redis postgres app)
docker version --format '{{.Server.Version}}' >/dev/null
for t in "${targets[@]}"; do
  start=$(date +%s%N)
  case "$t" in
    redis) build_redis ;;
    postgres) build_postgres ;;
    app) build_app ;;
    *) echo "local-images: unknown image '$t' (redis, postgres, app)" >&2; exit 2 ;;
  esac
  ms=$((($(date +%s%N) - start) / 1000000))
  printf 'local-images: %s built in %d.%01d s\n' "$t" $((ms / 1000)) $((ms % 1000 / 100))
done
