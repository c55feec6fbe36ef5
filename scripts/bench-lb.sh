#!/usr/bin/env bash
# Load balancing (docs/benchmarks.md), in one run: cached reads (L1 hits) straight to one
# instance, through nginx to that one instance (what the hop costs), and through nginx to
# two instances; then a rolling restart under load: one of the two instances gets SIGTERM
# and comes back while wrk runs through nginx, counting what failed.
#   DURATION=15 (seconds per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=9999 KEEL_CACHE=layered KEEL_TRUSTED_PROXIES=127.0.0.1
second_pid="" one_pid="" two_pid=""
trap 'kill $keel_pid $second_pid $one_pid $two_pid 2>/dev/null || true' EXIT
start_keel
start_second() {
    KEEL_LISTEN=127.0.0.1:18082 ./target/release/keel serve 2>>"$out/serve.log" &
    second_pid=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/readyz >/dev/null && return; sleep 0.2; done
}
start_second
scripts/nginx.sh "$out/nginx-one" 127.0.0.1:18090 127.0.0.1:18080 2>>"$out/nginx.log" &
one_pid=$!
scripts/nginx.sh "$out/nginx-two" 127.0.0.1:18091 127.0.0.1:18080 127.0.0.1:18082 2>>"$out/nginx.log" &
two_pid=$!
sleep 0.5
lua=scripts/bench/product.lua
log "GET /products/{id}, L1 hits: direct, through nginx to one instance, to two"
read -r d_rps d_p50 d_p99 d_err < <(run_wrk direct http://127.0.0.1:18080 $lua)
read -r o_rps o_p50 o_p99 o_err < <(run_wrk nginx-one http://127.0.0.1:18090 $lua)
read -r t_rps t_p50 t_p99 t_err < <(run_wrk nginx-two http://127.0.0.1:18091 $lua)

log "rolling restart: SIGTERM to one instance after 3 s, started again 3 s later"
client wrk -t2 -c$conns -d12s -s $lua http://127.0.0.1:18091 >"$out/restart.wrk" &
wrk_pid=$!
sleep 3
kill -TERM $second_pid
wait $second_pid 2>/dev/null || true
sleep 3
start_second
wait $wrk_pid
r_req=$(awk '/requests in/ {print $1}' "$out/restart.wrk")
r_non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/restart.wrk")
r_socket=$(awk -F'[ ,]+' '/Socket errors/ {print "connect " $4 ", read " $6 ", write " $8 ", timeout " $10}' "$out/restart.wrk")
r_retried=$(grep -c 'while connecting to upstream\|while reading response header' "$out/nginx.log" || true)

cat <<MD
Machine: $(machine); load generator, nginx and both instances on the same machine.
Run: \`scripts/bench-lb.sh\` (DURATION=$duration s per measurement, $conns connections, L1 hits over product ids 1–9999, load generator as SCHED_BATCH), $(date -u +%Y-%m-%dT%H:%MZ).

| Path | wrk req/s | p50 / p99 (closed loop) | non-2xx |
| --- | ---: | --- | ---: |
| straight to one instance | $d_rps | $d_p50 / $d_p99 | $d_err |
| nginx → the same instance | $o_rps | $o_p50 / $o_p99 | $o_err |
| nginx → two instances | $t_rps | $t_p50 / $t_p99 | $t_err |

Through nginx to one instance: $(( 100 * o_rps / d_rps ))% of the direct throughput; to two: $(( 100 * t_rps / d_rps ))%.
Rolling restart through nginx (12 s, one instance stopped at 3 s and started at 6 s): $r_req requests, non-2xx ${r_non2xx:-0}, socket errors ${r_socket:-none}; nginx logged $r_retried failed upstream attempts, each retried on the other instance.
MD
