#!/usr/bin/env bash
# Seed 004's comparison, measured (docs/benchmarks.md, "Three architectures"): `keel bench
# compare` starts the synchronous monolith, the async event-driven profile and CQRS + read
# replica + cache in turn as Keel instances of the release binary, and finds each one's
# highest rate under the SLO for the browse mix (pages, listings, one order in eleven) and
# for product pages alone (the reads the seed's CQRS figure is about).
#   DURATION=10 (seconds per trial), SLO=100 (ms), MAX_RATE=20000, PAYMENT_LATENCY=20ms
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

slo=${SLO:-100} max_rate=${MAX_RATE:-20000} trial=${DURATION:-10}
replica_port=15434 replica_dir="/tmp/keel-bench-compare-replica-$$"
log "a streaming replica of the local PostgreSQL on :$replica_port (pg_basebackup)"
scripts/replica.sh trust-replication
scripts/replica.sh replica 5432 "$replica_port" "$replica_dir" >/dev/null
trap 'scripts/replica.sh stop "$replica_dir"; rm -rf "$replica_dir"' EXIT
export KEEL_NATS_PREFIX="compare$$"
charts=${CHARTS:-docs/bench}
mkdir -p "$charts"
for scenario in browse pages; do
    log "keel bench compare --scenario $scenario (SLO $slo ms, trials of ${trial}s)"
    client ./target/release/keel bench compare --scenario "$scenario" --slo "$slo" \
        --rate 250 --max-rate "$max_rate" --duration "${trial}s" --users 64 --products 9999 \
        --payment-latency "${PAYMENT_LATENCY:-20ms}" \
        --replica-urls "postgres://keel:keel@127.0.0.1:$replica_port/keel_bench" \
        --json "$charts/compare-$scenario.json" 2>>"$out/compare.log" >"$out/compare-$scenario.txt"
done

cat <<MD
Machine: $(machine); PostgreSQL $(psql_keel -c 'SHOW server_version') (primary and one streaming replica), Redis, NATS, Keel, its worker, the fake provider and the load generator all on the same machine.
Run: \`scripts/bench-compare.sh\` (SLO=$slo ms, trials of $trial s, MAX_RATE=$max_rate, provider ${PAYMENT_LATENCY:-20ms}), $(date -u +%Y-%m-%dT%H:%MZ).

\`\`\`
$(cat "$out/compare-browse.txt")
\`\`\`

\`\`\`
$(cat "$out/compare-pages.txt")
\`\`\`
MD
