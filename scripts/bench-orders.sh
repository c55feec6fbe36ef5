#!/usr/bin/env bash
# The order saga's benchmark (docs/benchmarks.md): POST /orders in async mode (202 once the
# order and its event are committed; one `keel worker` runs the sagas) and in sync mode (the
# saga inline in the request), against `keel fake-payments` with a fixed latency, in one run.
# For each mode: wrk's maximum throughput, then oha at one constant rate both modes sustain
# (p50/p99 with latency correction), and, from the orders' own history, the time from placed
# to confirmed under that constant load.
# Last, async alone at half the most orders a second its worker confirmed: the rate the
# saga's placed → confirmed p99 is held to.
#   DURATION=15 (seconds per measurement), PAYMENT_LATENCY=20ms, RATE (default: 60% of the
#   slower mode's wrk maximum)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

latency=${PAYMENT_LATENCY:-20ms}
export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=100000
export KEEL_PAYMENTS_URL=http://127.0.0.1:18090 KEEL_NATS_PREFIX="bench$$" KEEL_WORKER_LISTEN=127.0.0.1:19091
pay_pid="" worker_pid=""
trap 'kill $keel_pid $pay_pid $worker_pid 2>/dev/null || true' EXIT
./target/release/keel fake-payments --listen 127.0.0.1:18090 --latency "$latency" 2>>"$out/pay.log" &
pay_pid=$!
./target/release/keel worker 2>>"$out/worker.log" &
worker_pid=$!

# wait_settled: until every order's saga has ended and the outbox is empty, so that one
# measurement does not start with the last one's backlog.
wait_settled() {
    for _ in $(seq 600); do
        [ "$(psql_bench -c "SELECT (SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled'))
                                 + (SELECT count(*) FROM bus.outbox)")" = 0 ] && return
        sleep 0.5
    done
    echo "sagas did not settle" >&2; exit 1
}

# confirm_times SINCE_ID: "p50 p99" of placed → confirmed for orders after SINCE_ID.
confirm_times() {
    psql_bench -F ' ' -c "
        WITH t AS (
            SELECT extract(epoch FROM max(h.at) FILTER (WHERE h.status = 'confirmed')
                                    - min(h.at) FILTER (WHERE h.status = 'placed')) * 1000 AS ms
              FROM orders.order_history h WHERE h.order_id > $1 GROUP BY h.order_id)
        SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms',
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || 'ms'
          FROM t WHERE ms IS NOT NULL"
}
last_order() { psql_bench -c "SELECT coalesce(max(id), 0) FROM orders.orders"; }

python3 -c 'import random
for _ in range(100000): print("{\"lines\":[{\"product_id\":%d,\"quantity\":1}]}" % random.randint(1, 100000))' >"$out/orders.lines"

# confirmed_rate SINCE_ID: orders after SINCE_ID confirmed per second, from the first one's
# placing to the last one's confirmation: what the sagas sustained, backlog included.
confirmed_rate() {
    psql_bench -c "
        SELECT round(count(DISTINCT order_id) FILTER (WHERE status = 'confirmed')
                     / extract(epoch FROM max(at) - min(at)))
          FROM orders.order_history WHERE order_id > $1"
}

for mode in async sync; do
    start_keel KEEL_ORDER_MODE=$mode
    export KEEL_BENCH_TOKENS="${KEEL_BENCH_TOKENS:-$(login_customers 16)}"
    log "POST /orders, $mode mode: maximum (wrk)"
    since=$(last_order)
    read -r rps p50w p99w err < <(run_wrk "orders-$mode" "http://127.0.0.1:18080/orders" scripts/bench/order.lua)
    wait_settled
    sustained=$(confirmed_rate "$since")
    eval "${mode}_rps=$rps ${mode}_p50w=$p50w ${mode}_p99w=$p99w ${mode}_err=$err ${mode}_sustained=$sustained"
done

rate=${RATE:-$(( (async_rps < sync_rps ? async_rps : sync_rps) * share / 100 ))}
first_token=${KEEL_BENCH_TOKENS%%,*}
for mode in async sync; do
    start_keel KEEL_ORDER_MODE=$mode
    log "POST /orders, $mode mode: $rate/s constant (oha)"
    since=$(last_order)
    read -r p50 p99 ok < <(run_oha "orders-$mode" "$rate" "http://127.0.0.1:18080/orders" -m POST \
        -H "authorization: Bearer $first_token" -H 'content-type: application/json' -Z "$out/orders.lines")
    wait_settled
    read -r c50 c99 < <(confirm_times "$since")
    eval "${mode}_p50=$p50 ${mode}_p99=$p99 ${mode}_ok=$ok ${mode}_c50=$c50 ${mode}_c99=$c99"
done

# The saga's target: placed → confirmed p99 within 100 ms at half async's maximum — the
# most orders a second it confirms, not the most it accepts (202 only queues the saga).
saga_rate=$(( async_sustained / 2 ))
start_keel KEEL_ORDER_MODE=async
log "POST /orders, async mode: $saga_rate/s constant (half its confirmed maximum)"
since=$(last_order)
read -r saga_p50 saga_p99 saga_ok < <(run_oha orders-saga "$saga_rate" "http://127.0.0.1:18080/orders" -m POST \
    -H "authorization: Bearer $first_token" -H 'content-type: application/json' -Z "$out/orders.lines")
wait_settled
read -r saga_c50 saga_c99 < <(confirm_times "$since")

orders=$(psql_bench -c "SELECT count(*) FROM orders.orders")
confirmed=$(psql_bench -c "SELECT count(*) FROM orders.orders WHERE status = 'confirmed'")
charges=$(curl -s http://127.0.0.1:18090/stats)
negative=$(psql_bench -c "SELECT count(*) FROM catalog.stock WHERE on_hand < 0")

cat <<MD
Machine: $(machine); PostgreSQL $(psql_keel -c 'SHOW server_version'), NATS $(nats-server --version | awk '{print $2}'); Keel, one worker, the fake provider and the load generator on the same machine.
Run: \`scripts/bench-orders.sh\` (DURATION=$duration s per measurement, $conns connections, fake provider latency $latency, 1-line orders with an idempotency key under wrk), $(date -u +%Y-%m-%dT%H:%MZ).

| Mode | wrk max orders/s | confirmed/s under it | wrk p50 / p99 (closed loop) | oha constant rate | oha p50 | oha p99 | placed → confirmed p50 / p99 at that rate |
| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |
| async (202; worker runs the saga) | $async_rps | $async_sustained | $async_p50w / $async_p99w | $rate/s | $async_p50 | $async_p99 | $async_c50 / $async_c99 |
| sync (saga inline, 201) | $sync_rps | $sync_sustained | $sync_p50w / $sync_p99w | $rate/s | $sync_p50 | $sync_p99 | $sync_c50 / $sync_c99 |
| async at half its confirmed maximum | | | | $saga_rate/s | $saga_p50 | $saga_p99 | $saga_c50 / $saga_c99 |

Async against sync, maximum: $(( 100 * async_rps / sync_rps ))%. Non-2xx during wrk: async $async_err, sync $sync_err; 2xx under oha: async $async_ok, sync $sync_ok, async at half its confirmed maximum $saga_ok.
Orders: $orders, confirmed $confirmed; provider: $charges; stock rows below zero: $negative.
MD
