#!/usr/bin/env bash
# Tests of the fleet lab's own pieces, the ones that can fail: hosts that find each other by
# name (their subnet only inside the lab), a CPU quota that holds a busy loop to
# its share, and a lab that leaves nothing behind — after a normal exit, after a failure,
# and after its script is killed with SIGKILL. Run as root from anywhere; scripts/test.sh
# runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
command -v ip >/dev/null 2>&1 || apt_install iproute2
source scripts/fleet/lib.sh

failures=0
pass() { printf 'fleet test %-52s ok\n' "$1"; }
fail() { printf 'fleet test %-52s FAILED: %s\n' "$1" "$2"; failures=$((failures + 1)); }

# wait_gone ID SECONDS: waits until nothing of lab ID is left; prints what is, if anything.
wait_gone() {
    for _ in $(seq $(($2 * 5))); do
        [ -z "$(lab_leftovers "$1")" ] && return 0
        sleep 0.2
    done
    lab_leftovers "$1"
    return 1
}

# In a lab of its own, in a subshell, so its EXIT trap is the lab's.
(
    trap lab_down EXIT
    lab_create
    lab_host a 0.3 128M
    lab_host b 0.5 128M 20mbit
    echo "$lab_id" >"${TMPDIR:-/tmp}/keel-fleet-test-id"

    name="a host finds another by name and reaches it"
    lab_run b python3 -m http.server --bind "$(lab_addr b)" 8000
    lab_wait_tcp a b 8000 10 >/dev/null 2>&1 || true
    if [ "$(lab_exec a getent hosts b | awk '{print $1}')" != "$(lab_addr b)" ]; then
        fail "$name" "b resolves to '$(lab_exec a getent hosts b)', not $(lab_addr b)"
    elif [ "$(lab_exec a curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://b:8000/)" != 200 ]; then
        fail "$name" "no answer from http://b:8000/"
    else
        pass "$name"
    fi

    name="the lab's subnet exists only inside its namespaces"
    # Checked without sending a packet: an address the machine's own namespace does not
    # hold could belong to someone else's network.
    if ip -o addr show | grep -q " $fleet_subnet\." || ip -o link show | grep -q 'v-a@'; then
        fail "$name" "the machine's own namespace has a lab address or link: $(ip -o addr show | grep " $fleet_subnet\.")"
    else
        pass "$name"
    fi

    name="a busy loop gets its host's CPU share, not more"
    before=$(lab_cpu_seconds a)
    lab_exec a timeout 3 bash -c 'while :; do :; done' || true
    used=$(awk -v a="$before" -v b="$(lab_cpu_seconds a)" 'BEGIN { printf "%.2f", (b - a) / 3 }')
    # 0.3 of a core asked; a busy loop unconstrained would take a whole one.
    if awk -v u="$used" 'BEGIN { exit !(u >= 0.2 && u <= 0.33) }'; then
        pass "$name (${used} of a core at a quota of 0.3)"
    else
        fail "$name" "used ${used} of a core at a quota of 0.3"
    fi

    name="a bandwidth cap holds a host's link to its rate"
    lab_exec b bash -c "head -c 5000000 /dev/zero > /tmp/keel-fleet-blob-$lab_id"
    lab_run b python3 -m http.server --bind "$(lab_addr b)" --directory /tmp 8001
    lab_wait_tcp a b 8001 10 >/dev/null 2>&1 || true
    speed=$(lab_exec a curl -s -o /dev/null -w '%{speed_download}' --max-time 10 "http://b:8001/keel-fleet-blob-$lab_id")
    rm -f "/tmp/keel-fleet-blob-$lab_id"
    # 20 Mbit/s is 2.5 MB/s; unshaped, a veth moves hundreds of MB/s.
    if awk -v s="$speed" 'BEGIN { exit !(s > 1.5e6 && s < 2.8e6) }'; then
        pass "$name ($(awk -v s="$speed" 'BEGIN { printf "%.1f", s * 8 / 1e6 }') Mbit/s at a cap of 20)"
    else
        fail "$name" "downloaded at $speed bytes/s through a 20mbit cap"
    fi
    exit "$failures"
) || failures=$?
id=$(cat "${TMPDIR:-/tmp}/keel-fleet-test-id")
name="a lab leaves nothing behind when its script exits"
if left=$(wait_gone "$id" 5); then pass "$name"; else fail "$name" "$left"; fi

name="a lab leaves nothing behind when its script fails"
err=$(mktemp)
scripts/fleet.sh up no-such-topology >/dev/null 2>"$err" && status=0 || status=$?
id=$(sed -n 's/.*\[fleet \([0-9a-f]*\)\] lab .*/\1/p' "$err" | head -n 1)
if [ "$status" = 0 ] || [ -z "$id" ]; then
    fail "$name" "exit $status, lab '${id}': $(tail -n 3 "$err")"
elif left=$(wait_gone "$id" 5); then
    pass "$name"
else
    fail "$name" "$left"
fi

name="a lab leaves nothing behind when its script is killed (SIGKILL)"
ready=$(mktemp)
FLEET_APIS=1 setsid scripts/fleet.sh up reads >"$ready" 2>"$err" &
owner=$!
for _ in $(seq 600); do grep -q '^ready' "$ready" && break; kill -0 "$owner" 2>/dev/null || break; sleep 0.2; done
id=$(awk '/^ready/ { print $2 }' "$ready")
if [ -z "$id" ]; then
    fail "$name" "the lab did not come up: $(tail -n 5 "$err")"
    kill -9 -- -"$owner" 2>/dev/null || true
else
    running=$(cat /sys/fs/cgroup/cpu/keel-fleet/"$id"/*/cgroup.procs | wc -l)
    # The script and everything of its process group, at once: no trap runs.
    kill -9 -- -"$owner"
    if left=$(wait_gone "$id" 30); then
        pass "$name ($running processes were running)"
    else
        fail "$name" "$left"
    fi
fi
rm -f "$ready" "$err"

echo "fleet tests: $failures failed"
[ "$failures" = 0 ]
