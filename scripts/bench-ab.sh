#!/usr/bin/env bash
# A/B of two Keel builds on the L1-hit path: `scripts/bench-ab.sh OLD_BINARY NEW_BINARY`.
# Both serve GET /products/{id} from L1, pinned to core 0 at the same time (one tokio worker
# each), each loaded by its own wrk pinned to core 1, so whatever the host does to the core
# hits both alike. The figure is NEW's CPU per request against OLD's (user + system ticks
# from /proc over requests answered), per round and as the median; which build's wrk starts
# first alternates, since the first to start gets a slightly better share.
#   ROUNDS=10 (5 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
old=$(realpath -m "$1") new=$(realpath -m "$2")
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup
export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=9999 KEEL_CACHE=layered

old_pid="" new_pid=""
trap 'kill $old_pid $new_pid 2>/dev/null || true' EXIT
KEEL_LISTEN=127.0.0.1:18085 taskset -c 0 "$old" serve 2>>"$out/old.log" &
old_pid=$!
KEEL_LISTEN=127.0.0.1:18086 taskset -c 0 "$new" serve 2>>"$out/new.log" &
new_pid=$!
for port in 18085 18086; do
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    taskset -c 1 wrk -t1 -c$conns -d5s -s scripts/bench/product.lua "http://127.0.0.1:$port" >/dev/null # fill L1
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
load() { taskset -c 1 wrk -t1 -c$conns -d5s -s scripts/bench/product.lua "http://127.0.0.1:$1" >"$out/$2"; }
rounds=""
for round in $(seq "${ROUNDS:-10}"); do
    o0=$(ticks $old_pid) n0=$(ticks $new_pid)
    if [ $((round % 2)) -eq 1 ]; then
        load 18085 old.wrk & first=$!; load 18086 new.wrk
    else
        load 18086 new.wrk & first=$!; load 18085 old.wrk
    fi
    wait $first
    o_ticks=$(( $(ticks $old_pid) - o0 )) n_ticks=$(( $(ticks $new_pid) - n0 ))
    o=$(awk '/Requests\/sec/ {print int($2)}' "$out/old.wrk")
    n=$(awk '/Requests\/sec/ {print int($2)}' "$out/new.wrk")
    # OLD's CPU per request over NEW's, in %: above 100, NEW is cheaper.
    rounds="$rounds$o $n $(( 100 * o_ticks * n / (n_ticks * o) )) $o_ticks $n_ticks\n"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "Machine: $(machine); $(date -u +%Y-%m-%dT%H:%MZ); ROUNDS=${ROUNDS:-10}"
echo "old: $old"
echo "new: $new"
printf "round  old req/s  new req/s  new vs old (CPU per request)  ticks old/new\n"
printf "$rounds" | awk '{printf "%5d  %9d  %9d  %27d%%  %d/%d\n", NR, $1, $2, $3, $4, $5}'
echo "median: $(printf "$rounds" | awk '{print $3}' | median)% (100 = the same; above, new is cheaper)"
