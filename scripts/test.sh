#!/usr/bin/env bash
# Runs every test: installs and starts PostgreSQL and Redis if missing, then `cargo test`,
# the API suite a second time through PgBouncer in transaction mode, then the API contract
# check (scripts/contract.sh: schemathesis against a running Keel), the deploy path's
# (scripts/validate-deploy.sh), and the fleet lab's (scripts/fleet/test.sh, then
# `scripts/fleet.sh smoke`: two simulated API hosts must serve at least 1.6× one), which
# make network namespaces and cgroups, so they run as root (through sudo if need be).
# Each integration test creates its own database and Redis key prefix, so they run in
# parallel; databases left by earlier runs are dropped first. Arguments go to `cargo test`;
# with any, the contract check is skipped (a filtered run is not the whole suite).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

export KEEL_TEST_POSTGRES="${KEEL_TEST_POSTGRES:-postgres://keel:keel@127.0.0.1:5432}"
export KEEL_TEST_REDIS="${KEEL_TEST_REDIS:-redis://127.0.0.1:6379}"
stale=$(PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -Atqc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'keel\_test\_%' AND pg_get_userbyid(datdba) = current_user")
for db in $stale; do
    PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -qc "DROP DATABASE IF EXISTS $db" || true
done

log=$(mktemp)
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
if [ "$#" -eq 0 ]; then
    # The API suite again, every test app through a transaction-mode PgBouncer (unnamed
    # statements, per-transaction timeouts, sessions on the direct URL). Its databases come
    # and go, so it keeps no idle server connection.
    log "the API suite through PgBouncer (transaction mode)"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pgbouncer_dir=$(mktemp -d)
    PGBOUNCER_MIN_POOL_SIZE=0 PGBOUNCER_SERVER_IDLE_TIMEOUT=2 \
        scripts/pgbouncer.sh "$pgbouncer_dir" "127.0.0.1:$port" 127.0.0.1:5432 >"$pgbouncer_dir/log" 2>&1 &
    pgbouncer=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    KEEL_TEST_PGBOUNCER="postgres://keel:keel@127.0.0.1:$port" \
        cargo test --locked -p keel --test api 2>&1 | tee -a "$log" || status=$?
    kill "$pgbouncer" 2>/dev/null || true
    wait "$pgbouncer" 2>/dev/null || true
fi
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
if [ "$#" -eq 0 ]; then
    log "API contract (schemathesis)"
    KEEL_BIN=target/debug/keel scripts/contract.sh || status=$?
    log "deploy path (Kubernetes overlays, compose, alert rules)"
    scripts/validate-deploy.sh || status=$?
    log "the fleet lab: its pieces, then the scale-out smoke"
    as_root env "PATH=$PATH" scripts/fleet/test.sh || status=$?
    as_root env "PATH=$PATH" scripts/fleet.sh smoke || status=$?
fi
exit "$status"
