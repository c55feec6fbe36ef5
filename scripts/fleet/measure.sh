# Measuring in the fleet lab: CPU by host over a measurement, closed-loop throughput (wrk),
# and open-loop latency from both `keel bench run` and oha at the same rate, all sent from
# the load generator's host. Source after lib.sh, services.sh and topology.sh.

# cpu_mark: remembers every host's CPU seconds so far, and the machine's busy and total
# jiffies (cpu_since and machine_busy_since read the differences).
declare -A cpu_marks=()
cpu_mark_at=0
machine_mark=""
cpu_mark() {
    local name rest
    while read -r name rest; do cpu_marks[$name]=$(lab_cpu_seconds "$name"); done <"$lab_dir/hosts"
    cpu_mark_at=$(date +%s.%N)
    machine_mark=$(machine_jiffies)
}

# machine_jiffies: "busy total" jiffies of every core so far (/proc/stat; idle and iowait
# are not busy). Softirq work (the bridge's packets) is busy here and in no host's cgroup.
machine_jiffies() {
    awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

# machine_busy_since: cores the whole machine kept busy since cpu_mark (2.00 = both of two).
machine_busy_since() {
    local busy0 total0 busy1 total1
    read -r busy0 total0 <<<"$machine_mark"
    read -r busy1 total1 < <(machine_jiffies)
    awk -v b="$((busy1 - busy0))" -v t="$((total1 - total0))" -v n="$(nproc)" \
        'BEGIN { printf "%.2f", (t > 0 ? n * b / t : 0) }'
}

# cpu_since HOST: the share of a core HOST used since cpu_mark (0.25 = a quarter of a core).
cpu_since() {
    awk -v a="${cpu_marks[$1]}" -v b="$(lab_cpu_seconds "$1")" -v t0="$cpu_mark_at" -v t1="$(date +%s.%N)" \
        'BEGIN { printf "%.2f", (b - a) / (t1 - t0) }'
}

# cpu_since_hosts HOST...: the shares of every HOST named, e.g. "0.05 0.05 0.05".
cpu_since_hosts() {
    local host out=()
    for host in "$@"; do out+=("$(cpu_since "$host")"); done
    echo "${out[*]}"
}

# warm_l1 HOST...: every product of the hot set read once on each HOST, straight to it (in
# parallel; curl's URL range keeps one connection), so what follows measures L1 hits.
warm_l1() {
    local host pids=()
    for host in "$@"; do
        lab_exec loadgen curl -sf -o /dev/null "http://$host:8080/products/[1-$hot_products]" &
        pids+=($!)
    done
    wait "${pids[@]}"
}

# bench_pages RATE: product pages (the hot set) at a constant RATE from the load generator,
# first with `keel bench run` (a warm-up it does not count, then the measurement), then oha
# (--latency-correction, after its own uncounted warm-up); prints
# "bench_p50 bench_p99 bench_late_p99 oha_p50 oha_p99 errors".
bench_pages() {
    local rate=$1 json="$lab_dir/bench-$1.json" oha="$lab_dir/oha-$1.json" seconds=${FLEET_BENCH_SECONDS:-10}
    # The same cap on requests in flight for both: with fewer, a tail past connections ÷ rate
    # queues in the generator, and latency correction counts that wait.
    local in_flight=256
    lab_exec loadgen "$keel_bin" bench run --url http://lb:8080 --scenario pages --rate "$rate" \
        --duration "${seconds}s" --warm-up 3s --concurrency "$in_flight" --products "$hot_products" \
        --json "$json" >/dev/null 2>&1
    lab_exec loadgen oha --no-tui --output-format json -z 3s -c "$in_flight" -q "$rate" \
        --rand-regex-url "http://lb:8080/products/[1-9][0-9]{0,2}" >/dev/null 2>&1
    lab_exec loadgen oha --no-tui --output-format json -z "${seconds}s" -c "$in_flight" -q "$rate" \
        --latency-correction --rand-regex-url "http://lb:8080/products/[1-9][0-9]{0,2}" >"$oha" 2>/dev/null
    python3 - "$json" "$oha" <<'PY'
import json, sys
bench, oha = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
pages = bench["operations"]["GET /products/{id}"]
errors = pages["requests"] - pages["statuses"].get("200", 0)
codes = oha["statusCodeDistribution"]
# oha counts the requests still in flight when its time is up as errors; they are not.
errors += sum(n for c, n in codes.items() if not c.startswith("2")) + sum(
    n for e, n in oha.get("errorDistribution", {}).items() if "deadline" not in e)
p = oha["latencyPercentiles"]
print(f'{pages["p50_ms"]:.2f} {pages["p99_ms"]:.2f} {bench["sent_late"]["p99_ms"]:.2f} '
      f'{p["p50"] * 1000:.2f} {p["p99"] * 1000:.2f} {errors}')
PY
}
