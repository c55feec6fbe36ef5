#!/usr/bin/env bash
# The fleet lab: Keel on simulated hosts of this machine, each with its own address, CPU
# quota, memory limit and network (scripts/fleet/lib.sh says how), run as root.
#
#   scripts/fleet.sh up [full|reads]   brings a topology up and keeps it until Ctrl-C:
#       reads  the balancer, FLEET_APIS (2) API hosts, PostgreSQL, Redis and the load
#              generator's host: what cached and uncached reads need
#       full   (the default) PostgreSQL that fails over (pg_auto_failover: pg-monitor, and
#              pg1 and pg2 each with a PgBouncer), Redis with a replica and three
#              Sentinels, NATS ×3, FLEET_APIS API hosts, FLEET_WORKERS (2) worker hosts,
#              the fake provider, the balancer and the load generator
#   scripts/fleet.sh smoke             one, then two API hosts behind the lab's balancer,
#                                      cached reads at each; last line
#                                      `reads 2 hosts / 1 host: R×`; fails when R < 1.6 or
#                                      when anything is left after teardown
#   scripts/fleet.sh failover          the PostgreSQL primary lost under keyed orders: its
#                                      host killed, cut off, then silent to the API hosts;
#                                      per fault the write outage, failed tries, orders
#                                      acknowledged and lost
#   scripts/fleet.sh exec HOST CMD...  runs CMD on HOST of the running lab (FLEET_ID, or the
#                                      newest), e.g. `exec loadgen curl http://lb:8080/products/1`
#   scripts/fleet.sh hosts             the running lab's hosts: name, address, CPU, memory
#   scripts/fleet.sh clean             tears down every lab whose script has died
#
# Network faults in the running lab (scripts/fleet/nemesis.sh), each healed by itself after
# SECS (30 by default; 0 for never) and with the lab; groups are comma-separated hosts:
#   scripts/fleet.sh partition A,B C,D [SECS]   no packet between the two groups, either way
#   scripts/fleet.sh blackhole FROM TO [SECS]   FROM's packets to TO dropped, one way
#   scripts/fleet.sh loss A B PERCENT [SECS]    a share of the packets between A and B dropped
#   scripts/fleet.sh slow HOST RATE [SECS]      HOST's link capped at RATE (tc tbf: 1mbit)
#   scripts/fleet.sh heal [FAULT]               one fault (the number each prints), or all
#
# Every host's share is a setting: FLEET_API_CPU (0.05 of a core), FLEET_LB_CPU (0.7),
# FLEET_LOADGEN_CPU (0.6), FLEET_DB_CPU (0.5), FLEET_OTHER_CPU (0.2); FLEET_API_RATE caps
# each API host's link (tc tbf, e.g. 100mbit; none by default). A lab tears down everything
# it made when its script exits, on Ctrl-C, on failure, and, through its reaper, when the
# script is killed outright.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the fleet lab makes namespaces and cgroups: run it as root" >&2; exit 1; }
source scripts/setup.sh
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v iptables >/dev/null 2>&1 || apt_install iptables
command -v wrk >/dev/null 2>&1 || apt_install wrk
source scripts/fleet/lib.sh
source scripts/fleet/services.sh
source scripts/fleet/topology.sh
source scripts/fleet/measure.sh
source scripts/fleet/nemesis.sh
source scripts/fleet/failover.sh

# The running lab a command is for: FLEET_ID, or the newest whose script still runs.
attach() {
    local dir newest=0 made
    lab_id=${FLEET_ID:-}
    if [ -z "$lab_id" ]; then
        for dir in "$fleet_root"/*/; do
            [ -f "$dir/owner" ] && kill -0 "$(cat "$dir/owner")" 2>/dev/null || continue
            made=$(stat -c %Y "$dir")
            [ "$made" -ge "$newest" ] && { newest=$made; lab_id=$(basename "$dir"); }
        done
    fi
    if [ -z "$lab_id" ] || [ ! -d "$fleet_root/$lab_id" ]; then
        echo "no fleet lab is running" >&2
        exit 1
    fi
    lab_dir="$fleet_root/$lab_id"
}

command=${1:-}
case "$command" in
up)
    topology=${2:-full}
    build_keel
    trap lab_down EXIT
    trap 'exit 130' INT TERM
    lab_create
    case "$topology" in
        full) topology_full ;;
        reads) topology_reads "${FLEET_APIS:-2}" ;;
        *) echo "topologies: full, reads" >&2; exit 2 ;;
    esac
    fleet_log "up: $(wc -l <"$lab_dir/hosts") hosts; try: scripts/fleet.sh exec loadgen curl -s http://lb:8080/products/1"
    column -t "$lab_dir/hosts" >&2
    echo "ready $lab_id"
    # In the background, so a signal runs the trap at once rather than after the sleep.
    while :; do sleep 3600 & wait $!; done
    ;;
smoke)
    build_keel
    trap lab_down EXIT
    trap 'exit 130' INT TERM
    lab_create
    id=$lab_id
    smoke
    lab_down
    leftovers=$(lab_leftovers "$id")
    if [ -n "$leftovers" ]; then
        echo "left behind after teardown:" >&2
        echo "$leftovers" >&2
        exit 1
    fi
    echo "reads 2 hosts / 1 host: ${smoke_ratio}×"
    awk -v r="$smoke_ratio" 'BEGIN { exit !(r >= 1.6) }' || { echo "below 1.6×" >&2; exit 1; }
    ;;
failover)
    build_keel
    trap lab_down EXIT
    trap 'exit 130' INT TERM
    lab_create
    failover_run
    ;;
exec)
    shift
    attach
    lab_exec "$@"
    ;;
hosts)
    attach
    column -t "$lab_dir/hosts"
    ;;
clean)
    lab_clean
    ;;
partition)
    attach
    nemesis_partition "${2//,/ }" "${3//,/ }" "${4:-30}"
    ;;
blackhole)
    attach
    nemesis_blackhole "$2" "$3" "${4:-30}"
    ;;
loss)
    attach
    nemesis_loss "$2" "$3" "$4" "${5:-30}"
    ;;
slow)
    attach
    nemesis_slow "$2" "$3" "${4:-30}"
    ;;
heal)
    attach
    nemesis_heal "${2:-}"
    ;;
*)
    sed -n '2,37p' "$0" >&2
    exit 2
    ;;
esac
