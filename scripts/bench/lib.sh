# Shared by the benchmark scripts: tools, a fresh seeded `keel_bench` database, and the
# measuring functions. Source it from the repository root after scripts/setup.sh.

duration=${DURATION:-15}
share=${RATE_SHARE:-60}
conns=64
out=$(mktemp -d)
export PGPASSWORD=keel
psql_keel() { psql -h 127.0.0.1 -U keel -d postgres -Atq "$@"; }
psql_bench() { psql -h 127.0.0.1 -U keel -d keel_bench -Atq "$@"; }
# machine: the "Machine:" line's start. The CPU and its caches are named because ratios
# against the bare handler depend on them: Keel serves 10 000 distinct cached bodies, the
# bare handler one, and how many of those reads miss the cache is the CPU's to decide.
machine() {
    local cpu l2 l3
    cpu=$(lscpu | sed -n 's/^Model name: *//p')
    l2=$(lscpu | sed -n 's/^L2 cache: *//p')
    l3=$(lscpu | sed -n 's/^L3 cache: *//p')
    echo "$(nproc) cores ($cpu; L2 $l2, L3 $l3), $(free -g | awk '/Mem/ {print $2}') GiB, $(uname -sr)"
}

# bench_setup: installs the load generators, builds the release binary, and creates and
# seeds a fresh keel_bench database that the KEEL_* variables point at.
bench_setup() {
    command -v wrk >/dev/null 2>&1 || apt_install wrk
    command -v oha >/dev/null 2>&1 || { log "installing oha"; cargo install oha --locked; }
    command -v pgbench >/dev/null 2>&1 || apt_install postgresql-contrib
    log "fresh database keel_bench, seeded"
    psql_keel -c "DROP DATABASE IF EXISTS keel_bench WITH (FORCE)"
    psql_keel -c "CREATE DATABASE keel_bench"
    cargo build --release --locked --bin keel
    export KEEL_DATABASE_URL=postgres://keel:keel@127.0.0.1:5432/keel_bench
    export KEEL_LOG=warn KEEL_LISTEN=127.0.0.1:18080 KEEL_REDIS_PREFIX="bench:$$:"
    ./target/release/keel seed >/dev/null 2>&1
}

# start_keel [VAR=value ...]: (re)starts the instance on :18080 with these settings.
keel_pid=""
start_keel() {
    [ -n "$keel_pid" ] && { kill "$keel_pid"; wait "$keel_pid" 2>/dev/null || true; }
    env "$@" ./target/release/keel serve 2>>"$out/serve.log" &
    keel_pid=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && return; sleep 0.2; done
    echo "keel did not start" >&2; exit 1
}

# login_customers N: prints N demo customers' session tokens, comma-separated.
login_customers() {
    local tokens="" t
    for n in $(seq 1 "$1"); do
        t=$(curl -s -X POST http://127.0.0.1:18080/sessions -H 'content-type: application/json' \
            -d "{\"email\":\"user$n@demo.keel\",\"password\":\"keel-demo-password\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
        tokens="$tokens${tokens:+,}$t"
    done
    echo "$tokens"
}

# client CMD...: runs a load generator as SCHED_BATCH. On two cores it shares the server's
# CPUs, and at normal priority every response that wakes it preempts the server (perf sched
# counted 7 000 preemptions/s of Keel by wrk): that measures the co-location, not the
# server, and penalizes whichever server does more per request. A batch task does not
# preempt on wakeup; the baseline and Keel are measured the same way.
client() { chrt -b 0 "$@"; }

# wrk NAME URL [SCRIPT]: prints "rps p50 p99" (wrk's latencies are closed-loop).
run_wrk() {
    local name=$1 url=$2 script=${3:-}
    client wrk -t2 -c$conns -d2s ${script:+-s "$script"} "$url" >/dev/null 2>&1 # warm-up
    client wrk -t2 -c$conns -d${duration}s --latency ${script:+-s "$script"} "$url" >"$out/$name.wrk"
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ {print int($2)}' "$out/$name.wrk")
    p50=$(awk '$1=="50%" {print $2}' "$out/$name.wrk")
    p99=$(awk '$1=="99%" {print $2}' "$out/$name.wrk")
    errors=$(awk '/Non-2xx/ {print $NF}' "$out/$name.wrk")
    echo "$rps $p50 $p99 ${errors:-0}"
}

# oha NAME RATE URL [oha args]: prints "p50 p99 success%" at a constant RATE req/s.
run_oha() {
    local name=$1 rate=$2 url=$3; shift 3
    client oha --no-tui --output-format json -z ${duration}s -c $conns -q "$rate" --latency-correction "$@" "$url" >"$out/$name.oha.json"
    python3 - "$out/$name.oha.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["latencyPercentiles"]
codes = r["statusCodeDistribution"]
ok = 100 * sum(n for c, n in codes.items() if c.startswith("2")) / max(1, sum(codes.values()))
print(f'{p["p50"]*1000:.2f}ms {p["p99"]*1000:.2f}ms {ok:.1f}%')
PY
}

# cache_counts URL: prints "l1_hits l2_hits loads" from the instance's /metrics.
cache_counts() {
    curl -s "$1/metrics" | awk '
        /^keel_cache_hits_total\{layer="l1"\}/ { l1 = $2 }
        /^keel_cache_hits_total\{layer="l2"\}/ { l2 = $2 }
        /^keel_cache_loads_total/ { loads = $2 }
        END { printf "%d %d %d\n", l1, l2, loads }'
}

# pgbench NAME SCRIPT: prints "tps p50 p99" from per-transaction logs.
run_pgbench() {
    local name=$1 script=$2
    rm -f "$out/$name".log*
    (cd "$out" && pgbench -h 127.0.0.1 -U keel -n -M prepared -c $conns -j 2 -T "$duration" \
        -f "$OLDPWD/$script" -l --log-prefix="$name.log" keel_bench >"$name.pgbench" 2>&1)
    local tps p50 p99
    tps=$(awk '/^tps/ {print int($3)}' "$out/$name.pgbench")
    read -r p50 p99 < <(cat "$out/$name".log* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.2fms %.2fms\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
    echo "$tps $p50 $p99"
}

