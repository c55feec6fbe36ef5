#!/usr/bin/env bash
# Runs Keel on this machine: installs and starts what it needs, builds the release binary,
# creates and migrates the `keel` database, seeds demo data once, and serves.
#   KEEL_LISTEN (default 127.0.0.1:8080), KEEL_SEED_PRODUCTS, KEEL_SEED_USERS and every
#   other `keel serve --help` variable apply.
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
listen="${KEEL_LISTEN:-127.0.0.1:8080}"
log "serving on http://$listen  (try: curl http://$listen/products/1 ; spec at /openapi.json)"
exec ./target/release/keel serve
