#!/usr/bin/env bash
# nginx's balancing strategies (docs/benchmarks.md), in one run: two `keel serve` instances
# behind nginx rendered with each strategy (NGINX_BALANCE: round-robin, least-conn, ip-hash,
# weighted 3:1), cached reads through it with wrk; for each, the share of requests each
# instance served (from their own keel_http_requests_total) and the latency. Then the same
# with the second instance slowed (run at nice 19 beside a busy loop), where the strategies
# differ: round-robin keeps sending it half, least-conn sends it what it can take.
#   DURATION=15 (seconds per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=9999 KEEL_CACHE=layered KEEL_TRUSTED_PROXIES=127.0.0.1
second_pid="" nginx_pid="" burner_pid=""
trap 'kill $keel_pid $second_pid $nginx_pid $burner_pid 2>/dev/null || true' EXIT
start_keel
start_second() {
    ${1:-} env KEEL_LISTEN=127.0.0.1:18082 ./target/release/keel serve 2>>"$out/serve.log" &
    second_pid=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/readyz >/dev/null && return; sleep 0.2; done
}
start_second
served() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^keel_http_requests_total/ {n += $NF} END {printf "%d", n}'; }

# measure STRATEGY: sets $result to "rps p50 p99 share-of-first-instance%" (in this shell:
# nginx must outlive the call, and its pid must be known to the next).
measure() {
    local strategy=$1 a0 b0 a1 b1 rps p50 p99
    [ -n "$nginx_pid" ] && { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
    NGINX_BALANCE=$strategy NGINX_WEIGHTS=3,1 scripts/nginx.sh "$out/nginx-$strategy" 127.0.0.1:18093 \
        127.0.0.1:18080 127.0.0.1:18082 >>"$out/nginx.log" 2>&1 &
    nginx_pid=$!
    sleep 0.5
    a0=$(served 18080) b0=$(served 18082)
    read -r rps p50 p99 _ < <(run_wrk "lb-$strategy" http://127.0.0.1:18093 scripts/bench/product.lua)
    a1=$(served 18080) b1=$(served 18082)
    result="$rps $p50 $p99 $(( 100 * (a1 - a0) / (a1 - a0 + b1 - b0) ))"
}

declare -A row
for strategy in round-robin least-conn ip-hash weighted; do
    log "equal instances: $strategy"
    measure "$strategy"
    row[$strategy]=$result
done
log "the second instance slowed (nice 19 beside a busy loop)"
kill "$second_pid"; wait "$second_pid" 2>/dev/null || true
nice -n 0 sh -c 'while :; do :; done' &
burner_pid=$!
start_second "nice -n 19"
declare -A slow
for strategy in round-robin least-conn; do
    log "slowed second instance: $strategy"
    measure "$strategy"
    slow[$strategy]=$result
done

cat <<MD
Machine: $(machine); load generator, nginx and both instances on the same machine.
Run: \`scripts/bench-lb-strategies.sh\` (DURATION=$duration s per measurement, $conns connections, L1 hits over product ids 1–9999, load generator as SCHED_BATCH), $(date -u +%Y-%m-%dT%H:%MZ).

| Strategy (\`NGINX_BALANCE\`) | req/s | p50 / p99 (closed loop) | requests served: first / second instance |
| --- | ---: | --- | --- |
$(for s in round-robin least-conn ip-hash weighted; do set -- ${row[$s]}; echo "| $s | $1 | $2 / $3 | $4 % / $(( 100 - $4 )) % |"; done)

With the second instance slowed (nice 19, beside a busy loop at nice 0):

| Strategy | req/s | p50 / p99 | first / second |
| --- | ---: | --- | --- |
$(for s in round-robin least-conn; do set -- ${slow[$s]}; echo "| $s | $1 | $2 / $3 | $4 % / $(( 100 - $4 )) % |"; done)
MD
