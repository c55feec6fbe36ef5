# The sections of scripts/bench-fleet.sh, each run in a lab of its own (lab_create done).
# Each prints its Markdown table and writes its chart's data to $charts.

# scaling_json NAME "x y" ...: the points of a scale-out chart, for `keel bench chart`.
scaling_json() {
    local name=$1; shift
    printf '%s\n' "$@" | python3 -c '
import json, sys
points = [[float(v) for v in line.split()] for line in sys.stdin if line.strip()]
json.dump({"name": sys.argv[1], "points": points}, open(sys.argv[2], "w"))' "$name" "$charts/fleet-$name.json"
}

# scale_reads: cached product reads (L1 hits) through nginx to 1, 2, 4 and 8 API hosts.
scale_reads() {
    fleet_api_cpu=${FLEET_API_CPU:-0.05}
    fleet_lb_cpu=${FLEET_LB_CPU:-0.7}
    # Entries outlive the run, so every read measured is an L1 hit.
    fleet_env[KEEL_CACHE_L1_TTL]=10m
    hot_products=999
    topology_reads 8
    local n i apis one="" rps errors points=()
    cat <<MD
### Cached reads: 1, 2, 4 and 8 API hosts

Each API host $fleet_api_cpu of a core, 512 MiB; nginx $fleet_lb_cpu of a core; the load generator
$fleet_loadgen_cpu. GET /products/{id} over ids 1–$hot_products, every one in each host's L1 before the
run (KEEL_CACHE_L1_TTL=10m). Throughput from wrk (closed loop, 64 connections, ${seconds} s);
then at 70 % of it, open loop, \`keel bench run\` (after a 3 s warm-up) and oha
(\`--latency-correction\`) at the same rate on the same target.

MD
    # One host's capacity is the mean of four, each measured alone: hosts at the same quota
    # differ by up to a fifth here from one measurement to the next, and a single one as
    # the baseline would put that spread into every ratio.
    local singles=() single
    for i in 1 2 3 4; do
        fleet_nginx_upstreams lb "api$i" 2>/dev/null
        warm_l1 "api$i"
        loadgen_wrk 2 http://lb:8080 >/dev/null
        read -r single errors < <(loadgen_wrk "$seconds" http://lb:8080)
        singles+=("$single")
    done
    one=$(printf '%s\n' "${singles[@]}" | awk '{ s += $1 } END { printf "%d", s / NR }')
    echo "One API host alone, each of api1–api4: ${singles[*]} reads/s; their mean, $one, is \"one host\" below."
    cat <<MD

| API hosts | reads/s | per host | vs N × one host | API hosts' CPU (each, mean) | nginx CPU | load generator CPU | machine busy (cores of $(nproc)) | non-2xx | at 70 %: keel bench p50 / p99 | its lateness p99 | oha p50 / p99 |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
MD
    points=("1 $one")
    for n in 1 2 4 8; do
        apis=()
        for i in $(seq "$n"); do apis+=("api$i"); done
        fleet_nginx_upstreams lb "${apis[@]}" 2>/dev/null
        warm_l1 "${apis[@]}"
        loadgen_wrk 2 http://lb:8080 >/dev/null
        cpu_mark
        read -r rps errors < <(loadgen_wrk "$seconds" http://lb:8080)
        local api_cpu lb_cpu gen_cpu busy
        api_cpu=$(cpu_since_hosts "${apis[@]}" | awk '{ for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')
        lb_cpu=$(cpu_since lb) gen_cpu=$(cpu_since loadgen) busy=$(machine_busy_since)
        local rate b50 b99 late o50 o99 open_errors
        rate=$((rps * 7 / 10))
        read -r b50 b99 late o50 o99 open_errors < <(bench_pages "$rate")
        printf '| %d | %d | %d | %s | %s | %s | %s | %s | %d | %s / %s ms | %s ms | %s / %s ms |\n' \
            "$n" "$rps" $((rps / n)) "$(awk -v r="$rps" -v o="$one" -v n="$n" 'BEGIN { printf "%.2f×", r / (n * o) }')" \
            "$api_cpu" "$lb_cpu" "$gen_cpu" "$busy" $((errors + open_errors)) "$b50" "$b99" "$late" "$o50" "$o99"
        [ "$n" = 1 ] || points+=("$n $rps")
    done
    scaling_json reads "${points[@]}"
    echo
}

# scale_uncached: product reads that every time reach PostgreSQL (KEEL_CACHE=off), served by
# the primary alone, then by 1, 2 and 4 read replicas on hosts of their own.
scale_uncached() {
    fleet_api_cpu=${FLEET_API_CPU:-0.1}
    local db_cpu=${FLEET_REPLICA_CPU:-0.25} api_count=${FLEET_UNCACHED_APIS:-6}
    # Small pools: a new PostgreSQL connection is a forked backend, and a host at a quarter
    # of a core takes a while to fork a hundred.
    fleet_env[KEEL_DB_WRITE_POOL]=2
    fleet_env[KEEL_DB_READ_POOL]=6
    local i replicas rps errors points=() api_hosts=() one="" rows=${FLEET_REPLICA_ROWS:-0 1 2}
    local most=${rows##* }
    fleet_env[KEEL_CACHE]=off
    lab_host pg "$db_cpu" 1G
    for i in $(seq "$most"); do lab_host "replica$i" "$db_cpu" 1G; done
    lab_host redis "$fleet_other_cpu" 256M
    lab_host lb "$fleet_lb_cpu" 256M
    lab_host loadgen "$fleet_loadgen_cpu" 1G
    for i in $(seq "$api_count"); do api_host "$i"; api_hosts+=("api$i"); done
    fleet_postgres pg
    fleet_redis redis
    fleet_seed loadgen
    for i in $(seq "$most"); do fleet_replica "replica$i" pg; done
    local all_replicas=${fleet_env[KEEL_DATABASE_REPLICA_URLS]}
    cat <<MD
### Uncached reads: the primary alone, then read replicas

Every PostgreSQL host $db_cpu of a core, 1 GiB; $api_count API hosts at $fleet_api_cpu of a core each with
KEEL_CACHE=off, so every GET /products/{id} (ids 1–${FLEET_PRODUCTS:-10000}) is a query; nginx $fleet_lb_cpu,
the load generator $fleet_loadgen_cpu. wrk, closed loop, 64 connections, ${seconds} s.

| Reads served by | reads/s | vs N × one replica | serving PostgreSQL hosts' CPU (each, mean) | primary's CPU | API hosts' CPU (each, mean) | nginx CPU | load generator CPU | non-2xx |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
MD
    # Four replicas at this share need more than two cores with what feeds them (docs say
    # so); on a larger machine, FLEET_REPLICA_ROWS="0 1 2 4".
    for replicas in $rows; do
        # The API hosts start again, reading from the first $replicas replicas (none: the
        # primary).
        local urls serving=()
        urls=$(echo "$all_replicas" | cut -d, -f"1-$((replicas > 0 ? replicas : 1))")
        [ "$replicas" = 0 ] && urls=""
        fleet_env[KEEL_DATABASE_REPLICA_URLS]=$urls
        for i in $(seq "$replicas"); do serving+=("replica$i"); done
        [ "$replicas" = 0 ] && serving=(pg)
        for api in "${api_hosts[@]}"; do fleet_stop "$api"; done
        [ -n "${fleet_pids[lb]:-}" ] || fleet_nginx lb "${api_hosts[@]}"
        for api in "${api_hosts[@]}"; do fleet_api "$api"; done
        for api in "${api_hosts[@]}"; do fleet_api_ready "$api"; done
        loadgen_wrk 3 http://lb:8080 >/dev/null
        cpu_mark
        read -r rps errors < <(loadgen_wrk "$seconds" http://lb:8080)
        local db api_cpu label
        db=$(cpu_since_hosts "${serving[@]}" | awk '{ for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')
        api_cpu=$(cpu_since_hosts "${api_hosts[@]}" | awk '{ for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')
        label="$replicas replicas"
        [ "$replicas" = 1 ] && label="1 replica"
        [ "$replicas" = 0 ] && label="the primary"
        # The scale-out is counted from one replica: N replicas against N times its figure.
        local versus="—"
        [ "$replicas" = 1 ] && one=$rps
        [ "$replicas" -ge 1 ] && versus=$(awk -v r="$rps" -v o="$one" -v n="$replicas" 'BEGIN { printf "%.2f×", r / (n * o) }')
        printf '| %s | %d | %s | %s | %s | %s | %s | %s | %d |\n' "$label" "$rps" "$versus" \
            "$db" "$(cpu_since pg)" "$api_cpu" "$(cpu_since lb)" "$(cpu_since loadgen)" "$errors"
        [ "$replicas" -ge 1 ] && points+=("$replicas $rps")
    done
    scaling_json uncached "${points[@]}"
    echo
}

# lab_psql SQL: a query on the lab's primary, from its own host; prints the rows.
lab_psql() {
    lab_exec pg -u postgres "$pg_bin/psql" -h "$(lab_addr pg)" -U keel -d keel -Atq -F ' ' -c "$1"
}

# fleet_tokens N: N seeded customers logged in through the balancer, comma-separated.
fleet_tokens() {
    local n tokens="" t
    for n in $(seq "$1"); do
        t=$(lab_exec loadgen curl -s -X POST http://lb:8080/sessions -H 'content-type: application/json' \
            -d "{\"email\":\"user$n@demo.keel\",\"password\":\"keel-demo-password\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')
        tokens="$tokens${tokens:+,}$t"
    done
    echo "$tokens"
}

# scale_orders: a backlog of keyed orders placed through two API hosts, then 1, 2 and 4
# worker hosts working through it; what each row confirms a second, and the primary's signs.
scale_orders() {
    fleet_api_cpu=${FLEET_API_CPU:-0.25}
    local worker_cpu=${FLEET_WORKER_CPU:-0.1} primary_cpu=${FLEET_PRIMARY_CPU:-0.5}
    local i workers
    lab_host pg "$primary_cpu" 2G
    lab_host redis "$fleet_other_cpu" 256M
    lab_host nats1 "${FLEET_NATS_CPU:-0.3}" 512M
    lab_host payments "$fleet_other_cpu" 256M
    lab_host lb "$fleet_lb_cpu" 256M
    lab_host loadgen "$fleet_loadgen_cpu" 1G
    api_host 1
    api_host 2
    for i in 1 2 3 4; do lab_host "worker$i" "$worker_cpu" 512M; done
    fleet_postgres pg
    fleet_redis redis
    fleet_nats nats1
    fleet_payments payments
    FLEET_PRODUCTS=${FLEET_PRODUCTS:-10000} fleet_seed loadgen
    lab_psql "UPDATE catalog.stock SET on_hand = 100000000" >/dev/null
    fleet_api api1
    fleet_api api2
    fleet_api_ready api1
    fleet_api_ready api2
    fleet_nginx lb api1 api2
    local tokens placed0 placed1 t0 t1 placed
    tokens=$(fleet_tokens 32)
    # First a backlog: orders placed with no worker running, as fast as the API hosts take
    # them (what placing alone costs the primary), so every row below measures workers that
    # are never short of work and a primary that does nothing but their sagas.
    read -r placed0 t0 < <(lab_psql "SELECT count(*), extract(epoch FROM clock_timestamp()) FROM orders.orders")
    cpu_mark
    lab_exec loadgen env KEEL_BENCH_TOKENS="$tokens" KEEL_BENCH_PRODUCTS=10000 \
        wrk -t2 -c16 -d"${FLEET_BACKLOG_SECONDS:-25}s" -s scripts/bench/order.lua http://lb:8080/orders \
        >"$lab_dir/orders-backlog.wrk" 2>&1
    read -r placed1 t1 < <(lab_psql "SELECT count(*), extract(epoch FROM clock_timestamp()) FROM orders.orders")
    placed=$(awk -v a="$placed0" -v b="$placed1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d", (b - a) / (t1 - t0) }')
    local placing_pg_cpu
    placing_pg_cpu=$(cpu_since pg)
    cat <<MD
### Orders: 1, 2 and 4 worker hosts

Two API hosts at $fleet_api_cpu of a core behind nginx first place keyed orders (one line each) with
no worker running, as fast as wrk's 16 connections get them accepted:
**$placed orders/s placed**, the primary's CPU at $placing_pg_cpu of its $primary_cpu — $((placed1 - placed0)) orders
waiting. Then worker hosts ($worker_cpu of a core each) start, 1, then 2, then 4, and each row
measures ${seconds} s of them working through that backlog: the outbox relay and the saga
(reserve, charge the fake provider at ${FLEET_PAYMENTS_LATENCY:-20ms}, ship, confirm). The primary
has $primary_cpu of a core and this machine's disk (fsync on); NATS one node at ${FLEET_NATS_CPU:-0.3}.

| Worker hosts | confirmed/s | vs N × one worker | workers' CPU (each, mean) | primary's CPU | WAL flushes/s | sessions waiting on a lock (mean) | backlog at the end |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
MD
    local one="" points=() started=0
    for workers in 1 2 4; do
        for i in $(seq $((started + 1)) "$workers"); do fleet_worker "worker$i"; done
        started=$workers
        local worker_hosts=()
        for i in $(seq "$workers"); do worker_hosts+=("worker$i"); done
        sleep 3
        local confirmed0 wal0 confirmed1 wal1 backlog
        read -r confirmed0 wal0 t0 < <(lab_psql "SELECT
            (SELECT count(*) FROM orders.orders WHERE status = 'confirmed'),
            (SELECT wal_sync FROM pg_stat_wal), extract(epoch FROM clock_timestamp())")
        cpu_mark
        local waits=0 samples=0
        for _ in $(seq $((seconds * 2))); do
            waits=$((waits + $(lab_psql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")))
            samples=$((samples + 1))
            sleep 0.5
        done
        read -r confirmed1 wal1 t1 backlog < <(lab_psql "SELECT
            (SELECT count(*) FROM orders.orders WHERE status = 'confirmed'),
            (SELECT wal_sync FROM pg_stat_wal), extract(epoch FROM clock_timestamp()),
            (SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled'))")
        local worker_cpu_used pg_cpu confirmed
        worker_cpu_used=$(cpu_since_hosts "${worker_hosts[@]}" | awk '{ for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')
        pg_cpu=$(cpu_since pg)
        confirmed=$(awk -v a="$confirmed0" -v b="$confirmed1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d", (b - a) / (t1 - t0) }')
        [ -n "$one" ] || one=$confirmed
        printf '| %d | %d | %s | %s | %s | %s | %s | %d |\n' "$workers" "$confirmed" \
            "$(awk -v r="$confirmed" -v o="$one" -v n="$workers" 'BEGIN { printf "%.2f×", r / (n * o) }')" \
            "$worker_cpu_used" "$pg_cpu" \
            "$(awk -v a="$wal0" -v b="$wal1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d", (b - a) / (t1 - t0) }')" \
            "$(awk -v w="$waits" -v n="$samples" 'BEGIN { printf "%.1f", (n ? w / n : 0) }')" "$backlog"
        points+=("$workers $confirmed")
    done
    scaling_json orders "${points[@]}"
    echo
}

# scale_elastic: product pages at a constant rate, half of one API host's capacity
# (FLEET_ELASTIC_SHARE=50 %: one host must carry it alone after the drain, and hosts at the
# same quota differ by a fifth here from run to run); an API host
# is added (started, ready, then put into nginx's upstreams by a reload), and later the
# first one drained (out of the upstreams, then SIGTERM). Counts what failed, and the p99
# of each second around both changes.
scale_elastic() {
    fleet_env[KEEL_CACHE_L1_TTL]=10m
    fleet_env[KEEL_SHUTDOWN_DELAY]=2s
    hot_products=999
    hosts_base
    api_host 1
    api_host 2
    fleet_postgres pg
    fleet_redis redis
    fleet_seed loadgen
    fleet_api api1
    fleet_api_ready api1
    fleet_nginx lb api1
    warm_l1 api1
    loadgen_wrk 2 http://lb:8080 >/dev/null
    local capacity errors rate slo=${FLEET_SLO:-50} json="$lab_dir/elastic.json" total=60
    local share=${FLEET_ELASTIC_SHARE:-50}
    read -r capacity errors < <(loadgen_wrk 5 http://lb:8080)
    rate=$((capacity * share / 100))
    echo "### Elastic: an API host added under load, then one drained"
    echo
    lab_run loadgen "$keel_bin" bench run --url http://lb:8080 --scenario pages --rate "$rate" \
        --duration "${total}s" --warm-up 3s --products "$hot_products" --json "$json"
    local bench_pid=$lab_pid start added drained ready_at
    start=$(($(date +%s%N) / 1000000 + 3000))
    sleep 18
    local at_start_api2=$(( ($(date +%s%N) / 1000000 - start) ))
    fleet_api api2
    fleet_api_ready api2
    fleet_nginx_upstreams lb api1 api2 2>/dev/null
    added=$(( ($(date +%s%N) / 1000000 - start) ))
    sleep 22
    fleet_nginx_upstreams lb api2 2>/dev/null
    drained=$(( ($(date +%s%N) / 1000000 - start) ))
    fleet_stop api1
    wait "$bench_pid" || true
    python3 - "$json" "$slo" "$at_start_api2" "$added" "$drained" "$rate" "$capacity" "$share" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
slo, started, added, drained, rate, capacity, share = map(float, sys.argv[2:])
pages = run["operations"]["GET /products/{id}"]
failed = pages["requests"] - pages["statuses"].get("200", 0)
others = {s: n for s, n in pages["statuses"].items() if s != "200"}
p99 = [s["p99_ms"] for s in run["seconds"]]
def recovery(at):
    # Seconds from `at` until the first second from then on whose p99 is under the SLO.
    first = int(at / 1000)
    for n in range(first, len(p99)):
        if p99[n] <= slo:
            return n - first, max(p99[first:n + 1])
    return None, max(p99[first:])
add_rec, add_worst = recovery(added)
drain_rec, drain_worst = recovery(drained)
print(f"One API host's capacity: {capacity:.0f} reads/s (wrk); the run: {rate:.0f}/s open loop ({share:.0f} %) for "
      f"{len(p99)} s, SLO p99 {slo:.0f} ms.\n")
print("| Event | at (s) | p99 that second | seconds until p99 ≤ SLO | worst p99 meanwhile |")
print("| --- | ---: | ---: | ---: | ---: |")
print(f"| api2 started (cold L1) | {started/1000:.1f} | {p99[int(started/1000)]:.1f} ms | | |")
print(f"| api2 in nginx's upstreams | {added/1000:.1f} | {p99[int(added/1000)]:.1f} ms | {add_rec} | {add_worst:.1f} ms |")
print(f"| api1 out of the upstreams, SIGTERM | {drained/1000:.1f} | {p99[min(int(drained/1000), len(p99)-1)]:.1f} ms | {drain_rec} | {drain_worst:.1f} ms |")
print(f"\nRequests: {pages['requests']}, failed or non-200: {failed} (unanswered {pages['failed']} "
      f"{pages['failures'] or ''}, other statuses {others or 'none'}; GETs resent after their "
      f"kept-alive connection closed unanswered: {pages['resent']}); p99 over the whole run "
      f"{pages['p99_ms']:.1f} ms.")
PY
    cp "$json" "$charts/fleet-elastic.json"
    cp "${json%.json}.svg" "$charts/fleet-elastic.svg"
    echo
}

# scale_latency: the seeds' latency claims with a network between the hosts. One product read
# answered from L1, from Redis (L2) and from PostgreSQL, on API hosts whose links to Redis and
# PostgreSQL either are the lab's bare bridge or go through `keel bench delay-proxy` adding
# 0.5 ms a round trip (one availability zone); then a connection per query against a pooled
# one (pgbench -C), the same two ways.
scale_latency() {
    fleet_api_cpu=${FLEET_API_CPU:-0.4}
    local rtt=${FLEET_RTT_DELAY:-250us} rate=${FLEET_LATENCY_RATE:-200} i mode
    hot_products=999
    fleet_env[KEEL_CACHE_L1_TTL]=10m
    lab_host pg 0.5 1G
    lab_host redis 0.3 256M
    lab_host loadgen "$fleet_loadgen_cpu" 1G
    for i in 1 2 3 4 5 6; do api_host "$i"; done
    fleet_postgres pg
    fleet_redis redis
    fleet_seed loadgen
    local db_url=${fleet_env[KEEL_DATABASE_URL]} redis_url=${fleet_env[KEEL_REDIS_URL]}
    # api1-3: Redis and PostgreSQL through a delaying proxy on the API host itself.
    for i in 1 2 3; do
        lab_run "api$i" "$keel_bin" bench delay-proxy --listen 127.0.0.1:15432 --upstream "$(lab_addr pg):5432" --delay "$rtt"
        lab_run "api$i" "$keel_bin" bench delay-proxy --listen 127.0.0.1:16379 --upstream "$(lab_addr redis):6379" --delay "$rtt"
        lab_wait_tcp "api$i" 127.0.0.1 15432
        lab_wait_tcp "api$i" 127.0.0.1 16379
    done
    local modes=(layered redis off layered redis off)
    for i in 1 2 3 4 5 6; do
        fleet_env[KEEL_CACHE]=${modes[$((i - 1))]}
        if [ "$i" -le 3 ]; then
            fleet_env[KEEL_DATABASE_URL]=postgres://keel:keel@127.0.0.1:15432/keel
            fleet_env[KEEL_REDIS_URL]=redis://127.0.0.1:16379
        else
            fleet_env[KEEL_DATABASE_URL]=$db_url
            fleet_env[KEEL_REDIS_URL]=$redis_url
        fi
        fleet_api "api$i"
    done
    for i in 1 2 3 4 5 6; do fleet_api_ready "api$i"; done
    warm_l1 api1 api2 api4 api5
    declare -A p=()
    for i in 1 2 3 4 5 6; do
        local json="$lab_dir/latency-$i.json"
        lab_exec loadgen "$keel_bin" bench run --url "http://api$i:8080" --scenario pages --rate "$rate" \
            --duration "${FLEET_BENCH_SECONDS:-10}s" --warm-up 2s --products "$hot_products" --json "$json" >/dev/null 2>&1
        p[$i]=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["operations"]["GET /products/{id}"]
print("%.2f / %.2f ms" % (s["p50_ms"], s["p99_ms"]))' "$json")
    done
    # pgbench from an API host: one client, the product read, a connection per transaction
    # (-C) or one for the whole run; "latency average" includes the connection when -C.
    pg_latency() {
        lab_exec "$1" env PGPASSWORD=keel "$pg_bin/pgbench" -h "$2" -p "$3" -U keel -n -c 1 -T 5 \
            -f scripts/bench/product.sql $4 keel 2>/dev/null | awk '/latency average/ { print $4 }'
    }
    local pooled_far per_far pooled_near per_near
    pooled_far=$(pg_latency api1 127.0.0.1 15432 "")
    per_far=$(pg_latency api1 127.0.0.1 15432 -C)
    pooled_near=$(pg_latency api4 "$(lab_addr pg)" 5432 "")
    per_near=$(pg_latency api4 "$(lab_addr pg)" 5432 -C)
    share() { awk -v c="$1" -v p="$2" 'BEGIN { printf "%.0f %%", 100 * (c - p) / c }'; }
    cat <<MD
### Latency with a network between the hosts

API hosts at $fleet_api_cpu of a core, read straight from the load generator's host (no balancer) at $rate/s
open loop, ${FLEET_BENCH_SECONDS:-10} s after a 2 s warm-up, ids 1–$hot_products; their links to Redis and
PostgreSQL are the lab's bridge, or that plus \`keel bench delay-proxy\` holding each direction
$rtt (a round trip ≈ 0.5 ms longer, as within one availability zone).

| One product read, answered from | bare bridge: p50 / p99 | + 0.5 ms round trip: p50 / p99 | the seeds say |
| --- | ---: | ---: | --- |
| L1, in process (KEEL_CACHE=layered) | ${p[4]} | ${p[1]} | local cache sub-millisecond (seed 000) |
| Redis (KEEL_CACHE=redis) | ${p[5]} | ${p[2]} | Redis 1–2 ms (seed 000) |
| PostgreSQL (KEEL_CACHE=off) | ${p[6]} | ${p[3]} | |

| The product query from an API host (pgbench, 1 client, 5 s) | bare bridge | + 0.5 ms round trip |
| --- | ---: | ---: |
| on one connection (pooled) | $pooled_near ms | $pooled_far ms |
| a new connection each time (\`-C\`) | $per_near ms | $per_far ms |
| connection set-up's share of the latency | $(share "$per_near" "$pooled_near") | $(share "$per_far" "$pooled_far") |

MD
}
