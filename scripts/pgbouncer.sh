#!/usr/bin/env bash
# Runs PgBouncer in the foreground from deploy/pgbouncer/pgbouncer.ini (transaction mode).
#   scripts/pgbouncer.sh DIR LISTEN UPSTREAM   e.g. scripts/pgbouncer.sh /tmp/pgb 127.0.0.1:6432 127.0.0.1:5432
# DIR holds the rendered configuration, its users file and the pid file. PGBOUNCER_USERS
# ("user:password ...", default "keel:keel") are the logins it accepts and passes on;
# KEEL_DB_STATEMENT_TIMEOUT (default 2s) the statement timeout of its server connections;
# PGBOUNCER_MIN_POOL_SIZE (default 5) the server connections kept open per database and
# PGBOUNCER_SERVER_IDLE_TIMEOUT (default 600) the seconds an idle one stays.
# Keel then connects with KEEL_DATABASE_URL=postgres://keel:keel@LISTEN/keel,
# KEEL_DATABASE_POOLING=transaction and KEEL_DATABASE_DIRECT_URL at UPSTREAM.
# PGBOUNCER_RENDER_ONLY=1 prints the rendered configuration and runs nothing (the Kubernetes
# manifests' copy, deploy/k8s/base/pgbouncer.ini, is checked against it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PGBOUNCER_RENDER_ONLY:-}" ]; then dir=$1; else dir=$(mkdir -p "$1" && cd "$1" && pwd); fi
listen=$2 upstream=$3
timeout="${KEEL_DB_STATEMENT_TIMEOUT:-2s}"
case "$timeout" in
    *ms) timeout_ms=${timeout%ms} ;;
    *s) timeout_ms=$(( ${timeout%s} * 1000 )) ;;
    *) timeout_ms=$timeout ;;
esac
render() {
    sed -e "s|__LISTEN_ADDR__|${listen%:*}|" -e "s|__LISTEN_PORT__|${listen##*:}|" \
        -e "s|__PG_HOST__|${upstream%:*}|" -e "s|__PG_PORT__|${upstream##*:}|" \
        -e "s|__DIR__|$dir|g" -e "s|__STATEMENT_TIMEOUT_MS__|$timeout_ms|" \
        -e "s|__MIN_POOL_SIZE__|${PGBOUNCER_MIN_POOL_SIZE:-5}|" \
        -e "s|__SERVER_IDLE_TIMEOUT__|${PGBOUNCER_SERVER_IDLE_TIMEOUT:-600}|" \
        deploy/pgbouncer/pgbouncer.ini
}
if [ -n "${PGBOUNCER_RENDER_ONLY:-}" ]; then render; exit 0; fi
: >"$dir/users.txt"
for login in ${PGBOUNCER_USERS:-keel:keel}; do
    printf '"%s" "%s"\n' "${login%%:*}" "${login#*:}" >>"$dir/users.txt"
done
render >"$dir/pgbouncer.ini"
bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
# PgBouncer will not run as root: as root, it runs as postgres.
if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    exec "$bin" -u postgres "$dir/pgbouncer.ini"
fi
exec "$bin" "$dir/pgbouncer.ini"
