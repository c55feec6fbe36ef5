#!/usr/bin/env bash
# Runs Keel on this machine: installs and starts what it needs (PostgreSQL, Redis, NATS),
# builds the release binary, creates and migrates the `keel` database, seeds demo data once,
# then runs the fake payment provider, one worker (outbox relay + order sagas) and the API.
#   KEEL_LISTEN (default 127.0.0.1:8080), KEEL_SEED_PRODUCTS, KEEL_SEED_USERS, KEEL_ORDER_MODE
#   and every other `keel serve --help` / `keel worker --help` variable apply. Set
#   KEEL_PAYMENTS_URL to use a provider of your own instead of `keel fake-payments`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

export KEEL_DATABASE_URL="${KEEL_DATABASE_URL:-postgres://keel:keel@127.0.0.1:5432/keel}"
PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'keel'" | grep -q 1 \
    || PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -qc "CREATE DATABASE keel"

log "building keel (release)"
cargo build --release --locked --bin keel
log "migrating and seeding (once)"
./target/release/keel seed --if-empty

# Background processes stop with this script.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT INT TERM
if [ -z "${KEEL_PAYMENTS_URL:-}" ]; then
    export KEEL_PAYMENTS_URL="http://127.0.0.1:8090"
    log "fake payment provider on $KEEL_PAYMENTS_URL (latency ${KEEL_FAKE_PAYMENTS_LATENCY:-20ms})"
    ./target/release/keel fake-payments --latency "${KEEL_FAKE_PAYMENTS_LATENCY:-20ms}" &
fi
log "worker: outbox relay and order sagas"
./target/release/keel worker &
listen="${KEEL_LISTEN:-127.0.0.1:8080}"
log "serving on http://$listen  (try: curl http://$listen/products/1 ; spec at /openapi.json)"
./target/release/keel serve &
wait -n
