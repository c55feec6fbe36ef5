#!/usr/bin/env bash
# PostgreSQL clusters for read replicas, from the installed PostgreSQL binaries:
#
#   scripts/replica.sh replica PRIMARY_PORT PORT DIR   a streaming replica of the primary on
#                                                      127.0.0.1:PRIMARY_PORT (pg_basebackup),
#                                                      started on 127.0.0.1:PORT
#   scripts/replica.sh primary PORT DIR                a fresh primary (initdb), trust auth on
#                                                      127.0.0.1, with a `keel` role (tests)
#   scripts/replica.sh start PORT DIR                  starts the stopped cluster in DIR again
#   scripts/replica.sh stop DIR                        stops the cluster in DIR (fast)
#   scripts/replica.sh trust-replication               lets the machine's own PostgreSQL
#                                                      (the one `psql` as postgres reaches)
#                                                      stream to replicas on 127.0.0.1
#
# The clusters run as the `postgres` user (PostgreSQL refuses root); DIR is created. The
# primary must accept replication connections from 127.0.0.1 as `postgres`: a primary made
# here does, and scripts/run.sh allows them on the machine's own primary.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "PostgreSQL's server binaries are not installed (apt-get install postgresql)" >&2; exit 1; }

# as_postgres CMD...: runs CMD as the postgres user (directly when already that user).
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

wait_ready() {
    for _ in $(seq 100); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" && return
        sleep 0.1
    done
    echo "PostgreSQL on port $1 did not start; see $2/server.log" >&2
    exit 1
}

start() {
    local port=$1 dir=$2
    as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
    wait_ready "$port" "$dir"
}

prepare_dir() {
    mkdir -p "$1"
    chown postgres:postgres "$1" 2>/dev/null || true
    chmod 700 "$1"
}

case "${1:-}" in
primary)
    port=$2 dir=$3
    prepare_dir "$dir"
    as_postgres "$bin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
    cat >>"$dir/postgresql.conf" <<CONF
wal_level = replica
max_wal_senders = 10
hot_standby = on
fsync = off
shared_preload_libraries = 'pg_stat_statements'
CONF
    cat >"$dir/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
HBA
    start "$port" "$dir"
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
        -c "CREATE ROLE keel LOGIN CREATEDB PASSWORD 'keel'" \
        -c "GRANT pg_read_all_stats TO keel" \
        -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    ;;
replica)
    primary=$2 port=$3 dir=$4
    prepare_dir "$dir"
    # -R writes standby.signal and the primary's connection: the copy starts as a streaming
    # replica. -X stream ships the WAL written during the copy too.
    as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" \
        -R -X stream -c fast --no-sync
    # A Debian-managed primary keeps its configuration in /etc, outside the copied data
    # directory: give the replica its own.
    if [ ! -f "$dir/postgresql.conf" ]; then
        as_postgres tee "$dir/postgresql.conf" >/dev/null <<CONF
hot_standby = on
max_connections = 200
shared_preload_libraries = 'pg_stat_statements'
CONF
        as_postgres tee "$dir/pg_hba.conf" >/dev/null <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
        as_postgres touch "$dir/pg_ident.conf"
    fi
    start "$port" "$dir"
    ;;
start)
    start "$2" "$3"
    ;;
trust-replication)
    hba=$(as_postgres psql -Atqc "SHOW hba_file")
    if ! grep -Eq '^host[[:space:]]+replication' "$hba"; then
        echo "host replication postgres 127.0.0.1/32 trust" >>"$hba"
        as_postgres psql -Atqc "SELECT pg_reload_conf()" >/dev/null
    fi
    ;;
stop)
    dir=$2
    as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
