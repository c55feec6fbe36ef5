# The fleet lab's hosts: simulated machines on this one, each a network namespace with its
# own address on a lab bridge, a CPU quota and a memory limit (cgroup v1), optionally a
# bandwidth cap, and its own /etc/hosts naming the others. The processes are the real ones.
# Source it (as root) from the repository root; scripts/fleet.sh is the entry point.
#
#   lab_create                       a new lab: its bridge, its state under $lab_dir, and a
#                                    reaper that tears it all down when this shell dies,
#                                    however it dies (SIGKILL included)
#   lab_host NAME CPU MEM [RATE]     a host: CPU in cores (0.25), MEM for the cgroup (512M),
#                                    RATE a bandwidth cap each way (tc tbf, e.g. 100mbit)
#   lab_run HOST [-u USER] CMD...    runs CMD in the background on HOST (its log:
#                                    $lab_dir/log/HOST.log); sets $lab_pid
#   lab_exec HOST [-u USER] CMD...   runs CMD on HOST in the foreground
#   lab_addr HOST                    the host's address
#   lab_cpu_seconds HOST             CPU seconds the host's processes have used
#   lab_teardown ID                  stops and removes everything lab ID made
#   lab_clean                        tears down every lab whose owner has died
#
# Nothing of a lab lives in the machine's own network namespace: the bridge sits in a
# namespace of its own (keel-ID-net), so the lab's subnet is reachable only from its hosts.
# What does live outside the namespaces is named by the lab's id and removed by teardown:
# cgroups keel-fleet/ID/HOST under the cpu, cpuacct and memory controllers,
# /etc/netns/keel-ID-HOST, and the state directory.

fleet_root=${FLEET_ROOT:-/run/keel-fleet}
fleet_subnet=10.77.0
cgroup_root=/sys/fs/cgroup
# The CFS period of every host's quota. Shorter than the kernel's 100 ms default, so a host
# that spends its share is held back for milliseconds, not for a tenth of a second at a time
# (a request that hits the throttle waits at most one period); long enough that 0.05 of a
# core is a 1 ms quota, the least the kernel takes.
fleet_cfs_period_us=${FLEET_CFS_PERIOD_US:-20000}

lab_id="" lab_dir=""
declare -A lab_addrs=()

fleet_log() { printf '\033[1m[fleet %s] %s\033[0m\n' "${lab_id:-}" "$*" >&2; }

lab_ns() { echo "keel-$lab_id-$1"; }

# lab_create: makes the lab's id, state directory and bridge, and starts its reaper.
lab_create() {
    lab_id=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
    lab_dir="$fleet_root/$lab_id"
    mkdir -p "$lab_dir/log" "$lab_dir/data"
    echo $$ >"$lab_dir/owner"
    : >"$lab_dir/hosts"
    # The reaper waits for this shell to end, then tears the lab down. It runs in a session
    # of its own, so a signal to this shell's process group does not reach it.
    setsid bash -c 'tail --pid="$1" -f /dev/null; source "$2"; lab_teardown "$3"' \
        _ $$ "$(realpath scripts/fleet/lib.sh)" "$lab_id" </dev/null >/dev/null 2>&1 &
    echo $! >"$lab_dir/reaper"
    ip netns add "$(lab_ns net)"
    ip -n "$(lab_ns net)" link set lo up
    ip -n "$(lab_ns net)" link add br0 type bridge
    ip -n "$(lab_ns net)" link set br0 up
    fleet_log "lab $lab_id in $lab_dir"
}

# lab_host NAME CPU MEM [RATE]
lab_host() {
    local name=$1 cpu=$2 mem=$3 rate=${4:-}
    local ns n
    # The bridge's end of its link is `v-NAME`, and an interface name has 15 characters.
    [ "${#name}" -le 13 ] || { fleet_log "host name '$name' is over 13 characters"; return 1; }
    ns=$(lab_ns "$name")
    n=$(($(wc -l <"$lab_dir/hosts") + 10))
    lab_addrs[$name]="$fleet_subnet.$n"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # One veth pair: eth0 in the host, its peer on the bridge, both made in the bridge's
    # namespace so no end ever appears in the machine's own.
    ip -n "$(lab_ns net)" link add "v-$name" type veth peer name eth0 netns "$ns"
    ip -n "$(lab_ns net)" link set "v-$name" master br0 up
    ip -n "$ns" addr add "${lab_addrs[$name]}/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [ -n "$rate" ]; then
        ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 64kb latency 50ms
        ip netns exec "$(lab_ns net)" tc qdisc add dev "v-$name" root tbf rate "$rate" burst 64kb latency 50ms
    fi
    local controller
    for controller in cpu cpuacct memory; do
        mkdir -p "$cgroup_root/$controller/keel-fleet/$lab_id/$name"
    done
    local dir="$cgroup_root/cpu/keel-fleet/$lab_id/$name"
    echo "$fleet_cfs_period_us" >"$dir/cpu.cfs_period_us"
    awk -v c="$cpu" -v p="$fleet_cfs_period_us" 'BEGIN { printf "%d\n", c * p }' >"$dir/cpu.cfs_quota_us"
    numfmt --from=iec "$mem" >"$cgroup_root/memory/keel-fleet/$lab_id/$name/memory.limit_in_bytes"
    echo "$name ${lab_addrs[$name]} $cpu $mem ${rate:-}" >>"$lab_dir/hosts"
    lab_write_hosts_files
}

# Every host's /etc/hosts names every host. Rewritten in place (same inode), so processes
# already running see a host added later: `ip netns exec` bind-mounts this very file.
lab_write_hosts_files() {
    local name addr rest table
    table=$(printf '127.0.0.1 localhost\n'; while read -r name addr rest; do echo "$addr $name"; done <"$lab_dir/hosts")
    while read -r name addr rest; do
        mkdir -p "/etc/netns/$(lab_ns "$name")"
        echo "$table" >"/etc/netns/$(lab_ns "$name")/hosts"
    done <"$lab_dir/hosts"
}

lab_addr() { awk -v h="$1" '$1 == h { print $2 }' "$lab_dir/hosts"; }

# lab_enter HOST [-u USER] CMD...: becomes a process of HOST (its cgroups, then its
# namespace), as USER if given. The cgroups are joined before `ip netns exec`, which mounts
# a sysfs of its own where they could not be found.
lab_enter() {
    local host=$1; shift
    local user=""
    if [ "${1:-}" = -u ]; then user=$2; shift 2; fi
    local controller
    for controller in cpu cpuacct memory; do
        echo "$BASHPID" >"$cgroup_root/$controller/keel-fleet/$lab_id/$host/cgroup.procs"
    done
    if [ -n "$user" ]; then
        exec ip netns exec "$(lab_ns "$host")" runuser -u "$user" -- "$@"
    fi
    exec ip netns exec "$(lab_ns "$host")" "$@"
}

lab_run() {
    local host=$1
    (lab_enter "$@") >>"$lab_dir/log/$host.log" 2>&1 </dev/null &
    lab_pid=$!
}

lab_exec() { (lab_enter "$@"); }

# lab_cpu_seconds HOST: CPU time (user + system) of every process the host has run.
lab_cpu_seconds() {
    awk '{ printf "%.3f\n", $1 / 1e9 }' "$cgroup_root/cpuacct/keel-fleet/$lab_id/$1/cpuacct.usage"
}

# lab_wait_tcp HOST ADDR PORT [SECONDS]: waits until ADDR:PORT accepts a connection from HOST.
lab_wait_tcp() {
    local host=$1 addr=$2 port=$3 tries=$((${4:-30} * 10))
    local ns
    ns=$(lab_ns "$host")
    for _ in $(seq "$tries"); do
        ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
        sleep 0.1
    done
    fleet_log "$addr:$port did not answer from $host"
    return 1
}

# lab_teardown ID: every process of the lab killed (by its cgroups and its namespaces),
# then its namespaces, cgroups, hosts files and state removed. Safe to run twice at once.
lab_teardown() {
    local id=$1
    mkdir -p "$fleet_root"
    (
        flock 9
        local cg ns pids controller signal timer
        # The nemesis's timers live in sessions of their own, outside the lab's cgroups.
        for timer in "$fleet_root/$id"/nemesis-timer-*; do
            [ -f "$timer" ] && kill "$(cat "$timer")" 2>/dev/null
        done
        for signal in TERM KILL; do
            pids=$(cat "$cgroup_root"/cpu/keel-fleet/"$id"/*/cgroup.procs 2>/dev/null || true)
            for ns in $(ip netns list | awk -v p="keel-$id-" 'index($1, p) == 1 { print $1 }'); do
                pids="$pids $(ip netns pids "$ns" 2>/dev/null || true)"
            done
            # shellcheck disable=SC2086 # one argument per pid
            [ -n "${pids// /}" ] && kill -s "$signal" $pids 2>/dev/null
            for _ in $(seq 30); do
                [ -z "$(cat "$cgroup_root"/cpu/keel-fleet/"$id"/*/cgroup.procs 2>/dev/null)" ] && break
                sleep 0.1
            done
        done
        for ns in $(ip netns list | awk -v p="keel-$id-" 'index($1, p) == 1 { print $1 }'); do
            ip netns del "$ns" 2>/dev/null || true
            rm -rf "/etc/netns/$ns"
        done
        for controller in cpu cpuacct memory; do
            for cg in "$cgroup_root/$controller/keel-fleet/$id"/*/; do
                [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
            done
            rmdir "$cgroup_root/$controller/keel-fleet/$id" 2>/dev/null || true
            # The parent all labs share, once the last of them is gone.
            rmdir "$cgroup_root/$controller/keel-fleet" 2>/dev/null || true
        done
        # FLEET_KEEP_LOGS=DIR keeps the hosts' logs (DIR/ID) for reading after the lab.
        if [ -n "${FLEET_KEEP_LOGS:-}" ] && [ -d "$fleet_root/$id/log" ]; then
            mkdir -p "$FLEET_KEEP_LOGS" && cp -r "$fleet_root/$id/log" "$FLEET_KEEP_LOGS/$id"
        fi
        rm -rf "${fleet_root:?}/$id"
    ) 9>"$fleet_root/.lock"
}

# lab_leftovers ID: prints whatever of lab ID still exists (nothing when torn down).
lab_leftovers() {
    local id=$1
    ip netns list | awk -v p="keel-$id-" 'index($1, p) == 1 { print "namespace " $1 }'
    ls -d "$cgroup_root"/*/keel-fleet/"$id" 2>/dev/null | sed 's/^/cgroup /'
    ls -d /etc/netns/keel-"$id"-* 2>/dev/null | sed 's/^/hosts file /'
    [ -e "$fleet_root/$id" ] && echo "state $fleet_root/$id"
    return 0
}

# lab_clean: tears down every lab whose owner is no longer running.
lab_clean() {
    local dir id
    for dir in "$fleet_root"/*/; do
        [ -d "$dir" ] || continue
        id=$(basename "$dir")
        kill -0 "$(cat "$dir/owner" 2>/dev/null || echo 0)" 2>/dev/null && continue
        fleet_log "tearing down lab $id (its owner is gone)"
        lab_teardown "$id"
    done
    # Namespaces or cgroups of a lab whose state directory is already gone.
    for id in $(ip netns list | sed -n 's/^keel-\([0-9a-f]*\)-.*/\1/p' | sort -u); do
        [ -d "$fleet_root/$id" ] || lab_teardown "$id"
    done
}

# lab_down: this shell's lab torn down (its EXIT trap).
lab_down() {
    [ -n "$lab_id" ] || return 0
    fleet_log "tearing down"
    lab_teardown "$lab_id"
    lab_id=""
}
