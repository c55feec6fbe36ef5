# The lab's nemesis: network faults between its hosts, made inside the hosts' own namespaces
# (iptables rules in a chain of the lab's, KEEL-NEMESIS, which INPUT and OUTPUT jump to; tc
# on a host's link), each one bounded in time and healed by itself, by `nemesis_heal`, or by
# the lab's teardown (a namespace's rules go with it). Source after lib.sh.
#
#   nemesis_partition "A B" "C D" SECS  no packet between a host of the first group and one
#                                       of the second, either way
#   nemesis_blackhole FROM TO SECS      FROM's packets to TO dropped; TO's still reach FROM
#   nemesis_loss A B PERCENT SECS       PERCENT of the packets between A and B dropped, each
#                                       way (iptables' statistic match: this kernel has no
#                                       netem, so loss, not delay)
#   nemesis_slow HOST RATE SECS         HOST's link capped at RATE each way (tc tbf, 1mbit)
#   nemesis_heal [FAULT]                removes fault FAULT (a number each command prints),
#                                       or every fault
#
# Each command prints its fault's number and heals it after SECS (0: only when healed by
# hand or with the lab): a forgotten partition does not outlive the experiment. Rules carry
# the comment keel-fault-N, so healing one fault leaves the others.

nemesis_chain=KEEL-NEMESIS

# nemesis_iptables HOST ARGS...: iptables in HOST's namespace, the chain made on first use.
nemesis_iptables() {
    local ns
    ns=$(lab_ns "$1"); shift
    if ! ip netns exec "$ns" iptables -w -n -L "$nemesis_chain" >/dev/null 2>&1; then
        ip netns exec "$ns" iptables -w -N "$nemesis_chain"
        ip netns exec "$ns" iptables -w -I INPUT -j "$nemesis_chain"
        ip netns exec "$ns" iptables -w -I OUTPUT -j "$nemesis_chain"
    fi
    ip netns exec "$ns" iptables -w "$@"
}

# nemesis_begin: the next fault's number, in $nemesis_fault.
nemesis_begin() {
    local counter="$lab_dir/nemesis-faults"
    nemesis_fault=$(( $(cat "$counter" 2>/dev/null || echo 0) + 1 ))
    echo "$nemesis_fault" >"$counter"
}

# nemesis_drop HOST MATCH...: drops what MATCH selects in HOST's chain, tagged with the fault.
nemesis_drop() {
    local host=$1; shift
    nemesis_iptables "$host" -A "$nemesis_chain" "$@" \
        -m comment --comment "keel-fault-$nemesis_fault" -j DROP
}

# nemesis_end SECS WHAT: records the fault, prints its number, and heals it after SECS.
nemesis_end() {
    local seconds=$1 what=$2
    echo "$nemesis_fault $what" >>"$lab_dir/nemesis"
    fleet_log "fault $nemesis_fault: $what${seconds:+ for ${seconds}s}"
    if [ "${seconds:-0}" != 0 ]; then
        # In a session of its own, like the reaper: it outlives the command that made it.
        setsid bash -c 'sleep "$1"; source "$2"; source "$3"; lab_id=$4 lab_dir=$5; nemesis_heal "$6"' \
            _ "$seconds" "$(realpath scripts/fleet/lib.sh)" "$(realpath scripts/fleet/nemesis.sh)" \
            "$lab_id" "$lab_dir" "$nemesis_fault" </dev/null >/dev/null 2>&1 &
        echo $! >"$lab_dir/nemesis-timer-$nemesis_fault"
    fi
    echo "$nemesis_fault"
}

nemesis_partition() {
    local left=$1 right=$2 seconds=${3:-0} a b
    nemesis_begin
    for a in $left; do
        for b in $right; do
            nemesis_drop "$a" -d "$(lab_addr "$b")"
            nemesis_drop "$a" -s "$(lab_addr "$b")"
        done
    done
    nemesis_end "$seconds" "partition [$left] | [$right]"
}

nemesis_blackhole() {
    local from=$1 to=$2 seconds=${3:-0}
    nemesis_begin
    nemesis_drop "$from" -d "$(lab_addr "$to")"
    nemesis_end "$seconds" "blackhole $from -> $to"
}

nemesis_loss() {
    local a=$1 b=$2 percent=$3 seconds=${4:-0} p
    p=$(awk -v p="$percent" 'BEGIN { printf "%.4f", p / 100 }')
    nemesis_begin
    nemesis_drop "$a" -d "$(lab_addr "$b")" -m statistic --mode random --probability "$p"
    nemesis_drop "$a" -s "$(lab_addr "$b")" -m statistic --mode random --probability "$p"
    nemesis_end "$seconds" "loss $percent % between $a and $b"
}

# nemesis_link HOST [RATE]: HOST's link capped at RATE each way, or as it was made.
nemesis_link() {
    local host=$1 rate=${2:-} ns
    ns=$(lab_ns "$host")
    [ -n "$rate" ] || rate=$(awk -v h="$host" '$1 == h { print $5 }' "$lab_dir/hosts")
    if [ -n "$rate" ]; then
        ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "$rate" burst 64kb latency 200ms
        ip netns exec "$(lab_ns net)" tc qdisc replace dev "v-$host" root tbf rate "$rate" burst 64kb latency 200ms
    else
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
        ip netns exec "$(lab_ns net)" tc qdisc del dev "v-$host" root 2>/dev/null || true
    fi
}

nemesis_slow() {
    local host=$1 rate=$2 seconds=${3:-0}
    nemesis_begin
    nemesis_link "$host" "$rate"
    echo "$nemesis_fault slow $host" >>"$lab_dir/nemesis-links"
    nemesis_end "$seconds" "$host's link at $rate"
}

nemesis_heal() {
    local only=${1:-} name rest ns rule fault host
    [ -f "$lab_dir/hosts" ] || return 0
    while read -r name rest; do
        ns=$(lab_ns "$name")
        ip netns exec "$ns" iptables -w -S "$nemesis_chain" 2>/dev/null \
            | grep -- "--comment keel-fault-${only:-[0-9]*} " \
            | sed 's/^-A/-D/' \
            | while read -r rule; do
                # shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
                ip netns exec "$ns" iptables -w $rule
            done
    done <"$lab_dir/hosts"
    if [ -f "$lab_dir/nemesis-links" ]; then
        while read -r fault _ host; do
            [ -z "$only" ] || [ "$fault" = "$only" ] || continue
            nemesis_link "$host"
        done <"$lab_dir/nemesis-links"
    fi
    for fault in $(awk '{ print $1 }' "$lab_dir/nemesis" 2>/dev/null); do
        [ -z "$only" ] || [ "$fault" = "$only" ] || continue
        if [ -f "$lab_dir/nemesis-timer-$fault" ]; then
            # Not this process itself, when it is that timer.
            [ "$(cat "$lab_dir/nemesis-timer-$fault")" = "$$" ] || kill "$(cat "$lab_dir/nemesis-timer-$fault")" 2>/dev/null || true
            rm -f "$lab_dir/nemesis-timer-$fault"
        fi
        sed -i "/^$fault /d" "$lab_dir/nemesis" "$lab_dir/nemesis-links" 2>/dev/null || true
        fleet_log "fault $fault healed"
    done
}
