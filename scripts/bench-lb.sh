#!/usr/bin/env bash
# Load balancing (docs/benchmarks.md), in one run: cached reads (L1 hits) straight to one
# instance, and through nginx to 1, 2 and 4 instances (what the hop costs, and what more
# instances on the same two cores can and cannot add); keyed POST /orders the same way
# (bound by PostgreSQL's commits, not by the instances); then a rolling restart under load:
# one of two instances gets SIGTERM and comes back while wrk runs through nginx, counting
# what failed.
#   DURATION=15 (seconds per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=9999 KEEL_CACHE=layered KEEL_TRUSTED_PROXIES=127.0.0.1
# Four instances share the primary's connections: 4 × (12 + 8) stays inside PostgreSQL's
# default max_connections (100, less 3 reserved) with room for the script's own.
export KEEL_DB_WRITE_POOL=${KEEL_DB_WRITE_POOL:-12} KEEL_DB_READ_POOL=${KEEL_DB_READ_POOL:-8}
declare -A pids=()
trap 'kill $keel_pid ${pids[*]} 2>/dev/null || true' EXIT
start_keel
# start_instance PORT: another instance of the same deployment.
start_instance() {
    KEEL_LISTEN=127.0.0.1:$1 ./target/release/keel serve 2>>"$out/serve.log" &
    pids[$1]=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.2; done
}
for port in 18082 18083 18084; do start_instance $port; done
second_pid=${pids[18082]}
scripts/nginx.sh "$out/nginx-one" 127.0.0.1:18090 127.0.0.1:18080 2>>"$out/nginx.log" &
pids[one]=$!
scripts/nginx.sh "$out/nginx-two" 127.0.0.1:18091 127.0.0.1:18080 127.0.0.1:18082 2>>"$out/nginx.log" &
pids[two]=$!
scripts/nginx.sh "$out/nginx-four" 127.0.0.1:18092 127.0.0.1:18080 127.0.0.1:18082 127.0.0.1:18083 127.0.0.1:18084 2>>"$out/nginx.log" &
pids[four]=$!
sleep 0.5
lua=scripts/bench/product.lua
log "GET /products/{id}, L1 hits: direct, through nginx to 1, 2 and 4 instances"
read -r d_rps d_p50 d_p99 d_err < <(run_wrk direct http://127.0.0.1:18080 $lua)
read -r o_rps o_p50 o_p99 o_err < <(run_wrk nginx-one http://127.0.0.1:18090 $lua)
read -r t_rps t_p50 t_p99 t_err < <(run_wrk nginx-two http://127.0.0.1:18091 $lua)
read -r f_rps f_p50 f_p99 f_err < <(run_wrk nginx-four http://127.0.0.1:18092 $lua)
log "POST /orders (keyed): direct, through nginx to 1, 2 and 4 instances"
KEEL_BENCH_TOKENS=$(login_customers 64)
export KEEL_BENCH_TOKENS
psql_bench -c "UPDATE catalog.stock SET on_hand = 100000000"
order=scripts/bench/order.lua
read -r od_rps od_p50 od_p99 od_err < <(run_wrk order-direct http://127.0.0.1:18080 $order)
read -r oo_rps oo_p50 oo_p99 oo_err < <(run_wrk order-one http://127.0.0.1:18090 $order)
read -r ot_rps ot_p50 ot_p99 ot_err < <(run_wrk order-two http://127.0.0.1:18091 $order)
read -r of_rps of_p50 of_p99 of_err < <(run_wrk order-four http://127.0.0.1:18092 $order)
for port in 18083 18084; do kill "${pids[$port]}"; wait "${pids[$port]}" 2>/dev/null || true; unset "pids[$port]"; done

log "rolling restart: SIGTERM to one instance after 3 s, started again 3 s later"
client wrk -t2 -c$conns -d12s -s $lua http://127.0.0.1:18091 >"$out/restart.wrk" &
wrk_pid=$!
sleep 3
kill -TERM "$second_pid"
wait "$second_pid" 2>/dev/null || true
sleep 3
start_instance 18082
wait $wrk_pid
r_req=$(awk '/requests in/ {print $1}' "$out/restart.wrk")
r_non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/restart.wrk")
r_socket=$(awk -F'[ ,]+' '/Socket errors/ {print "connect " $4 ", read " $6 ", write " $8 ", timeout " $10}' "$out/restart.wrk")
r_retried=$(grep -c 'while connecting to upstream\|while reading response header' "$out/nginx.log" || true)

cat <<MD
Machine: $(machine); load generator, nginx and both instances on the same machine.
Run: \`scripts/bench-lb.sh\` (DURATION=$duration s per measurement, $conns connections, L1 hits over product ids 1–9999, pools of $KEEL_DB_WRITE_POOL write + $KEEL_DB_READ_POOL read per instance, load generator as SCHED_BATCH), $(date -u +%Y-%m-%dT%H:%MZ).

| Path | cached read req/s | p50 / p99 (closed loop) | non-2xx | keyed POST /orders req/s | p50 / p99 | non-2xx |
| --- | ---: | --- | ---: | ---: | --- | ---: |
| straight to one instance | $d_rps | $d_p50 / $d_p99 | $d_err | $od_rps | $od_p50 / $od_p99 | $od_err |
| nginx → the same instance | $o_rps | $o_p50 / $o_p99 | $o_err | $oo_rps | $oo_p50 / $oo_p99 | $oo_err |
| nginx → two instances | $t_rps | $t_p50 / $t_p99 | $t_err | $ot_rps | $ot_p50 / $ot_p99 | $ot_err |
| nginx → four instances | $f_rps | $f_p50 / $f_p99 | $f_err | $of_rps | $of_p50 / $of_p99 | $of_err |

Cached reads through nginx to 1, 2, 4 instances: $(( 100 * o_rps / d_rps ))%, $(( 100 * t_rps / d_rps ))%, $(( 100 * f_rps / d_rps ))% of direct. Orders: $(( 100 * oo_rps / od_rps ))%, $(( 100 * ot_rps / od_rps ))%, $(( 100 * of_rps / od_rps ))%.
Rolling restart through nginx (12 s, one instance stopped at 3 s and started at 6 s): $r_req requests, non-2xx ${r_non2xx:-0}, socket errors ${r_socket:-none}; nginx logged $r_retried failed upstream attempts, each retried on the other instance.
MD
