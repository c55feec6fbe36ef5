#!/usr/bin/env bash
# A client of the lab, run on its load generator's host: places orders through the balancer
# one after another for SECONDS, each with an Idempotency-Key, sending a failed one again
# with its key every 200 ms (as a client of an idempotent API does).
#   scripts/fleet/orders.sh TOKEN SECONDS
# One line per acknowledged order: `FIRST_TRY ACKNOWLEDGED 202 ORDER_ID TRIES` (seconds since
# the epoch), one per failed try: `AT fail STATUS SECONDS` (how long that try took).
set -uo pipefail
token=$1 end=$(($(date +%s) + $2))
while [ "$(date +%s)" -lt "$end" ]; do
    key=$(cat /proc/sys/kernel/random/uuid) first=$(date +%s.%N) product=$((RANDOM % 9000 + 1))
    for try in $(seq 300); do
        out=$(curl -s -m 15 -w " %{time_total} %{http_code}" http://lb:8080/orders -H "authorization: Bearer $token" \
            -H 'content-type: application/json' -H "Idempotency-Key: $key" \
            -d "{\"lines\":[{\"product_id\":$product,\"quantity\":1}]}")
        code=${out##* }
        if [ "$code" = 202 ]; then
            id=$(grep -o '"id":[0-9]*' <<<"$out" | head -1 | cut -d: -f2)
            echo "$first $(date +%s.%N) 202 $id $try"
            break
        fi
        took=${out% *}
        echo "$(date +%s.%N) fail $code ${took##* }"
        sleep 0.2
    done
done
