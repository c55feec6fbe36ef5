#!/usr/bin/env bash
# Runs every test: installs and starts PostgreSQL and Redis if missing, then `cargo test`,
# then the API contract check (scripts/contract.sh: schemathesis against a running Keel).
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
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
if [ "$#" -eq 0 ]; then
    log "API contract (schemathesis)"
    KEEL_BIN=target/debug/keel scripts/contract.sh || status=$?
fi
exit "$status"
