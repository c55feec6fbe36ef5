#!/usr/bin/env bash
# PgBouncer's benchmark (docs/benchmarks.md), in one run on one machine:
#   - an uncached product read (KEEL_CACHE=off) and POST /orders (async mode, no worker:
#     the request's own transaction), each against three set-ups, alternated over ROUNDS:
#       direct       — PostgreSQL itself, named statements prepared once per connection;
#       unnamed      — PostgreSQL itself with KEEL_DATABASE_POOLING=transaction: what
#                      unnamed statements and a SET LOCAL per transaction cost, alone;
#       pgbouncer    — through PgBouncer in transaction mode (deploy/pgbouncer/): the above
#                      plus the pooler's hop;
#   - the seed's "a new connection per request is 30–40 % of the latency": pgbench running
#     the product read with a pool (one connection per client, kept) and with -C (a new
#     connection per transaction), direct and through PgBouncer.
#   DURATION=10 (seconds per measurement), ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
DURATION=${DURATION:-10}
source scripts/bench/lib.sh
bench_setup
rounds=${ROUNDS:-2}

pgbouncer_dir=$(mktemp -d)
scripts/pgbouncer.sh "$pgbouncer_dir" 127.0.0.1:16432 127.0.0.1:5432 2>>"$out/pgbouncer.log" &
pgbouncer_pid=$!
trap 'kill $keel_pid $pgbouncer_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/16432) 2>/dev/null && break; sleep 0.1; done

direct=$KEEL_DATABASE_URL
pooler=postgres://keel:keel@127.0.0.1:16432/keel_bench
export KEEL_RATE_LIMIT_OFF=true KEEL_BENCH_PRODUCTS=100000 KEEL_CACHE=off
setup_env() {
    case $1 in
        direct) echo "KEEL_DATABASE_URL=$direct KEEL_DATABASE_POOLING=direct" ;;
        unnamed) echo "KEEL_DATABASE_URL=$direct KEEL_DATABASE_POOLING=transaction KEEL_DATABASE_DIRECT_URL=$direct" ;;
        pgbouncer) echo "KEEL_DATABASE_URL=$pooler KEEL_DATABASE_POOLING=transaction KEEL_DATABASE_DIRECT_URL=$direct" ;;
    esac
}

declare -A read_rps read_p50 read_p99 order_rps order_p50 order_p99
for round in $(seq "$rounds"); do
    for setup in direct unnamed pgbouncer; do
        # shellcheck disable=SC2046 # one VAR=value per word
        start_keel $(setup_env "$setup")
        read -r rps p50 p99 _ < <(run_wrk "read-$setup-$round" http://127.0.0.1:18080/ scripts/bench/product.lua)
        read_rps[$setup]+="$rps " read_p50[$setup]+="$p50 " read_p99[$setup]+="$p99 "
        KEEL_BENCH_TOKENS=$(login_customers 64)
        export KEEL_BENCH_TOKENS
        read -r rps p50 p99 _ < <(run_wrk "order-$setup-$round" http://127.0.0.1:18080/ scripts/bench/order.lua)
        order_rps[$setup]+="$rps " order_p50[$setup]+="$p50 " order_p99[$setup]+="$p99 "
        log "round $round $setup: read ${read_rps[$setup]}req/s, orders ${order_rps[$setup]}req/s"
    done
done
kill "$keel_pid"; keel_pid=""

# The connection's own cost: pgbench's product read, pooled and with a connection per
# transaction, on PostgreSQL and on PgBouncer.
pgbench_with() {
    local name=$1 port=$2; shift 2
    rm -f "$out/$name".log*
    (cd "$out" && pgbench -h 127.0.0.1 -p "$port" -U keel -n "$@" -c 16 -j 2 -T "$duration" \
        -f "$OLDPWD/scripts/bench/product.sql" -l --log-prefix="$name.log" keel_bench >"$name.pgbench" 2>&1)
    local tps p50 p99
    tps=$(awk '/^tps/ {print int($3)}' "$out/$name.pgbench")
    read -r p50 p99 < <(cat "$out/$name".log* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2fms %.2fms\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
    echo "$tps $p50 $p99"
}
pooled_direct=$(pgbench_with pooled-direct 5432 -M extended)
connect_direct=$(pgbench_with connect-direct 5432 -M extended -C)
pooled_bouncer=$(pgbench_with pooled-bouncer 16432 -M extended)
connect_bouncer=$(pgbench_with connect-bouncer 16432 -M extended -C)

echo
echo "Machine: $(machine); $(date -u +%Y-%m-%dT%H:%MZ); commit $(git rev-parse --short HEAD); DURATION=$duration ROUNDS=$rounds"
echo
echo "| Set-up | uncached read req/s | p50 | p99 | POST /orders req/s | p50 | p99 |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for setup in direct unnamed pgbouncer; do
    echo "| $setup | ${read_rps[$setup]}| ${read_p50[$setup]}| ${read_p99[$setup]}| ${order_rps[$setup]}| ${order_p50[$setup]}| ${order_p99[$setup]}|"
done
echo
echo "| pgbench product read (16 clients) | tps | p50 | p99 |"
echo "| --- | --- | --- | --- |"
for row in "PostgreSQL, pooled:$pooled_direct" "PostgreSQL, a connection per transaction (-C):$connect_direct" \
           "PgBouncer, pooled:$pooled_bouncer" "PgBouncer, a connection per transaction (-C):$connect_bouncer"; do
    read -r tps p50 p99 <<<"${row#*:}"
    echo "| ${row%%:*} | $tps | $p50 | $p99 |"
done
