//! The processor over the window, from `/proc` (through procfs) and the cgroup: how many cores Keel's
//! processes used, how busy the machine was, and how long the CPU limit throttled it.

use std::collections::HashMap;

/// Cumulative CPU counters at one moment.
#[derive(Debug, Default, Clone)]
pub(super) struct CpuCounters {
    /// Per Keel process: user + system ticks.
    keel: HashMap<u32, f64>,
    /// Per PostgreSQL process (server and backends).
    postgres: HashMap<u32, f64>,
    machine_busy: f64,
    machine_total: f64,
    throttled_secs: f64,
}

/// Reads the counters; Keel is the processes `pids`, or when none are given every process
/// named `keel`.
pub(super) fn counters(pids: &[u32]) -> CpuCounters {
    let (mut keel, mut postgres) = (HashMap::new(), HashMap::new());
    let processes = procfs::process::all_processes().into_iter().flatten();
    // A process that exits while it is read is simply not counted.
    for stat in processes.filter_map(|p| p.ok()?.stat().ok()) {
        let Ok(pid) = u32::try_from(stat.pid) else {
            continue;
        };
        let ticks = (stat.utime + stat.stime) as f64;
        let keels = if pids.is_empty() {
            stat.comm == "keel"
        } else {
            pids.contains(&pid)
        };
        if keels {
            keel.insert(pid, ticks);
        } else if stat.comm.starts_with("postgres") {
            postgres.insert(pid, ticks);
        }
    }
    let (machine_busy, machine_total) = machine_ticks().unwrap_or_default();
    CpuCounters {
        keel,
        postgres,
        machine_busy,
        machine_total,
        throttled_secs: throttled_secs().unwrap_or_default(),
    }
}

/// The window's CPU evidence.
pub(super) fn cpu(
    start: &CpuCounters,
    end: &CpuCounters,
    window_secs: f64,
) -> super::evidence::Cpu {
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    // A process that started within the window counts from zero; one that ended is lost.
    let used = |before: &HashMap<u32, f64>, after: &HashMap<u32, f64>| -> f64 {
        after
            .iter()
            .map(|(pid, ticks)| ticks - before.get(pid).copied().unwrap_or(0.0))
            .fold(0.0, |a, b| a + b)
    };
    let cores_of = |ticks: f64| {
        if window_secs > 0.0 {
            ticks / procfs::ticks_per_second() as f64 / window_secs
        } else {
            0.0
        }
    };
    let total = end.machine_total - start.machine_total;
    let machine_cores = if total > 0.0 {
        (end.machine_busy - start.machine_busy) / total * cores
    } else {
        0.0
    };
    super::evidence::Cpu {
        cores,
        keel_cores: cores_of(used(&start.keel, &end.keel)),
        database_cores: cores_of(used(&start.postgres, &end.postgres)),
        machine_cores,
        throttled_secs: (end.throttled_secs - start.throttled_secs).max(0.0),
    }
}

/// The machine's busy and total CPU ticks since boot.
fn machine_ticks() -> Option<(f64, f64)> {
    use procfs::CurrentSI;
    let total = procfs::KernelStats::current().ok()?.total;
    let busy = total.user
        + total.nice
        + total.system
        + total.irq.unwrap_or(0)
        + total.softirq.unwrap_or(0)
        + total.steal.unwrap_or(0);
    let idle = total.idle + total.iowait.unwrap_or(0);
    Some((busy as f64, (busy + idle) as f64))
}

/// Seconds the cgroup has been throttled: cgroup v2 `throttled_usec`, or v1 `throttled_time`.
fn throttled_secs() -> Option<f64> {
    if let Ok(stat) = std::fs::read_to_string("/sys/fs/cgroup/cpu.stat") {
        return stat_value(&stat, "throttled_usec").map(|us| us / 1e6);
    }
    let stat = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.stat").ok()?;
    stat_value(&stat, "throttled_time").map(|ns| ns / 1e9)
}

fn stat_value(stat: &str, key: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_throttling() {
        let v2 = "usage_usec 100\nnr_periods 10\nnr_throttled 2\nthrottled_usec 1500000\n";
        assert_eq!(stat_value(v2, "throttled_usec"), Some(1_500_000.0));
    }

    #[test]
    fn this_process_is_found_by_pid() {
        let me = std::process::id();
        let counters = counters(&[me]);
        assert!(counters.keel.contains_key(&me));
        assert!(counters.machine_total > 0.0);
    }
}
