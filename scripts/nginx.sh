#!/usr/bin/env bash
# Runs nginx in the foreground from deploy/nginx.conf, in front of the given Keel instances.
#   scripts/nginx.sh DIR LISTEN INSTANCE...   e.g. scripts/nginx.sh /tmp/lb 127.0.0.1:8080 127.0.0.1:8081 127.0.0.1:8082
# DIR holds the rendered configuration, the pid file and nginx's temporary files.
# NGINX_DIRECTIVES adds top-level directives (the load-balancer test runs one process:
# `master_process off;`). NGINX_UPSTREAM_IDLE (default 20s) is how long an idle connection to
# an instance is kept: below KEEL_HEADER_TIMEOUT always, and below KEEL_SHUTDOWN_DELAY for
# restarts that fail no request. NGINX_BALANCE chooses how requests are spread: least-conn
# (the default), round-robin, ip-hash, or weighted (round-robin by NGINX_WEIGHTS, one
# weight per instance, e.g. 3,1).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 listen=$2
shift 2
case "${NGINX_BALANCE:-least-conn}" in
    least-conn) balance="        least_conn;" ;;
    round-robin | weighted) balance="" ;;
    ip-hash) balance="        ip_hash;" ;;
    *) echo "NGINX_BALANCE must be least-conn, round-robin, ip-hash or weighted" >&2; exit 2 ;;
esac
IFS=, read -r -a weights <<<"${NGINX_WEIGHTS:-}"
upstreams="" n=0
for instance in "$@"; do
    weight=""
    if [ "${NGINX_BALANCE:-}" = weighted ]; then weight=" weight=${weights[$n]:-1}"; fi
    upstreams="$upstreams${upstreams:+\\n}        server $instance$weight max_fails=1 fail_timeout=5s;"
    n=$((n + 1))
done
mkdir -p "$dir/tmp"
sed -e "s/__LISTEN__/$listen/" -e "s/^__UPSTREAMS__\$/$upstreams/" -e "s/^__BALANCE__\$/$balance/" \
    -e "s/__UPSTREAM_IDLE__/${NGINX_UPSTREAM_IDLE:-20s}/" deploy/nginx.conf >"$dir/nginx.conf"
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
# NGINX_RELOAD=1 tells the nginx already running from DIR to load the configuration just
# rendered (new instances, same address): its old workers finish what they hold.
[ -n "${NGINX_RELOAD:-}" ] && exec "$nginx" -p "$dir" -e stderr -c "$dir/nginx.conf" -s reload
# NGINX_TEST=1 checks the rendered configuration (`nginx -t`) instead of running it.
exec "$nginx" ${NGINX_TEST:+-t} -p "$dir" -e stderr -c "$dir/nginx.conf" -g "daemon off; ${NGINX_DIRECTIVES:-}"
