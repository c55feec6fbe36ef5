#!/usr/bin/env bash
# A PostgreSQL primary that fails over: a pg_auto_failover formation of a monitor and two
# nodes (one primary, one synchronous standby) on HOST (default 127.0.0.1).
#
#   scripts/pg-ha.sh up DIR PORT [HOST]   creates the formation in DIR the first time (monitor
#                                         on PORT, nodes on PORT+1 and PORT+2, a `keel` role
#                                         and database), runs it until stopped, then stops
#                                         every process it started, restarted nodes included
#   scripts/pg-ha.sh kill DIR NODE        SIGKILLs node1 or node2 whole (its keeper and its
#                                         PostgreSQL): a lost host, not a crashed process
#   scripts/pg-ha.sh start DIR NODE       runs a killed node again; it rejoins as a standby
#   scripts/pg-ha.sh state DIR            the monitor's view of the nodes
#   scripts/pg-ha.sh url DIR [USER] [DB]  the multi-host URL that follows the primary
#   scripts/pg-ha.sh tune HOST PORT       the failover timings below, on a monitor of one's
#                                         own (the fleet lab's); `partition-timeout` prints
#                                         the keepers' setting
#
# A client follows a promotion with that URL: `target_session_attrs=read-write` makes each
# new connection try the nodes in turn and keep the one that takes writes.
#
# Failover timing (the monitor's health checks and the keepers' partition timeout) is tuned
# for loopback and a lab network: a dead primary is found in about 3 s and the standby is
# promoted once the old primary has had time to demote itself if it is alive but cut off
# (its keeper does after PGHA_PARTITION_TIMEOUT seconds with neither monitor nor standby);
# PGHA_DEMOTE_TIMEOUT_MS must stay above that.
set -euo pipefail

partition_timeout() { echo "${PGHA_PARTITION_TIMEOUT:-2}"; }
demote_timeout_ms="${PGHA_DEMOTE_TIMEOUT_MS:-4000}"
unhealthy_ms="${PGHA_UNHEALTHY_MS:-3000}"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "PostgreSQL's server binaries are not installed (apt-get install postgresql)" >&2; exit 1; }
if ! command -v pg_autoctl >/dev/null 2>&1; then
    version=$(basename "$(dirname "$bin")")
    echo "installing pg_auto_failover (postgresql-$version-auto-failover)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$version-auto-failover" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$version-auto-failover" >/dev/null; }
fi

log() { printf '\033[1m[pg-ha] %s\033[0m\n' "$*" >&2; }

# autoctl DIR ARGS...: pg_autoctl as the postgres user, its configuration and state in DIR.
autoctl() {
    local dir=$1
    shift
    local run=(env PATH="$bin:$PATH" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/share" pg_autoctl "$@")
    if [ "$(id -un)" = postgres ]; then "${run[@]}"; else runuser -u postgres -- "${run[@]}"; fi
}

# run DIR PART: starts PART's pg_autoctl (and so its PostgreSQL) in a session of its own,
# whose id is kept in DIR/PART.sid so that `kill` and the exit of `up` find every process.
run() {
    local dir=$1 part=$2
    setsid bash -c 'echo $$ > "$1"; shift; exec "$@"' _ "$dir/$part.sid" \
        "$0" autoctl "$dir" run --pgdata "$dir/$part" >>"$dir/$part.log" 2>&1 </dev/null &
    for _ in $(seq 50); do [ -s "$dir/$part.sid" ] && break; sleep 0.1; done
}

# stop DIR PART: SIGTERM to PART's pg_autoctl, which stops its PostgreSQL in fast mode (a
# SIGTERM to PostgreSQL itself would wait for its clients); SIGKILL to what is left after 10 s.
stop() {
    local dir=$1 part=$2 sid
    [ -s "$dir/$part.sid" ] || return 0
    sid=$(cat "$dir/$part.sid")
    pkill -TERM -s "$sid" pg_autoctl 2>/dev/null || true
    for _ in $(seq 100); do pgrep -s "$sid" >/dev/null || break; sleep 0.1; done
    pkill -KILL -s "$sid" 2>/dev/null || true
    rm -f "$dir/$part.sid"
}

monitor_url() { echo "postgres://autoctl_node@$2:$1/pg_auto_failover?sslmode=disable"; }

port_of() { sed -n 's/^port = \([0-9]*\)/\1/p' "$1/$2/postgresql-auto-failover.conf" 2>/dev/null | head -1; }

host_of() { cat "$1/host"; }

up() {
    local dir=$1 port=$2 host=${3:-127.0.0.1}
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    echo "$host" >"$dir/host"
    trap 'log "stopping the formation in $dir"; for p in node1 node2 monitor; do stop "$dir" "$p"; done' EXIT
    trap 'exit 143' INT TERM
    if [ ! -f "$dir/monitor/PG_VERSION" ]; then
        log "creating the monitor on $host:$port"
        autoctl "$dir" create monitor --pgdata "$dir/monitor" --pgport "$port" --hostname "$host" \
            --auth trust --no-ssl >>"$dir/create.log" 2>&1
        autoctl "$dir" config set --pgdata "$dir/monitor" postgresql.listen_addresses "$host" >/dev/null
    fi
    run "$dir" monitor
    tune "$host" "$port"
    for n in 1 2; do
        if [ ! -f "$dir/node$n/PG_VERSION" ]; then
            log "creating node$n on $host:$((port + n))"
            # One at a time: the second is made a standby of the first by pg_basebackup.
            autoctl "$dir" create postgres --pgdata "$dir/node$n" --pgport $((port + n)) \
                --listen "$host" --hostname "$host" --name "node$n" --dbname keel \
                --monitor "$(monitor_url "$port" "$host")" --auth trust --no-ssl >>"$dir/create.log" 2>&1
            autoctl "$dir" config set --pgdata "$dir/node$n" timeout.network_partition_timeout "$(partition_timeout)" >/dev/null
        fi
        run "$dir" "node$n"
        [ "$n" = 1 ] && wait_for_state "$dir" "read-write" 1
    done
    wait_for_state "$dir" "read-only" 1
    local primary
    primary=$(primary_port "$dir")
    "$bin/psql" -h "$host" -p "$primary" -U postgres -d keel -qAt -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keel') THEN
            CREATE ROLE keel LOGIN CREATEDB PASSWORD 'keel';
        END IF; END \$\$" -c "ALTER DATABASE keel OWNER TO keel" -c "GRANT pg_read_all_stats TO keel" >/dev/null
    log "formation up: monitor $host:$port, primary on :$primary; clients use $(url "$dir")"
    while true; do sleep 1; done
}

# tune HOST PORT: the failover timings above, on the monitor at HOST:PORT once it answers.
tune() {
    local host=$1 port=$2
    for _ in $(seq 100); do "$bin/pg_isready" -q -h "$host" -p "$port" && break; sleep 0.1; done
    "$bin/psql" -h "$host" -p "$port" -U postgres -d pg_auto_failover -qAt \
        -c "ALTER SYSTEM SET pgautofailover.health_check_period = 1000" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500" \
        -c "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = $unhealthy_ms" \
        -c "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = $demote_timeout_ms" \
        -c "SELECT pg_reload_conf()" >/dev/null
}

# wait_for_state DIR CONNECTION COUNT: until COUNT nodes report CONNECTION (read-write,
# read-only) in `pg_autoctl show state` (60 s at most).
wait_for_state() {
    local dir=$1 connection=$2 count=$3
    for _ in $(seq 600); do
        [ "$(state "$dir" 2>/dev/null | grep -c " $connection |")" -ge "$count" ] && return
        sleep 0.1
    done
    echo "the formation in $dir has no $connection node after 60 s" >&2
    state "$dir" >&2 || true
    exit 1
}

state() { autoctl "$1" show state --pgdata "$1/monitor"; }

# The port of the node that takes writes: read-write and reachable (an unreachable node the
# monitor last saw as primary is listed `read-write !`).
primary_port() { state "$1" | awk -F'|' '$5 ~ /^ *read-write *$/ { split($3, a, ":"); gsub(/ /, "", a[2]); print a[2] }'; }

url() {
    local dir=$1 user=${2:-keel} db=${3:-keel} host
    host=$(host_of "$dir")
    echo "postgres://$user:$user@$host:$(port_of "$dir" node1),$host:$(port_of "$dir" node2)/$db?target_session_attrs=read-write"
}

case "${1:-}" in
up) up "$2" "$3" "${4:-}" ;;
tune) tune "$2" "$3" ;;
partition-timeout) partition_timeout ;;
kill)
    sid=$(cat "$2/$3.sid")
    pkill -KILL -s "$sid"
    rm -f "$2/$3.sid"
    ;;
start) run "$2" "$3" ;;
state) state "$2" ;;
primary) primary_port "$2" ;;
url) url "$2" "${3:-keel}" "${4:-keel}" ;;
autoctl) shift; autoctl "$@" ;;
*)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
