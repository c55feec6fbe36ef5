#!/usr/bin/env bash
# Runs a Redis master, its replica and three Sentinels watching them, in the foreground
# (Ctrl-C stops all): the Redis of Keel's HA topology.
#   scripts/redis-ha.sh DIR HOST PORT   e.g. scripts/redis-ha.sh /var/lib/keel/redis 127.0.0.1 6380
# The master listens on PORT, the replica on PORT+1, the Sentinels on PORT+20000..+20002
# (KEEL_REDIS_SENTINELS takes all three; they know the master as `keel`). Both servers keep
# an append-only file flushed every second under DIR, so sessions survive a restart as well
# as a failover; a Sentinel declares the master down after 1 s and fails over.
set -euo pipefail
dir=$1 host=$2 port=$3
mkdir -p "$dir/master" "$dir/replica"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT INT TERM
persist=(--save "" --appendonly yes --appendfsync everysec --bind "$host")
redis-server --port "$port" --dir "$dir/master" "${persist[@]}" &
redis-server --port $((port + 1)) --dir "$dir/replica" "${persist[@]}" --replicaof "$host" "$port" &
for n in 0 1 2; do
    sentinel_port=$((port + 20000 + n))
    # A Sentinel rewrites its own file with what it learns: written afresh only the first time.
    conf="$dir/sentinel-$n.conf"
    [ -f "$conf" ] || printf '%s\n' "port $sentinel_port" "bind $host" \
        "sentinel monitor keel $host $port 2" \
        "sentinel down-after-milliseconds keel 1000" \
        "sentinel failover-timeout keel 5000" >"$conf"
    redis-server "$conf" --sentinel &
done
# Until every one has exited: one that dies (killed to try a failover) leaves the others
# running; scripts/ha.sh restarts it.
wait
