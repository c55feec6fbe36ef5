#!/usr/bin/env bash
# Faults by hand in the HA topology (`KEEL_TOPOLOGY=ha scripts/run.sh`, in another shell):
#
#   scripts/ha.sh list           every part, its port, and whether it runs
#   scripts/ha.sh kill PART      SIGKILL: a crash, or for pg-node1/pg-node2 the host lost
#                                (its keeper and its PostgreSQL)
#   scripts/ha.sh stop PART      SIGTERM: a clean stop
#   scripts/ha.sh restart PART   starts a killed or stopped part again, as it ran
#   scripts/ha.sh watch          says when a part goes down or comes back (run.sh runs it)
#
# PART is a name `list` shows (api-1, worker-1, nginx, provider, pgbouncer-1, pg-node1,
# pg-monitor, redis-6380, sentinel-0, nats-0, ...), or pg-primary / redis-master for
# whichever node is that now. Parts restarted here are stopped with the topology.
set -euo pipefail
cd "$(dirname "$0")/.."
ha_dir="${KEEL_HA_DIR:-/var/lib/keel/ha}"
parts="$ha_dir/parts"
saved="$ha_dir/saved"

log() { printf '\033[1m[ha] %s\033[0m\n' "$*" >&2; }

[ -f "$parts" ] || { echo "no HA topology runs here ($parts is missing): KEEL_TOPOLOGY=ha scripts/run.sh" >&2; exit 1; }

port_of() { awk -v n="$1" '$1 == n { print $2 }' "$parts"; }

# pid_on PORT: the process listening on 127.0.0.1:PORT (for nginx, its master).
pid_on() {
    local pids pid
    pids=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un)
    for pid in $pids; do
        # nginx's workers share the socket: the master is the one whose parent is not nginx.
        if [ "$(ps -o comm= -p "$(ps -o ppid= -p "$pid" | tr -d ' ')" 2>/dev/null)" != nginx ]; then
            echo "$pid"
            return
        fi
    done
}

# resolve PART: pg-primary and redis-master become the node that is that now.
resolve() {
    case "$1" in
    pg-primary)
        local port
        port=$(scripts/pg-ha.sh primary "$ha_dir/pg")
        awk -v p="$port" '$2 == p && $1 ~ /^pg-node/ { print $1 }' "$parts"
        ;;
    redis-master)
        local sentinel
        sentinel=$(port_of sentinel-0)
        echo "redis-$(redis-cli -p "$sentinel" sentinel get-master-addr-by-name keel | tail -1)"
        ;;
    *) echo "$1" ;;
    esac
}

list() {
    local name port state
    while read -r name port; do
        state=down
        [ -n "$(pid_on "$port")" ] && state=up
        case "$name" in
        pg-node*) [ "$state" = up ] && [ "$(scripts/pg-ha.sh primary "$ha_dir/pg" 2>/dev/null)" = "$port" ] && state="up (primary)" ;;
        redis-[0-9]*) [ "$state" = up ] && [ "$(resolve redis-master 2>/dev/null)" = "$name" ] && state="up (master)" ;;
        esac
        printf '%-14s :%-6s %s\n' "$name" "$port" "$state"
    done <"$parts"
}

# save NAME PID: how the process runs (arguments, environment, directory), to restart it.
save() {
    mkdir -p "$saved/$1"
    cat "/proc/$2/cmdline" >"$saved/$1/cmdline"
    cat "/proc/$2/environ" >"$saved/$1/environ"
    readlink "/proc/$2/cwd" >"$saved/$1/cwd"
}

signal() {
    local sig=$1 name port pid
    name=$(resolve "$2")
    port=$(port_of "$name")
    [ -n "$port" ] || { echo "no part named $2 (scripts/ha.sh list)" >&2; exit 2; }
    case "$name" in
    pg-node*)
        [ "$sig" = KILL ] || { echo "pg nodes are killed (their host lost): scripts/ha.sh kill $name" >&2; exit 2; }
        scripts/pg-ha.sh kill "$ha_dir/pg" "${name#pg-}"
        ;;
    pg-monitor)
        echo "the monitor runs with the formation; kill a node instead" >&2
        exit 2
        ;;
    *)
        pid=$(pid_on "$port")
        [ -n "$pid" ] || { echo "$name is not running" >&2; exit 1; }
        save "$name" "$pid"
        # nginx and Redis rewrite their process titles: their arguments are rebuilt below.
        [ "$name" = nginx ] && ps -o args= -p "$pid" | sed 's/^nginx: master process //' >"$saved/nginx/args"
        kill -"$sig" "$pid"
        ;;
    esac
    log "$name (:$port) sent SIG$sig; bring it back: scripts/ha.sh restart $name"
}

restart() {
    local name port pid
    name=$(resolve "$1")
    port=$(port_of "$name")
    [ -n "$port" ] || { echo "no part named $1 (scripts/ha.sh list)" >&2; exit 2; }
    [ -z "$(pid_on "$port")" ] || { echo "$name already runs" >&2; exit 1; }
    case "$name" in
    pg-node*)
        scripts/pg-ha.sh start "$ha_dir/pg" "${name#pg-}"
        log "$name started; it rejoins the formation as a standby"
        return
        ;;
    *)
        [ -d "$saved/$name" ] || { echo "$name was not stopped by scripts/ha.sh: nothing saved to restart it from" >&2; exit 1; }
        local argv=() environ=()
        mapfile -d '' argv <"$saved/$name/cmdline"
        mapfile -d '' environ <"$saved/$name/environ"
        case "$name" in
        nginx)
            # shellcheck disable=SC2207 # the master's own words, as it ran
            argv=($(sed 's/ -g daemon off;.*$//' "$saved/nginx/args")) && argv+=(-g 'daemon off;') ;;
        redis-*)
            # Back with its own data as a master; the Sentinels make it a replica of the
            # master they chose meanwhile.
            local role=replica
            [ "$name" = "$(awk '$1 ~ /^redis-[0-9]/ { print $1; exit }' "$parts")" ] && role=master
            argv=(redis-server --port "$port" --dir "$ha_dir/redis/$role" --save "" --appendonly yes
                --appendfsync everysec --bind 127.0.0.1) ;;
        sentinel-*) argv=(redis-server "$ha_dir/redis/$name.conf" --sentinel) ;;
        esac
        # nginx and Redis write their titles over their environment too: what is left of it
        # is no environment, and they run in this one.
        local kept=()
        for variable in "${environ[@]}"; do
            [[ "$variable" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && kept+=("$variable")
        done
        [ "${#kept[@]}" -gt 0 ] && kept=(-i "${kept[@]}")
        (cd "$(cat "$saved/$name/cwd")" && exec setsid env "${kept[@]}" "${argv[@]}") \
            >>"$ha_dir/restarted.log" 2>&1 </dev/null &
        ;;
    esac
    pid=$!
    echo "$pid" >>"$ha_dir/restarted.pids"
    for _ in $(seq 100); do [ -n "$(pid_on "$port")" ] && break; sleep 0.1; done
    log "$name (:$port) restarted (pid $pid)"
}

watch() {
    declare -A was
    local name port now
    while sleep 1; do
        while read -r name port; do
            now=down
            [ -n "$(pid_on "$port")" ] && now=up
            if [ -n "${was[$name]:-}" ] && [ "${was[$name]}" != "$now" ]; then
                if [ "$now" = down ]; then
                    log "$name (:$port) is down; the rest runs on. Bring it back: scripts/ha.sh restart $name"
                else
                    log "$name (:$port) is back"
                fi
            fi
            was[$name]=$now
        done <"$parts"
    done
}

case "${1:-}" in
list) list ;;
kill) signal KILL "$2" ;;
stop) signal TERM "$2" ;;
restart) restart "$2" ;;
watch) watch ;;
*)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
