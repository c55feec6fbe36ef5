#!/usr/bin/env bash
# Runs three NATS servers with JetStream as one cluster, in the foreground (Ctrl-C stops all).
#   scripts/nats-cluster.sh DIR HOST PORT   e.g. scripts/nats-cluster.sh /var/lib/keel/nats 127.0.0.1 4232
# Clients connect to PORT, PORT+1 and PORT+2 (KEEL_NATS_URL takes all three, comma-separated);
# the servers route to each other on PORT+100.. and keep their streams under DIR/n0.., where
# Keel's streams get three copies (one node may go without losing or stopping them).
#
# Durability: JetStream acknowledges a publish once a majority of the stream's copies hold it,
# and, as configured by default, writes it to disk lazily (flushed within two minutes). A node
# that crashes loses nothing the others hold; losing power on a majority at once can lose
# acknowledged messages (Jepsen's analysis of NATS 2.12.1, 2025-12: 14 % after a coordinated
# power failure). Keel does not rely on the broker for that: PostgreSQL holds every order's
# state and every event (the event log), the worker's sweep re-drives an order no message
# moved, and the read models reconcile from the log (docs/reliability.md, "The broker").
set -euo pipefail
dir=$1 host=$2 port=$3
routes=""
for n in 0 1 2; do
    routes="$routes${routes:+,}nats://$host:$((port + 100 + n))"
done
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT INT TERM
for n in 0 1 2; do
    mkdir -p "$dir/n$n"
    nats-server -a "$host" -p $((port + n)) -js -sd "$dir/n$n" --server_name "keel-$n" \
        --cluster_name keel --cluster "nats://$host:$((port + 100 + n))" --routes "$routes" &
done
# Until every one has exited: one that dies (killed to try a failover) leaves the others
# running; scripts/ha.sh restarts it.
wait
