#!/bin/sh
# Runs once, when the primary's data directory is created: a role for the replica's
# streaming, and a pg_hba line that lets it in from the compose network.
set -e
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator'"
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
