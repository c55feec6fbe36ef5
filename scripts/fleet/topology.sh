# The fleet lab's topologies and the measurements made in them. Source after lib.sh and
# services.sh, from the repository root.

fleet_api_cpu=${FLEET_API_CPU:-0.05}
fleet_lb_cpu=${FLEET_LB_CPU:-0.7}
fleet_loadgen_cpu=${FLEET_LOADGEN_CPU:-0.6}
fleet_db_cpu=${FLEET_DB_CPU:-0.5}
fleet_other_cpu=${FLEET_OTHER_CPU:-0.2}

build_keel() {
    [ -z "${KEEL_BIN:-}" ] || return 0
    log "building keel (release)"
    cargo build --release --locked --bin keel
}

# Every Keel process of a lab: rate limits off (the load generator is one client address),
# the instances trusting the lab's subnet for X-Forwarded-For, pools that fit a fleet.
fleet_env[KEEL_RATE_LIMIT_OFF]=true
fleet_env[KEEL_TRUSTED_PROXIES]="$fleet_subnet.0/24"
fleet_env[KEEL_DB_WRITE_POOL]=${KEEL_DB_WRITE_POOL:-8}
fleet_env[KEEL_DB_READ_POOL]=${KEEL_DB_READ_POOL:-8}

# The hosts every topology has: the data layer, the balancer and the load generator.
hosts_base() {
    lab_host pg "$fleet_db_cpu" 1G
    lab_host redis "$fleet_other_cpu" 256M
    lab_host lb "$fleet_lb_cpu" 256M
    lab_host loadgen "$fleet_loadgen_cpu" 1G
}

# api_host N: the N-th API host, at the share every API host gets.
api_host() { lab_host "api$1" "$fleet_api_cpu" 512M "${FLEET_API_RATE:-}"; }

# topology_reads N: PostgreSQL, Redis, N API hosts behind the balancer, the load generator.
topology_reads() {
    local n=$1 i apis=()
    hosts_base
    for i in $(seq "$n"); do api_host "$i"; apis+=("api$i"); done
    fleet_postgres pg
    fleet_redis redis
    fleet_seed loadgen
    for i in $(seq "$n"); do fleet_api "api$i"; done
    for i in $(seq "$n"); do fleet_api_ready "api$i"; done
    fleet_nginx lb "${apis[@]}"
}

# The hosts of a topology whose PostgreSQL fails over (fleet_pg_formation): the formation's
# monitor and nodes, Redis, the balancer and the load generator.
hosts_formation() {
    lab_host pg-monitor "$fleet_other_cpu" 512M
    lab_host pg1 "$fleet_db_cpu" 1G
    lab_host pg2 "$fleet_db_cpu" 1G
    lab_host redis "$fleet_other_cpu" 256M
    lab_host lb "$fleet_lb_cpu" 256M
    lab_host loadgen "$fleet_loadgen_cpu" 1G
}

# topology_full: every part of the HA topology on a host of its own: the PostgreSQL
# formation's monitor (pg-monitor) and nodes (pg1, pg2, each with its PgBouncer).
topology_full() {
    local apis=() i workers=${FLEET_WORKERS:-2}
    hosts_formation
    lab_host redis-replica "$fleet_other_cpu" 256M
    for i in 1 2 3; do lab_host "sentinel$i" 0.05 64M; done
    for i in 1 2 3; do lab_host "nats$i" "$fleet_other_cpu" 512M; done
    lab_host payments "$fleet_other_cpu" 256M
    for i in $(seq "${FLEET_APIS:-2}"); do api_host "$i"; apis+=("api$i"); done
    for i in $(seq "$workers"); do lab_host "worker$i" "$fleet_api_cpu" 512M; done
    fleet_pg_formation
    fleet_redis redis
    fleet_redis_replica redis-replica redis
    for i in 1 2 3; do fleet_sentinel "sentinel$i" redis; done
    fleet_nats nats1 nats2 nats3
    fleet_payments payments
    fleet_seed loadgen
    for api in "${apis[@]}"; do fleet_api "$api"; done
    for i in $(seq "$workers"); do fleet_worker "worker$i"; done
    for api in "${apis[@]}"; do fleet_api_ready "$api"; done
    fleet_nginx lb "${apis[@]}"
}

# loadgen_wrk SECONDS URL [LUA]: closed-loop requests from the load generator's host for
# SECONDS; prints "requests/s non-2xx". 64 connections keep every instance busy.
loadgen_wrk() {
    local seconds=$1 url=$2 lua=${3:-scripts/bench/product.lua} report
    report=$(lab_exec loadgen env KEEL_BENCH_PRODUCTS="${hot_products:-${FLEET_PRODUCTS:-10000}}" \
        wrk -t2 -c64 -d"${seconds}s" -s "$lua" "$url")
    echo "$report" >>"$lab_dir/log/wrk.log"
    awk '/Requests\/sec/ { rps = int($2) } /Non-2xx/ { errors = $NF }
        END { printf "%d %d\n", rps, errors }' <<<"$report"
}

# smoke: one, then two API hosts behind the balancer, cached reads (L1 hits over a hot set
# every host has loaded) at each; sets smoke_ratio.
smoke() {
    fleet_env[KEEL_CACHE_L1_TTL]=10m
    hot_products=999
    topology_reads 2
    local one two one_errors two_errors
    fleet_nginx_upstreams lb api1 2>/dev/null
    warm_l1 api1 api2
    fleet_log "cached reads through the balancer to one API host (${fleet_api_cpu} of a core)"
    loadgen_wrk 2 http://lb:8080 >/dev/null
    read -r one one_errors < <(loadgen_wrk "${FLEET_SMOKE_SECONDS:-8}" http://lb:8080)
    fleet_nginx_upstreams lb api1 api2 2>/dev/null
    fleet_log "the same to two API hosts"
    loadgen_wrk 2 http://lb:8080 >/dev/null
    read -r two two_errors < <(loadgen_wrk "${FLEET_SMOKE_SECONDS:-8}" http://lb:8080)
    fleet_log "one host: $one/s ($one_errors non-2xx), two hosts: $two/s ($two_errors non-2xx)"
    smoke_ratio=$(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
    if [ "$one_errors" != 0 ] || [ "$two_errors" != 0 ]; then
        fleet_log "requests failed"
        smoke_ratio=0
    fi
}
