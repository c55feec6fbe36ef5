//! The processor over the window, from `/proc` and the cgroup: how many cores Keel's
//! processes used, how busy the machine was, and how long the CPU limit throttled it.

use std::collections::HashMap;

/// Clock ticks per second of `/proc`'s CPU times (USER_HZ: 100 on Linux's common builds).
const TICKS: f64 = 100.0;

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
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((comm, ticks)) = process_ticks(pid) else {
                continue;
            };
            let keels = if pids.is_empty() {
                comm == "keel"
            } else {
                pids.contains(&pid)
            };
            if keels {
                keel.insert(pid, ticks);
            } else if comm.starts_with("postgres") {
                postgres.insert(pid, ticks);
            }
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
            ticks / TICKS / window_secs
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

/// A process's name and CPU ticks from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&stat)
}

fn parse_process_stat(stat: &str) -> Option<(String, f64)> {
    // The name is in parentheses and may itself hold spaces or parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Busy and total ticks of all cores, from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).unwrap_or(&0.0);
    Some((total - idle, total))
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
    fn process_stat_with_an_awkward_name() {
        let stat =
            "4242 (keel (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(
            parse_process_stat(stat),
            Some(("keel (x) y".to_owned(), 300.0))
        );
    }

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
