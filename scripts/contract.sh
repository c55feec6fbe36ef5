#!/usr/bin/env bash
# The API contract check: starts a Keel instance on its own database and Redis prefix, then
# runs schemathesis (every check, and the examples, coverage, fuzzing and stateful phases)
# against its /openapi.json twice — as a customer and as the admin. Any failure fails it.
#   KEEL_BIN (default target/debug/keel), CONTRACT_EXAMPLES (default 100 per operation),
#   CONTRACT_REPORT (a directory for schemathesis' JUnit reports; default a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

schemathesis_version=4.32.5
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
command -v curl >/dev/null 2>&1 || apt_install curl
if ! st --version 2>/dev/null | grep -q "$schemathesis_version"; then
    log "installing schemathesis $schemathesis_version"
    # Debian's own Python refuses system-wide installs (PEP 668) unless told.
    python3 -m pip install --quiet "schemathesis==$schemathesis_version" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "schemathesis==$schemathesis_version"
fi
keel="${KEEL_BIN:-target/debug/keel}"
[ -x "$keel" ] || cargo build --locked --bin keel

db="keel_contract_$$"
base_url="${KEEL_TEST_POSTGRES:-postgres://keel:keel@127.0.0.1:5432}"
export KEEL_DATABASE_URL="$base_url/$db"
export KEEL_REDIS_PREFIX="contract-$$:"
export KEEL_NATS_PREFIX="contract$$"
export KEEL_SEED_PRODUCTS=200 KEEL_SEED_USERS=20
# The limits stay on (their 429 is part of the contract), at quotas a fuzzer stays within:
# it sends thousands of requests a minute from one address and one user.
export KEEL_RATE_LOGIN=100000/60s KEEL_RATE_READ=100000/60s KEEL_RATE_WRITE=100000/60s
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KEEL_LISTEN="127.0.0.1:$port"
report="${CONTRACT_REPORT:-$(mktemp -d)}"

PGPASSWORD=keel psql "$base_url/postgres" -qc "CREATE DATABASE $db"
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    PGPASSWORD=keel psql "$base_url/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

"$keel" seed >/dev/null
"$keel" serve >"$report/keel.log" 2>&1 &
server=$!
export KEEL_CONTRACT_BASE="http://$KEEL_LISTEN"
for _ in $(seq 100); do
    curl -fs "$KEEL_CONTRACT_BASE/readyz" >/dev/null && break
    sleep 0.1
done

export SCHEMATHESIS_HOOKS=scripts.contract.hooks
export KEEL_CONTRACT_PASSWORD=keel-demo-password
status=0
for who in user1@demo.keel admin@demo.keel; do
    log "schemathesis as $who"
    KEEL_CONTRACT_EMAIL="$who" st run "$KEEL_CONTRACT_BASE/openapi.json" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "${CONTRACT_EXAMPLES:-100}" \
        --seed 1 \
        --report junit --report-junit-path "$report/${who%%@*}.xml" \
        || status=$?
done
if grep -q '"level":"ERROR"\|panicked' "$report/keel.log"; then
    log "the server logged errors during the run:"
    grep '"level":"ERROR"\|panicked' "$report/keel.log" | head -20
    status=1
fi
exit "$status"
