#!/usr/bin/env bash
# Runs Keel on this machine: installs and starts what it needs (PostgreSQL, Redis, NATS),
# builds the release binary, creates and migrates the `keel` database, seeds demo data once,
# then runs the fake payment provider, one worker (outbox relay + order sagas) and the API.
#   KEEL_LISTEN (default 127.0.0.1:8080), KEEL_SEED_PRODUCTS, KEEL_SEED_USERS, KEEL_ORDER_MODE
#   and every other `keel serve --help` / `keel worker --help` variable apply. Set
#   KEEL_PAYMENTS_URL to use a provider of your own instead of `keel fake-payments`.
#   KEEL_REPLICAS=N (default 0) adds N streaming read replicas of the local PostgreSQL on ports
#   5433.. (data in KEEL_REPLICA_DIR, default /var/lib/keel; delete it to make them anew).
#   KEEL_INSTANCES=N (default 1) runs N API instances on the ports after KEEL_LISTEN's, with
#   nginx (deploy/nginx.conf) on KEEL_LISTEN spreading requests over them (NGINX_BALANCE:
#   least-conn, round-robin, ip-hash or weighted with NGINX_WEIGHTS, e.g. 3,1).
#   KEEL_PGBOUNCER=1 puts PgBouncer in transaction mode (deploy/pgbouncer/) on :6432 between
#   every Keel process and the primary; migrations and seeding go to the primary.
#   KEEL_TOPOLOGY=ha runs the high-availability topology on this machine: a PostgreSQL
#   primary that fails over (scripts/pg-ha.sh: pg_auto_failover's monitor :5440 and two
#   nodes :5441, :5442, one primary and one synchronous standby that also serves reads)
#   with a PgBouncer beside each node (:6432, :6433), Redis master + replica + three
#   Sentinels (:6380, :6381, :26380-26382), NATS as three JetStream nodes (:4232-4234),
#   KEEL_INSTANCES (default 2) API instances behind nginx, KEEL_WORKERS (default 2) workers
#   and the fake provider; its data under KEEL_HA_DIR (default /var/lib/keel/ha). A part that
#   dies leaves the rest running; scripts/ha.sh kills, stops and restarts parts by name.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

export KEEL_DATABASE_URL="${KEEL_DATABASE_URL:-postgres://keel:keel@127.0.0.1:5432/keel}"
ha_dir="${KEEL_HA_DIR:-/var/lib/keel/ha}"
if [ "${KEEL_TOPOLOGY:-}" = ha ]; then
    export KEEL_INSTANCES="${KEEL_INSTANCES:-2}" KEEL_HA_DIR="$ha_dir"
    export KEEL_REDIS_URL=redis://127.0.0.1:6380
    export KEEL_REDIS_SENTINELS=redis://127.0.0.1:26380,redis://127.0.0.1:26381,redis://127.0.0.1:26382
    export KEEL_NATS_URL=nats://127.0.0.1:4232,nats://127.0.0.1:4233,nats://127.0.0.1:4234
    # Restarts behind nginx fail no request when the drain outlasts nginx's upstream idle time.
    export KEEL_SHUTDOWN_DELAY="${KEEL_SHUTDOWN_DELAY:-21s}"
fi
[ "${KEEL_TOPOLOGY:-}" = ha ] || PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'keel'" | grep -q 1 \
    || PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -qc "CREATE DATABASE keel"

replicas="${KEEL_REPLICAS:-0}"
if [ "$replicas" -gt 0 ]; then
    # The local primary must let replicas stream from it.
    scripts/replica.sh trust-replication
    urls=""
    for i in $(seq "$replicas"); do
        port=$((5432 + i)) dir="${KEEL_REPLICA_DIR:-/var/lib/keel}/replica$i"
        if pg_isready -q -h 127.0.0.1 -p "$port"; then
            log "replica $i already runs on port $port"
        elif [ -f "$dir/PG_VERSION" ]; then
            log "starting replica $i on port $port"
            scripts/replica.sh start "$port" "$dir"
        else
            log "creating replica $i on port $port (pg_basebackup)"
            scripts/replica.sh replica 5432 "$port" "$dir"
        fi
        started_replicas="${started_replicas:-} $dir"
        urls="${urls:+$urls,}postgres://keel:keel@127.0.0.1:$port/keel"
    done
    export KEEL_DATABASE_REPLICA_URLS="$urls"
fi

log "building keel (release)"
cargo build --release --locked --bin keel

# Background processes stop with this script, and so do the parts scripts/ha.sh restarted
# (not children of this script) and the replicas it started.
stop_all() {
    kill $(jobs -p) 2>/dev/null || true
    [ -f "$ha_dir/restarted.pids" ] && xargs -r kill <"$ha_dir/restarted.pids" 2>/dev/null
    rm -f "$ha_dir/restarted.pids" "$ha_dir/parts"
    for dir in ${started_replicas:-}; do scripts/replica.sh stop "$dir"; done
    wait
}
trap stop_all EXIT
trap 'exit 130' INT TERM
wait_for_ports() {
    for port in "$@"; do
        for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    done
}
if [ "${KEEL_TOPOLOGY:-}" = ha ]; then
    mkdir -p "$ha_dir"
    rm -rf "$ha_dir/saved" "$ha_dir/restarted.pids"
    # Every part by name and port, for scripts/ha.sh.
    {
        echo "pg-monitor 5440"; echo "pg-node1 5441"; echo "pg-node2 5442"
        echo "pgbouncer-1 6432"; echo "pgbouncer-2 6433"
        echo "redis-6380 6380"; echo "redis-6381 6381"
        for n in 0 1 2; do echo "sentinel-$n $((26380 + n))"; done
        for n in 0 1 2; do echo "nats-$n $((4232 + n))"; done
    } >"$ha_dir/parts"
    log "PostgreSQL that fails over: monitor :5440, nodes :5441 and :5442 (data in $ha_dir/pg)"
    scripts/pg-ha.sh up "$ha_dir/pg" 5440 >"$ha_dir-pg.log" 2>&1 &
    log "Redis master :6380, replica :6381, Sentinels :26380-26382 (data in $ha_dir/redis)"
    scripts/redis-ha.sh "$ha_dir/redis" 127.0.0.1 6380 >"$ha_dir-redis.log" 2>&1 &
    log "NATS cluster :4232-4234 (JetStream in $ha_dir/nats)"
    scripts/nats-cluster.sh "$ha_dir/nats" 127.0.0.1 4232 >"$ha_dir-nats.log" 2>&1 &
    wait_for_ports 6380 26380 4232 4233 4234
    for _ in $(seq 1200); do grep -q "formation up" "$ha_dir-pg.log" 2>/dev/null && break; sleep 0.1; done
    grep -q "formation up" "$ha_dir-pg.log" || { tail "$ha_dir-pg.log" >&2; exit 1; }
    # A PgBouncer beside each node; Keel names both and keeps the one whose node takes
    # writes. Migrations, seeding and sessions go to the nodes themselves.
    for n in 1 2; do
        scripts/pgbouncer.sh "${TMPDIR:-/tmp}/keel-pgbouncer-$n" "127.0.0.1:$((6431 + n))" "127.0.0.1:$((5440 + n))" &
    done
    wait_for_ports 6432 6433
    export KEEL_DATABASE_DIRECT_URL="$(scripts/pg-ha.sh url "$ha_dir/pg")"
    export KEEL_DATABASE_URL="postgres://keel:keel@127.0.0.1:6432,127.0.0.1:6433/keel?target_session_attrs=read-write"
    export KEEL_DATABASE_POOLING=transaction
    export KEEL_DATABASE_REPLICA_URLS="${KEEL_DATABASE_DIRECT_URL/read-write/read-only}"
fi
if [ "${KEEL_PGBOUNCER:-0}" = 1 ]; then
    log "PgBouncer (transaction mode) on 127.0.0.1:6432 in front of the primary"
    scripts/pgbouncer.sh "${TMPDIR:-/tmp}/keel-pgbouncer" 127.0.0.1:6432 127.0.0.1:5432 &
    wait_for_ports 6432
    export KEEL_DATABASE_DIRECT_URL="$KEEL_DATABASE_URL"
    export KEEL_DATABASE_URL="postgres://keel:keel@127.0.0.1:6432/keel"
    export KEEL_DATABASE_POOLING=transaction
fi
log "migrating and seeding (once)"
./target/release/keel seed --if-empty
if [ -z "${KEEL_PAYMENTS_URL:-}" ]; then
    export KEEL_PAYMENTS_URL="http://127.0.0.1:8090"
    log "fake payment provider on $KEEL_PAYMENTS_URL (latency ${KEEL_FAKE_PAYMENTS_LATENCY:-20ms})"
    ./target/release/keel fake-payments --latency "${KEEL_FAKE_PAYMENTS_LATENCY:-20ms}" &
fi
workers="${KEEL_WORKERS:-1}"
[ "${KEEL_TOPOLOGY:-}" = ha ] && workers="${KEEL_WORKERS:-2}"
for i in $(seq "$workers"); do
    log "worker $i: outbox relay, order sagas and the read models' projections (metrics on :$((9090 + i)))"
    KEEL_WORKER_LISTEN="127.0.0.1:$((9090 + i))" ./target/release/keel worker &
done
listen="${KEEL_LISTEN:-127.0.0.1:8080}"
instances="${KEEL_INSTANCES:-1}"
if [ "$instances" -gt 1 ]; then
    # nginx on the public address, the instances on the ports after it; they trust nginx's
    # X-Forwarded-For, so rate limits key on the client.
    host=${listen%:*} port=${listen##*:}
    export KEEL_TRUSTED_PROXIES="${KEEL_TRUSTED_PROXIES:-127.0.0.1}"
    upstreams=""
    for i in $(seq "$instances"); do
        log "instance $i on $host:$((port + i))"
        KEEL_LISTEN="$host:$((port + i))" ./target/release/keel serve &
        upstreams="$upstreams $host:$((port + i))"
    done
    log "nginx on http://$listen in front of $instances instances (try: curl http://$listen/products/1)"
    # shellcheck disable=SC2086 # one argument per instance
    scripts/nginx.sh "${TMPDIR:-/tmp}/keel-nginx" "$listen" $upstreams &
else
    log "serving on http://$listen  (try: curl http://$listen/products/1 ; spec at /openapi.json)"
    ./target/release/keel serve &
fi
if [ "${KEEL_TOPOLOGY:-}" = ha ]; then
    {
        echo "nginx ${listen##*:}"
        for i in $(seq "$instances"); do echo "api-$i $((${listen##*:} + i))"; done
        for i in $(seq "$workers"); do echo "worker-$i $((9090 + i))"; done
        [ "$KEEL_PAYMENTS_URL" = "http://127.0.0.1:8090" ] && echo "provider 8090"
    } >>"$ha_dir/parts"
    log "HA topology up: API http://$listen (nginx, $instances instances), PostgreSQL nodes
    :5441/:5442 (pg_auto_failover, monitor :5440) behind PgBouncers :6432/:6433, Redis
    :6380/:6381 with Sentinels :26380-26382, NATS :4232-4234, $workers workers (metrics
    :9091..), fake provider :8090. Try a fault: scripts/ha.sh list, scripts/ha.sh kill
    pg-primary. Ctrl-C stops all."
    # A part that dies is reported and the rest runs on, until Ctrl-C.
    scripts/ha.sh watch &
    wait
fi
wait -n
