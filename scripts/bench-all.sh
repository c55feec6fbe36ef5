#!/usr/bin/env bash
# Every benchmark in docs/benchmarks.md, in one sitting on one machine, one after another
# (each alone on the cores): each script's markdown goes to OUT/<script>.md and its log to
# OUT/<script>.log. A script that fails is reported and the rest still run.
#   OUT=/tmp/keel-bench-all, ONLY="bench-lab bench" (a subset, in that order)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/keel-bench-all}
mkdir -p "$out"
# bench-fleet makes namespaces and cgroups: it runs when this script runs as root.
default="bench-lab bench-compare bench bench-orders bench-replicas bench-lb bench-lb-strategies bench-pgbouncer"
[ "$(id -u)" = 0 ] && default="$default bench-fleet"
scripts=${ONLY:-$default}
failed=""
for s in $scripts; do
    printf '\033[1m==> %s (%s)\033[0m\n' "$s" "$(date -u +%H:%MZ)" >&2
    if ! "scripts/$s.sh" >"$out/$s.md" 2>"$out/$s.log"; then
        failed="$failed $s"
        printf 'failed: %s (see %s)\n' "$s" "$out/$s.log" >&2
    fi
done
printf 'done at %s; markdown in %s%s\n' "$(date -u +%H:%MZ)" "$out" "${failed:+; failed:$failed}" >&2
[ -z "$failed" ]
