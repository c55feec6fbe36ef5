#!/usr/bin/env bash
# Scale-out in the fleet lab (docs/benchmarks.md, "The fleet"): Keel on simulated hosts,
# every API host at the same CPU share, the balancer and the load generator on hosts of
# their own with their CPU shown beside each row.
#   scripts/bench-fleet.sh [reads] [uncached] [orders] [elastic] [latency]   (all by default)
#     reads     cached product reads (L1 hits) through nginx to 1, 2, 4 and 8 API hosts, each
#               row cross-checked: `keel bench run` against oha at the same constant rate
#     uncached  uncached product reads (KEEL_CACHE=off) with 0, 1 and 2 read replicas
#     orders    keyed orders placed → confirmed with 1, 2 and 4 worker hosts, the primary's
#               CPU, WAL flushes and lock waits beside each row
#     elastic   an API host added under steady load, later one drained
#     latency   the seeds' latency claims with a network between the hosts
# Writes Markdown to stdout and the charts' data and SVGs to CHARTS (docs/bench).
#   FLEET_SECONDS=10 (each closed-loop measurement), FLEET_BENCH_SECONDS=10 (each open-loop)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the fleet lab makes namespaces and cgroups: run it as root" >&2; exit 1; }
source scripts/setup.sh
source scripts/bench/lib.sh
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v oha >/dev/null 2>&1 || { log "installing oha"; cargo install oha --locked; }
cargo build --release --locked --bin keel
source scripts/fleet/lib.sh
source scripts/fleet/services.sh
source scripts/fleet/topology.sh
source scripts/fleet/measure.sh
source scripts/fleet/scale.sh

charts=${CHARTS:-docs/bench}
mkdir -p "$charts"
seconds=${FLEET_SECONDS:-10}
sections=("$@")
[ "${#sections[@]}" -gt 0 ] || sections=(reads uncached orders elastic latency)

cat <<MD
Machine: $(machine). Every host a network namespace on one bridge with a CPU quota
(cgroup v1, CFS period ${fleet_cfs_period_us} µs) and a memory limit; \`scripts/bench-fleet.sh ${sections[*]}\`, $(date -u +%Y-%m-%dT%H:%MZ).

MD
status=0
for section in "${sections[@]}"; do
    # Each section in a lab of its own, torn down before the next one starts. Run as a job
    # and waited for: a subshell on the left of `||` would run with `set -e` switched off.
    (
        trap lab_down EXIT
        trap 'exit 130' INT TERM
        lab_create
        "scale_$section"
    ) &
    wait $! || status=$?
done
# The charts: throughput against hosts beside N times the first point, for what was run.
if [ -f "$charts/fleet-reads.json" ]; then
    "$keel_bin" bench scaling-chart --title "Cached product reads through nginx, API hosts at ${FLEET_API_CPU:-0.05} core each" \
        --x-label "API hosts" --y-label "reads/s" --output "$charts/fleet-reads.svg" "$charts/fleet-reads.json"
fi
if [ -f "$charts/fleet-uncached.json" ]; then
    "$keel_bin" bench scaling-chart --title "Uncached product reads against read replicas" \
        --x-label "read replicas" --y-label "reads/s" --output "$charts/fleet-uncached.svg" "$charts/fleet-uncached.json"
fi
if [ -f "$charts/fleet-orders.json" ]; then
    "$keel_bin" bench scaling-chart --title "Orders confirmed against worker hosts (the primary at 0.5 core)" \
        --x-label "worker hosts" --y-label "orders confirmed/s" --output "$charts/fleet-orders.svg" "$charts/fleet-orders.json"
fi
exit "$status"
