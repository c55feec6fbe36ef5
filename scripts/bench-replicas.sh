#!/usr/bin/env bash
# Read replicas and read models (docs/benchmarks.md), in one run:
# 1. an uncached read path, GET /products?category=…, with 0 and with 1 streaming replica
#    (alternating rounds of wrk against the same seeded database; on one machine the point is
#    the routing's cost and that reads really move, not a speed-up);
# 2. the read models' projection lag while orders flow at a constant rate (oha), from the
#    read model itself: how long after an order's confirmation its summary showed it.
#   DURATION=15 (seconds per measurement), ROUNDS=3, ORDER_RATE=150, PAYMENT_LATENCY=20ms
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

rounds=${ROUNDS:-3}
export KEEL_RATE_LIMIT_OFF=true
# Outside $out, which only its owner may enter: the cluster runs as postgres.
replica_port=15433 replica_dir="/tmp/keel-bench-replica-$$"
log "a streaming replica of the local PostgreSQL on :$replica_port (pg_basebackup)"
scripts/replica.sh trust-replication
scripts/replica.sh replica 5432 "$replica_port" "$replica_dir" >/dev/null
pay_pid="" worker_pid=""
trap 'kill $keel_pid $pay_pid $worker_pid 2>/dev/null || true; scripts/replica.sh stop "$replica_dir"; rm -rf "$replica_dir"' EXIT
replica_url="postgres://keel:keel@127.0.0.1:$replica_port/keel_bench"

# reads_on TARGET: routed reads counted on that target since the instance started.
reads_on() {
    curl -s http://127.0.0.1:18080/metrics | awk -v t="target=\"$1\"" 'index($0, "keel_db_reads_total{") == 1 && index($0, t) {print $2}'
}

url="http://127.0.0.1:18080/products?category=garden&limit=20"
for round in $(seq "$rounds"); do
    for replicas in 0 1; do
        if [ "$replicas" = 1 ]; then
            start_keel KEEL_DATABASE_REPLICA_URLS="$replica_url"
            # The first health check admits the replica.
            sleep 1
        else
            start_keel KEEL_DATABASE_REPLICA_URLS=
        fi
        log "round $round: GET /products?category=garden, $replicas replica(s)"
        read -r rps p50 p99 err < <(run_wrk "list-$replicas-$round" "$url")
        on_replica=$(reads_on replica) on_primary=$(reads_on primary)
        echo "$replicas $rps $p50 $p99 $err ${on_replica:-0} ${on_primary:-0}" >>"$out/reads"
    done
done

# median COLUMN REPLICAS: the median of a column over the rounds.
median() { awk -v r="$2" -v c="$1" '$1 == r {print $c}' "$out/reads" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

log "orders at ${ORDER_RATE:-150}/s with a worker projecting the read models"
export KEEL_PAYMENTS_URL=http://127.0.0.1:18090 KEEL_NATS_PREFIX="bench$$" KEEL_WORKER_LISTEN=127.0.0.1:19091
./target/release/keel fake-payments --listen 127.0.0.1:18090 --latency "${PAYMENT_LATENCY:-20ms}" 2>>"$out/pay.log" &
pay_pid=$!
./target/release/keel worker 2>>"$out/worker.log" &
worker_pid=$!
start_keel KEEL_DATABASE_REPLICA_URLS="$replica_url"
token=$(login_customers 1)
python3 -c 'import random
for _ in range(100000): print("{\"lines\":[{\"product_id\":%d,\"quantity\":1},{\"product_id\":%d,\"quantity\":2}]}" % (random.randint(1, 50000), random.randint(50001, 100000)))' >"$out/orders.lines"
read -r o50 o99 ok < <(run_oha orders "${ORDER_RATE:-150}" "http://127.0.0.1:18080/orders" -m POST \
    -H "authorization: Bearer $token" -H 'content-type: application/json' -Z "$out/orders.lines")
for _ in $(seq 600); do
    [ "$(psql_bench -c "SELECT (SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled'))
                             + (SELECT count(*) FROM orders.orders o WHERE NOT EXISTS (
                                  SELECT 1 FROM reports.order_summaries s
                                   WHERE s.order_id = o.id AND s.status = o.status))")" = 0 ] && break
    sleep 0.5
done
read -r orders lag50 lag99 lagmax < <(psql_bench -F ' ' -c "
    WITH l AS (SELECT extract(epoch FROM projected_at - updated_at) * 1000 AS ms
                 FROM reports.order_summaries WHERE status = 'confirmed')
    SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms',
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms',
           round(max(ms)::numeric, 1) || 'ms' FROM l")
events=$(psql_bench -c "SELECT count(*) FROM bus.event_log")
match=$(psql_bench -c "SELECT count(*) FROM orders.orders o JOIN reports.order_summaries s ON s.order_id = o.id
                        WHERE s.status = o.status AND s.total_cents = o.total_cents")

cat <<MD
Machine: $(machine); PostgreSQL $(psql_keel -c 'SHOW server_version') (primary and replica on the same machine), Keel and the load generator too.
Run: \`scripts/bench-replicas.sh\` (DURATION=$duration s per measurement, $conns connections, $rounds alternating rounds, medians), $(date -u +%Y-%m-%dT%H:%MZ).

| GET /products?category=garden&limit=20 (uncached) | requests/s | p50 | p99 | reads on replica / primary (last round) |
| --- | ---: | ---: | ---: | --- |
| 0 replicas (reads on the primary's read pool) | $(median 2 0) | $(median 3 0) | $(median 4 0) | $(awk '$1==0' "$out/reads" | tail -1 | awk '{print $6 " / " $7}') |
| 1 replica (token-less reads on the replica) | $(median 2 1) | $(median 3 1) | $(median 4 1) | $(awk '$1==1' "$out/reads" | tail -1 | awk '{print $6 " / " $7}') |

1 replica against 0: $(( 100 * $(median 2 1) / $(median 2 0) ))% of the throughput. Rounds: $(tr '\n' ';' <"$out/reads")

Projection lag at ${ORDER_RATE:-150} orders/s (oha, 2-line orders, provider ${PAYMENT_LATENCY:-20ms}; POST p50 $o50, p99 $o99, $ok 2xx): $orders orders confirmed, $events events in the log; an order's confirmation reached its summary in p50 $lag50, p99 $lag99, max $lagmax. Summaries matching their order's status and total: $match of $orders.
MD
