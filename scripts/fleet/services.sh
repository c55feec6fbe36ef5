# The fleet lab's services, each started on a host of the lab (scripts/fleet/lib.sh) and
# listening on that host's address. Source after lib.sh, from the repository root.
#
#   fleet_postgres HOST              a PostgreSQL primary (initdb) with a `keel` role and
#                                    database; sets KEEL_DATABASE_URL in fleet_env
#   fleet_replica HOST PRIMARY       a streaming replica of PRIMARY (pg_basebackup over the
#                                    lab's network); adds it to KEEL_DATABASE_REPLICA_URLS
#   fleet_pgbouncer HOST PRIMARY     PgBouncer in transaction mode in front of PRIMARY
#   fleet_pg_formation               a primary that fails over: pg_auto_failover's monitor on
#                                    pg-monitor, a primary and a synchronous standby on pg1
#                                    and pg2, a PgBouncer beside each node; Keel names both
#                                    poolers (read-write) and reads from the standby (read-only)
#   fleet_pg_node_run NODE           a formation's node (its keeper and PgBouncer) run again
#   fleet_redis HOST                 a Redis server
#   fleet_redis_replica HOST MASTER  its replica
#   fleet_sentinel HOST MASTER       a Sentinel watching it
#   fleet_nats HOST...               NATS with JetStream: one node, or a cluster of them
#   fleet_payments HOST              the fake payment provider
#   fleet_seed HOST                  migrations and demo data, run from HOST
#   fleet_api HOST                   `keel serve` with fleet_env
#   fleet_worker HOST                `keel worker` with fleet_env
#   fleet_nginx HOST API...          nginx (deploy/nginx.conf) in front of the API hosts
#   fleet_nginx_upstreams HOST API...  the balancer's instances changed, by a reload
#
# fleet_env holds the KEEL_* settings every Keel process of the lab gets; the functions
# above add the addresses of what they start, and a script adds its own before fleet_api.

# KEEL_BIN chooses the binary (the test run's debug build, say); the release build otherwise.
keel_bin=$(realpath "${KEEL_BIN:-target/release/keel}" 2>/dev/null || echo "${KEEL_BIN:-target/release/keel}")
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
declare -A fleet_env=(
    [KEEL_LOG]=warn
    [TOKIO_WORKER_THREADS]=1
)
declare -A fleet_pids=()

# The lab's Keel processes see fleet_env as their environment's KEEL_* settings.
keel_env() {
    local name settings=()
    for name in "${!fleet_env[@]}"; do settings+=("$name=${fleet_env[$name]}"); done
    printf '%s\n' "${settings[@]}"
}

# fleet_keel HOST ARGS...: `keel ARGS` on HOST in the background with fleet_env.
fleet_keel() {
    local host=$1; shift
    local settings
    mapfile -t settings < <(keel_env)
    lab_run "$host" env "${settings[@]}" "$keel_bin" "$@"
}

# fleet_http_ready HOST URL: waits until URL answers 2xx from HOST.
fleet_http_ready() {
    local host=$1 url=$2
    for _ in $(seq 150); do
        lab_exec "$host" curl -sf -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.2
    done
    fleet_log "$url did not become ready (see $lab_dir/log/)"
    return 1
}

pg_data() { echo "$lab_dir/data/$1"; }

pg_start() {
    local host=$1 dir sockets="$lab_dir/data/$1-sockets"
    dir=$(pg_data "$host")
    # Sockets outside the data directory, or pg_basebackup would copy their lock files.
    install -d -o postgres -g postgres "$sockets"
    lab_run "$host" -u postgres "$pg_bin/postgres" -D "$dir" -c "listen_addresses=$(lab_addr "$host")" -k "$sockets"
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 5432 60 || return 1
    for _ in $(seq 100); do
        lab_exec "$host" "$pg_bin/pg_isready" -q -h "$(lab_addr "$host")" && return 0
        sleep 0.1
    done
    fleet_log "PostgreSQL on $host is not ready (see $lab_dir/log/$host.log)"
    return 1
}

fleet_postgres() {
    local host=$1 dir subnet="$fleet_subnet.0/24"
    dir=$(pg_data "$host")
    install -d -o postgres -g postgres -m 700 "$dir"
    runuser -u postgres -- "$pg_bin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
    # The primary is the one part of the lab whose disk flushes are real: fsync stays on,
    # so its commit rate is what this machine's disk allows.
    cat >>"$dir/postgresql.conf" <<CONF
max_connections = 300
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 10
hot_standby = on
track_io_timing = on
CONF
    printf '%s\n' "local all all trust" "host all all $subnet trust" \
        "host replication all $subnet trust" >"$dir/pg_hba.conf"
    pg_start "$host"
    lab_exec "$host" -u postgres "$pg_bin/psql" -h "$(lab_addr "$host")" -U postgres -d postgres -qAt \
        -c "CREATE ROLE keel LOGIN CREATEDB PASSWORD 'keel'" -c "GRANT pg_monitor TO keel" \
        -c "CREATE DATABASE keel OWNER keel" >/dev/null
    fleet_env[KEEL_DATABASE_URL]="postgres://keel:keel@$host:5432/keel"
}

fleet_replica() {
    local host=$1 primary=$2 dir
    dir=$(pg_data "$host")
    install -d -o postgres -g postgres -m 700 "$dir"
    lab_exec "$host" -u postgres "$pg_bin/pg_basebackup" -h "$(lab_addr "$primary")" -U postgres \
        -D "$dir" -R -X stream -c fast --no-sync
    pg_start "$host"
    local url="postgres://keel:keel@$host:5432/keel"
    fleet_env[KEEL_DATABASE_REPLICA_URLS]="${fleet_env[KEEL_DATABASE_REPLICA_URLS]:+${fleet_env[KEEL_DATABASE_REPLICA_URLS]},}$url"
}

# pg_autoctl as the postgres user, every node's configuration under the lab's state.
fleet_autoctl() {
    local host=$1 dir="$lab_dir/data/pg-ha"
    shift
    lab_exec "$host" -u postgres env "PATH=$pg_bin:$PATH" "XDG_CONFIG_HOME=$dir/config" \
        "XDG_DATA_HOME=$dir/share" pg_autoctl "$@"
}

# The formation's ports: the hosts share this machine's /var/run/postgresql, where the
# machine's own server holds 5432's socket lock, so each server has a port of its own.
declare -A fleet_pg_ports=([pg-monitor]=5440 [pg1]=5441 [pg2]=5442)

# fleet_pg_node_run NODE: NODE's keeper (which runs its PostgreSQL) and the PgBouncer beside
# it, as at the start and again after the host was lost.
fleet_pg_node_run() {
    local node=$1 dir="$lab_dir/data/pg-ha"
    lab_run "$node" -u postgres env "PATH=$pg_bin:$PATH" "XDG_CONFIG_HOME=$dir/config" \
        "XDG_DATA_HOME=$dir/share" pg_autoctl run --pgdata "$dir/$node"
    fleet_pids[$node]=$lab_pid
    [ "$node" = pg-monitor ] && return
    lab_run "$node" scripts/pgbouncer.sh "$lab_dir/data/$node-pgbouncer" "$(lab_addr "$node"):6432" \
        "$(lab_addr "$node"):${fleet_pg_ports[$node]}"
}

# fleet_pg_formation: the monitor on pg-monitor, the nodes on pg1 and pg2 (hosts_formation).
fleet_pg_formation() {
    local monitor=pg-monitor dir="$lab_dir/data/pg-ha" node psql port
    install -d -o postgres -g postgres "$dir"
    psql=("$pg_bin/psql" -U postgres -qAt)
    fleet_autoctl "$monitor" create monitor --pgdata "$dir/$monitor" --pgport 5440 \
        --hostname "$(lab_addr "$monitor")" --auth trust --no-ssl >>"$lab_dir/log/$monitor.log" 2>&1
    # The lab's hosts reach every server of the formation (the lab's subnet is its own).
    echo "host all all $fleet_subnet.0/24 trust" >>"$dir/$monitor/pg_hba.conf"
    fleet_pg_node_run "$monitor"
    lab_wait_tcp "$monitor" "$(lab_addr "$monitor")" 5440 60
    lab_exec "$monitor" scripts/pg-ha.sh tune "$(lab_addr "$monitor")" 5440
    for node in pg1 pg2; do
        port=${fleet_pg_ports[$node]}
        fleet_autoctl "$node" create postgres --pgdata "$dir/$node" --pgport "$port" \
            --listen "$(lab_addr "$node")" --hostname "$(lab_addr "$node")" --name "$node" \
            --dbname keel --monitor "postgres://autoctl_node@$(lab_addr "$monitor"):5440/pg_auto_failover?sslmode=disable" \
            --auth trust --no-ssl --pg-hba-lan >>"$lab_dir/log/$node.log" 2>&1
        fleet_autoctl "$node" config set --pgdata "$dir/$node" timeout.network_partition_timeout \
            "$(scripts/pg-ha.sh partition-timeout)" >/dev/null
        echo "host all all $fleet_subnet.0/24 trust" >>"$dir/$node/pg_hba.conf"
        fleet_pg_node_run "$node"
        lab_wait_tcp "$node" "$(lab_addr "$node")" "$port" 120
        lab_wait_tcp "$node" "$(lab_addr "$node")" 6432
    done
    for _ in $(seq 600); do
        [ "$(fleet_autoctl "$monitor" show state --pgdata "$dir/$monitor" 2>/dev/null | grep -c -e ' read-write |' -e ' read-only |')" = 2 ] && break
        sleep 0.1
    done
    lab_exec pg1 "${psql[@]}" -h "$(lab_addr pg1)" -p 5441 -d keel \
        -c "CREATE ROLE keel LOGIN CREATEDB PASSWORD 'keel'" -c "GRANT pg_monitor TO keel" \
        -c "ALTER DATABASE keel OWNER TO keel" >/dev/null
    local nodes="pg1:5441,pg2:5442"
    fleet_env[KEEL_DATABASE_DIRECT_URL]="postgres://keel:keel@$nodes/keel?target_session_attrs=read-write"
    fleet_env[KEEL_DATABASE_URL]="postgres://keel:keel@pg1:6432,pg2:6432/keel?target_session_attrs=read-write"
    fleet_env[KEEL_DATABASE_POOLING]=transaction
    fleet_env[KEEL_DATABASE_REPLICA_URLS]="postgres://keel:keel@$nodes/keel?target_session_attrs=read-only"
}

fleet_pgbouncer() {
    local host=$1 primary=$2 dir="$lab_dir/data/$1"
    lab_run "$host" scripts/pgbouncer.sh "$dir" "$(lab_addr "$host"):6432" "$(lab_addr "$primary"):5432"
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 6432
    fleet_env[KEEL_DATABASE_DIRECT_URL]=${fleet_env[KEEL_DATABASE_URL]}
    fleet_env[KEEL_DATABASE_URL]="postgres://keel:keel@$host:6432/keel"
    fleet_env[KEEL_DATABASE_POOLING]=transaction
}

fleet_redis() {
    local host=$1
    lab_run "$host" redis-server --bind "$(lab_addr "$host")" --port 6379 --save "" \
        --appendonly no --protected-mode no
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 6379
    fleet_env[KEEL_REDIS_URL]="redis://$host:6379"
}

fleet_redis_replica() {
    local host=$1 master=$2
    lab_run "$host" redis-server --bind "$(lab_addr "$host")" --port 6379 --save "" \
        --appendonly no --protected-mode no --replicaof "$(lab_addr "$master")" 6379
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 6379
}

# fleet_sentinel HOST MASTER: a Sentinel watching MASTER (quorum 2 of 3, down after 1 s).
fleet_sentinel() {
    local host=$1 master=$2 conf="$lab_dir/data/$1-sentinel.conf"
    printf '%s\n' "port 26379" "bind $(lab_addr "$host")" "protected-mode no" \
        "sentinel monitor keel $(lab_addr "$master") 6379 2" \
        "sentinel down-after-milliseconds keel 1000" \
        "sentinel failover-timeout keel 5000" >"$conf"
    lab_run "$host" redis-server "$conf" --sentinel
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 26379
    local url="redis://$host:26379"
    fleet_env[KEEL_REDIS_SENTINELS]="${fleet_env[KEEL_REDIS_SENTINELS]:+${fleet_env[KEEL_REDIS_SENTINELS]},}$url"
}

fleet_nats() {
    local host routes="" urls=""
    if [ "$#" -gt 1 ]; then
        for host in "$@"; do routes="$routes${routes:+,}nats://$(lab_addr "$host"):6222"; done
    fi
    for host in "$@"; do
        mkdir -p "$lab_dir/data/$host"
        local addr cluster=()
        addr=$(lab_addr "$host")
        [ -n "$routes" ] && cluster=(--server_name "$host" --cluster_name keel
            --cluster "nats://$addr:6222" --routes "$routes")
        lab_run "$host" nats-server -a "$addr" -p 4222 -js -sd "$lab_dir/data/$host" "${cluster[@]}"
        fleet_pids[$host]=$lab_pid
        urls="$urls${urls:+,}nats://$host:4222"
    done
    for host in "$@"; do lab_wait_tcp "$host" "$(lab_addr "$host")" 4222; done
    fleet_env[KEEL_NATS_URL]=$urls
    [ "$#" -gt 1 ] && fleet_env[KEEL_NATS_REPLICAS]=3
    return 0
}

fleet_payments() {
    local host=$1
    lab_run "$host" "$keel_bin" fake-payments --listen "$(lab_addr "$host"):8090" \
        --latency "${FLEET_PAYMENTS_LATENCY:-20ms}"
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 8090
    fleet_env[KEEL_PAYMENTS_URL]="http://$host:8090"
}

fleet_seed() {
    local host=$1 settings
    mapfile -t settings < <(keel_env)
    lab_exec "$host" env "${settings[@]}" KEEL_SEED_PRODUCTS="${FLEET_PRODUCTS:-10000}" \
        KEEL_SEED_USERS="${FLEET_USERS:-1000}" "$keel_bin" seed --if-empty >>"$lab_dir/log/$host.log" 2>&1
}

# keel_process HOST VARIABLE PORT COMMAND: `keel COMMAND` on HOST, VARIABLE (the address it
# listens on) at HOST's address and PORT.
keel_process() {
    local host=$1 variable=$2 port=$3 command=$4
    fleet_env[$variable]="$(lab_addr "$host"):$port"
    fleet_keel "$host" "$command"
    fleet_pids[$host]=$lab_pid
    unset "fleet_env[$variable]"
}

fleet_api() { keel_process "$1" KEEL_LISTEN 8080 serve; }

fleet_api_ready() { fleet_http_ready "$1" "http://$1:8080/readyz"; }

fleet_worker() { keel_process "$1" KEEL_WORKER_LISTEN 9091 worker; }

# fleet_nginx HOST API...: the balancer on HOST:8080; the instances trust its address.
fleet_nginx() {
    local host=$1; shift
    local upstreams=() api
    for api in "$@"; do upstreams+=("$(lab_addr "$api"):8080"); done
    lab_run "$host" scripts/nginx.sh "$lab_dir/data/$host" "$(lab_addr "$host"):8080" "${upstreams[@]}"
    fleet_pids[$host]=$lab_pid
    lab_wait_tcp "$host" "$(lab_addr "$host")" 8080
}

# fleet_nginx_upstreams HOST API...: renders the configuration anew and reloads nginx, which
# finishes what its old workers hold and sends new requests to the new set.
fleet_nginx_upstreams() {
    local host=$1; shift
    local upstreams=() api
    for api in "$@"; do upstreams+=("$(lab_addr "$api"):8080"); done
    NGINX_RELOAD=1 scripts/nginx.sh "$lab_dir/data/$host" "$(lab_addr "$host"):8080" "${upstreams[@]}"
}

# fleet_stop HOST: SIGTERM to the process started on HOST last, and waits for it to end.
fleet_stop() {
    local pid=${fleet_pids[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "fleet_pids[$1]"
}
