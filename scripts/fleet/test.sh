#!/usr/bin/env bash
# Tests of the fleet lab's own pieces, the ones that can fail: hosts that find each other by
# name (their subnet only inside the lab), a CPU quota that holds a busy loop to
# its share, the nemesis's faults (a partition both ways that heals by itself, a one-way
# blackhole, a share of packets lost, a slowed link restored), and a lab that leaves nothing
# behind — after a normal exit, after a failure, and after its script is killed with
# SIGKILL. Run as root from anywhere; scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/setup.sh
command -v ip >/dev/null 2>&1 || apt_install iproute2
command -v iptables >/dev/null 2>&1 || apt_install iptables
command -v ping >/dev/null 2>&1 || apt_install iputils-ping
source scripts/fleet/lib.sh
source scripts/fleet/nemesis.sh

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
    lab_host c 0.2 64M
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

    # reaches FROM TO PORT: whether FROM gets an HTTP answer from TO within a second.
    reaches() { [ "$(lab_exec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$2:$3/")" = 200 ]; }
    lab_run a python3 -m http.server --bind "$(lab_addr a)" 8002
    lab_wait_tcp b a 8002 10 >/dev/null 2>&1 || true

    name="a partition cuts both ways, spares others, heals by itself"
    fault=$(nemesis_partition a b 3 2>/dev/null)
    if reaches a b 8000; then fail "$name" "a still reaches b"
    elif reaches b a 8002; then fail "$name" "b still reaches a"
    elif ! reaches c b 8000; then fail "$name" "c, outside the partition, no longer reaches b"
    else
        sleep 3.5
        if reaches a b 8000 && reaches b a 8002; then pass "$name (fault $fault)"
        else fail "$name" "not healed 3.5 s after a 3 s partition: $(cat "$lab_dir/nemesis" 2>/dev/null)"; fi
    fi

    name="a blackhole drops one way until healed"
    # The echo requests a host has received, from its namespace's ICMP counters.
    in_echos='/^Icmp:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "InEchos") c = i } else { print $c; exit } }'
    fault=$(nemesis_blackhole a b 0 2>/dev/null)
    # b's packets still reach a: a ping from b goes out, and a's reply is what is dropped, so
    # the one-way rule shows as an echo a receives (its counter) and b never hears back.
    before=$(ip netns exec "$(lab_ns a)" awk "$in_echos" /proc/net/snmp)
    lab_exec b ping -c 3 -i 0.2 -W 1 -q a >/dev/null 2>&1 && answered=yes || answered=no
    after=$(ip netns exec "$(lab_ns a)" awk "$in_echos" /proc/net/snmp)
    if reaches a b 8000; then fail "$name" "a still reaches b"
    elif [ "$answered" = yes ]; then fail "$name" "b heard a's echo replies"
    elif [ "$((after - before))" -lt 3 ]; then fail "$name" "a received $((after - before)) of b's 3 pings"
    elif ! reaches c b 8000; then fail "$name" "c no longer reaches b"
    else
        nemesis_heal "$fault" 2>/dev/null
        if reaches a b 8000; then pass "$name"; else fail "$name" "still cut after heal"; fi
    fi

    name="a lossy link drops its share of packets"
    fault=$(nemesis_loss a c 30 0 2>/dev/null)
    received=$(lab_exec a ping -c 400 -i 0.005 -W 1 -q c 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    nemesis_heal "$fault" 2>/dev/null
    # 30 % each way: an echo and its reply both pass 0.7 × 0.7 = 49 % of the time.
    if awk -v r="${received:-0}" 'BEGIN { exit !(r >= 140 && r <= 252) }'; then
        pass "$name ($received of 400 echoes answered at 30 % each way; 196 expected)"
    else
        fail "$name" "${received:-no} of 400 echoes answered at 30 % loss each way (196 expected)"
    fi
    after_heal=$(lab_exec a ping -c 100 -i 0.005 -W 1 -q c 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    [ "${after_heal:-0}" = 100 ] || fail "$name" "after healing ${after_heal:-no} of 100 echoes answered"

    name="a slowed link is capped, then restored to its own cap"
    fault=$(nemesis_slow b 4mbit 0 2>/dev/null)
    lab_exec b bash -c "head -c 1000000 /dev/zero > /tmp/keel-fleet-blob-$lab_id"
    slow=$(lab_exec a curl -s -o /dev/null -w '%{speed_download}' --max-time 10 "http://b:8001/keel-fleet-blob-$lab_id")
    nemesis_heal "$fault" 2>/dev/null
    lab_exec b bash -c "head -c 5000000 /dev/zero > /tmp/keel-fleet-blob-$lab_id"
    restored=$(lab_exec a curl -s -o /dev/null -w '%{speed_download}' --max-time 10 "http://b:8001/keel-fleet-blob-$lab_id")
    rm -f "/tmp/keel-fleet-blob-$lab_id"
    # 4 Mbit/s is 0.5 MB/s; b's own cap, 20 Mbit/s, 2.5 MB/s.
    if awk -v s="$slow" -v r="$restored" 'BEGIN { exit !(s > 0.3e6 && s < 0.56e6 && r > 1.5e6 && r < 2.8e6) }'; then
        pass "$name ($(awk -v s="$slow" -v r="$restored" 'BEGIN { printf "%.1f, then %.1f", s * 8 / 1e6, r * 8 / 1e6 }') Mbit/s)"
    else
        fail "$name" "$slow bytes/s at 4mbit, $restored after healing to b's 20mbit"
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
