# The PostgreSQL primary lost in the fleet lab, three ways: its host killed (every process
# in its cgroup SIGKILLed), its host cut off from every other (a partition: a failover),
# and cut off from the API hosts only for 20 s (silent to Keel, alive to the formation: no
# failover). Source after lib.sh, services.sh, topology.sh and nemesis.sh, from the
# repository root.
#
#   failover_run   prints one line per fault: the write outage a client saw (from the first
#                  try of the order in flight to its acknowledgement), the tries that failed
#                  and the slowest of them, the orders acknowledged, and how many of those
#                  the primary lacks afterwards

failover_topology() {
    hosts_formation
    api_host 1
    api_host 2
    fleet_pg_formation
    fleet_redis redis
    fleet_seed loadgen
    fleet_api api1
    fleet_api api2
    fleet_api_ready api1
    fleet_api_ready api2
    fleet_nginx lb api1 api2
}

# The node that takes writes now: pg1 or pg2.
failover_primary() {
    local node
    for node in pg1 pg2; do
        [ "$(lab_exec loadgen "$pg_bin/psql" "postgres://keel:keel@$node:${fleet_pg_ports[$node]}/keel" \
            -Atc "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && { echo "$node"; return; }
    done
}

# failover_kill_host HOST: every process of HOST SIGKILLed (its cgroup's), as when it dies.
failover_kill_host() {
    xargs -r kill -KILL <"$cgroup_root/memory/keel-fleet/$lab_id/$1/cgroup.procs" 2>/dev/null || true
}

# failover_fault NAME: orders for 50 s, the fault 10 s in, then the verdict line.
failover_fault() {
    local fault=$1 token primary others at out="$lab_dir/log/orders-$1.log" acked ids present
    token=$(lab_exec loadgen curl -s -m 5 http://lb:8080/sessions -H 'content-type: application/json' \
        -d "{\"email\":\"user$((RANDOM % 20 + 1))@demo.keel\",\"password\":\"keel-demo-password\"}" |
        grep -o '"token":"[^"]*"' | cut -d'"' -f4)
    primary=$(failover_primary)
    lab_run loadgen scripts/fleet/orders.sh "$token" 50
    local client=$lab_pid
    sleep 10
    at=$(date +%s.%N)
    case "$fault" in
    kill) failover_kill_host "$primary" ;;
    partition)
        others=$(awk -v p="$primary" '$1 != p { printf "%s ", $1 }' "$lab_dir/hosts")
        nemesis_partition "$primary" "$others" 25 >/dev/null 2>&1
        ;;
    silent) nemesis_partition "$primary" "api1 api2" 20 >/dev/null 2>&1 ;;
    esac
    wait "$client" 2>/dev/null || true
    # The client's lines are in the load generator's log, among its other output.
    grep -E '^[0-9.]+ ([0-9.]+ 202 [0-9]+ [0-9]+|fail [0-9]+ [0-9.]+)$' "$lab_dir/log/loadgen.log" >"$out"
    : >"$lab_dir/log/loadgen.log"
    acked=$(awk '$3 == 202 { print $4 }' "$out" | sort -un)
    ids=$(paste -sd, <<<"$acked")
    present=$(lab_exec loadgen "$pg_bin/psql" "${fleet_env[KEEL_DATABASE_DIRECT_URL]}" -Atc \
        "SELECT count(*) FROM orders.orders WHERE id = ANY('{$ids}'::bigint[])")
    awk -v at="$at" -v fault="$fault" -v from="$primary" -v present="$present" -v now="$(failover_primary)" '
        $3 == 202 { acked++; if ($2 > at && $2 - $1 > outage) outage = $2 - $1 }
        $2 == "fail" { failed++; if ($4 > slowest) slowest = $4 }
        END { printf "%-9s %s → %s: write outage %.1f s, %d tries failed (slowest %.1f s), %d acknowledged, %d lost\n",
              fault, from, now, outage, failed, slowest, acked, acked - present }' "$out"
}

failover_run() {
    failover_topology
    failover_fault kill
    # The killed node back, as a standby, before the second fault.
    local node
    for node in pg1 pg2; do
        lab_exec "$node" bash -c "exec 3<>/dev/tcp/$(lab_addr "$node")/${fleet_pg_ports[$node]}" 2>/dev/null \
            || fleet_pg_node_run "$node"
    done
    for _ in $(seq 120); do
        [ "$(lab_exec loadgen "$pg_bin/psql" "${fleet_env[KEEL_DATABASE_REPLICA_URLS]}" -Atc "SELECT pg_is_in_recovery()" 2>/dev/null)" = t ] && break
        sleep 1
    done
    sleep 5
    failover_fault partition
    # The partition heals after 25 s of the 50; the cut-off node rejoins as the standby.
    sleep 15
    failover_fault silent
}
