#!/usr/bin/env bash
# The load-test lab (docs/benchmarks.md), in one run against one `keel serve` (layered cache,
# rate limiting off) and one worker: `keel bench run` cross-checked against
# `oha --latency-correction` on the same request shape at the same constant rate (product
# pages, random ids); then the highest browse rate whose p99 stays under the SLO
# (`--find-max`), the highest checkout rate (log in, order, read back) under a looser SLO,
# and a flash sale. Charts of latency over time go to CHARTS (docs/bench).
#   DURATION=15 RATE=2000 SLO=50 CHECKOUT_SLO=500
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/bench/lib.sh
bench_setup

rate=${RATE:-2000} slo=${SLO:-50} checkout_slo=${CHECKOUT_SLO:-500}
charts=${CHARTS:-docs/bench}
mkdir -p "$charts"
export KEEL_RATE_LIMIT_OFF=true KEEL_CACHE=layered
worker_pid=""
trap 'kill $keel_pid $worker_pid 2>/dev/null || true' EXIT
start_keel
KEEL_WORKER_LISTEN=127.0.0.1:19091 ./target/release/keel worker 2>>"$out/worker.log" &
worker_pid=$!
url=http://127.0.0.1:18080
lab() { client ./target/release/keel bench run --url "$url" "$@"; }
d="${duration}s"

log "warm-up, then product pages at $rate/s: keel bench run, then oha --latency-correction"
lab --scenario pages --rate "$rate" --duration 5s --products 9999 >/dev/null
lab --scenario pages --rate "$rate" --duration "$d" --products 9999 --json "$out/pages.json" >"$out/pages.txt"
# oha draws each URL from the pattern (ids 1–9999, as --products 9999 does).
read -r oha_p50 oha_p99 oha_ok < <(run_oha pages "$rate" "$url/products/[1-9][0-9]{0,3}" --rand-regex-url)
read -r lab_p50 lab_p99 late_p50 late_p99 < <(python3 - "$out/pages.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, late = r["operations"]["GET /products/{id}"], r["sent_late"]
print(f"{s['p50_ms']:.2f}ms {s['p99_ms']:.2f}ms {late['p50_ms']:.2f}ms {late['p99_ms']:.2f}ms")
PY
)

log "browse: the highest rate with p99 <= $slo ms and no errors"
lab --scenario browse --find-max --slo "$slo" --rate 1000 --duration 10s --users 64 --products 9999 \
    --json "$charts/lab-browse.json" >"$out/find-max.txt"
log "checkout: the highest rate with p99 <= $checkout_slo ms; flash sale of 100 units at 500/s"
lab --scenario checkout --find-max --slo "$checkout_slo" --rate 10 --duration 10s --users 64 \
    --products 9999 --json "$charts/lab-checkout.json" >"$out/checkout.txt"
lab --scenario flash-sale --rate 500 --duration 5s --units 100 --users 64 >"$out/flash-sale.txt"

cat <<MD
Machine: $(machine); the load generator, Keel, one worker, PostgreSQL and Redis on the same machine.
Run: \`scripts/bench-lab.sh\` (DURATION=$duration s, RATE=$rate, SLO=$slo ms; load generators as SCHED_BATCH), $(date -u +%Y-%m-%dT%H:%MZ).

Product pages at a constant $rate/s, the same random ids, latency corrected for coordinated omission:

| Load generator | p50 | p99 | its own lateness (p50 / p99) |
| --- | ---: | ---: | ---: |
| \`keel bench run --scenario pages\` | $lab_p50 | $lab_p99 | $late_p50 / $late_p99 (reported apart) |
| \`oha --latency-correction\` | $oha_p50 | $oha_p99 (2xx $oha_ok) | not reported (excluded) |

\`\`\`
$(cat "$out/pages.txt")
\`\`\`

\`keel bench run --scenario browse --find-max --slo $slo\`:

\`\`\`
$(cat "$out/find-max.txt")
\`\`\`

\`keel bench run --scenario checkout --find-max --slo $checkout_slo --rate 10\`:

\`\`\`
$(cat "$out/checkout.txt")
\`\`\`

\`keel bench run --scenario flash-sale --rate 500 --duration 5s --units 100\`:

\`\`\`
$(cat "$out/flash-sale.txt")
\`\`\`
MD
