#!/usr/bin/env bash
# Makes sure what Keel needs is installed and running on this Debian/Ubuntu machine:
# a Rust toolchain, PostgreSQL, Redis and NATS (JetStream), and a `keel` database role that may create
# databases. Safe to run again: it only installs or starts what is missing.
set -euo pipefail

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Rust: Keel needs a current stable toolchain (edition 2024), which Debian's cargo is not.
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
        log "installing Rust with rustup"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cc >/dev/null 2>&1 || apt_install build-essential

# PostgreSQL.
command -v pg_isready >/dev/null 2>&1 || apt_install postgresql postgresql-contrib
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql postgresql-contrib
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# A role of Keel's own, so nothing depends on how the superuser authenticates.
superuser_psql() {
    if psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
        psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"
    else
        as_root runuser -u postgres -- psql -d postgres -v ON_ERROR_STOP=1 -Atq "$@"
    fi
}
if ! PGPASSWORD=keel psql -h 127.0.0.1 -U keel -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    log "creating the keel database role"
    superuser_psql -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keel') THEN
            CREATE ROLE keel LOGIN CREATEDB PASSWORD 'keel';
        ELSE
            ALTER ROLE keel LOGIN CREATEDB PASSWORD 'keel';
        END IF; END \$\$;"
fi

# pg_stat_statements, which `keel diagnose` reads: preloaded (PostgreSQL restarts once for
# it) and created in template1, so every database made afterwards (the tests' too) has it.
preloaded=$(superuser_psql -c "SHOW shared_preload_libraries")
if [[ "$preloaded" != *pg_stat_statements* ]]; then
    log "enabling pg_stat_statements (restarts PostgreSQL once)"
    superuser_psql -c "ALTER SYSTEM SET shared_preload_libraries = '${preloaded:+$preloaded,}pg_stat_statements'"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main restart \
        || log "could not restart PostgreSQL: keel diagnose will sample sessions instead"
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
for db in template1 postgres keel; do
    if [ "$(superuser_psql -c "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 1 ]; then
        superuser_psql -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || true
    fi
done
PGOPTIONS="-c client_min_messages=warning" superuser_psql -c "GRANT pg_read_all_stats TO keel" >/dev/null

# Redis.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --logfile /tmp/keel-redis.log
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# NATS with JetStream (the event bus), keeping its streams on disk.
command -v nats-server >/dev/null 2>&1 || apt_install nats-server
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    log "starting NATS with JetStream"
    mkdir -p /tmp/keel-nats
    nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/keel-nats >/tmp/keel-nats.log 2>&1 &
    for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.2; done
fi

# nginx, the load balancer in front of several API instances (scripts/run.sh with
# KEEL_INSTANCES, the load-balancer test). Each use starts its own from deploy/nginx.conf;
# Debian's package may start its default site on port 80, which Keel does not use.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || apt_install nginx

# PgBouncer, the transaction-mode pooler in front of the primary (scripts/pgbouncer.sh,
# KEEL_PGBOUNCER=1 scripts/run.sh, the tests' PgBouncer pass). Each use starts its own.
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || apt_install pgbouncer

# pg_auto_failover, the monitor and keepers of a primary that fails over (scripts/pg-ha.sh,
# KEEL_TOPOLOGY=ha scripts/run.sh, the failover tests). Each use starts its own formation.
if ! command -v pg_autoctl >/dev/null 2>&1; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    apt_install "postgresql-$version-auto-failover"
fi
