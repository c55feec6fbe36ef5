#!/usr/bin/env bash
# Runs nginx in the foreground from deploy/nginx.conf, in front of the given Keel instances.
#   scripts/nginx.sh DIR LISTEN INSTANCE...   e.g. scripts/nginx.sh /tmp/lb 127.0.0.1:8080 127.0.0.1:8081 127.0.0.1:8082
# DIR holds the rendered configuration, the pid file and nginx's temporary files.
# NGINX_DIRECTIVES adds top-level directives (the load-balancer test runs one process:
# `master_process off;`). NGINX_UPSTREAM_IDLE (default 20s) is how long an idle connection to
# an instance is kept: below KEEL_HEADER_TIMEOUT always, and below KEEL_SHUTDOWN_DELAY for
# restarts that fail no request.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 listen=$2
shift 2
upstreams=""
for instance in "$@"; do
    upstreams="$upstreams${upstreams:+\\n}        server $instance max_fails=1 fail_timeout=5s;"
done
mkdir -p "$dir/tmp"
sed -e "s/__LISTEN__/$listen/" -e "s/^__UPSTREAMS__\$/$upstreams/" \
    -e "s/__UPSTREAM_IDLE__/${NGINX_UPSTREAM_IDLE:-20s}/" deploy/nginx.conf >"$dir/nginx.conf"
exec "$(command -v nginx || echo /usr/sbin/nginx)" -p "$dir" -e stderr -c "$dir/nginx.conf" -g "daemon off; ${NGINX_DIRECTIVES:-}"
