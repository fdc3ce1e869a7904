//! Where the CPU time of a series goes: the bench process, Mosquitto and PostgreSQL, read
//! from `/proc` (Linux). Stands in for a profiler where none can sample.

use std::collections::BTreeMap;

/// Cumulative CPU time (user + system), in clock ticks, per group of processes.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    ticks: BTreeMap<&'static str, u64>,
}

/// The groups a snapshot sums: this process, every `mosquitto`, every `postgres`.
const GROUPS: [&str; 3] = ["bench", "mosquitto", "postgres"];

/// Clock ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// The command name, the process's own CPU ticks, and those of its children that ended
/// and were waited for (how a server's finished workers stay counted).
fn stat_ticks(stat: &str) -> Option<(String, u64, u64)> {
    // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // After comm: state is field 3; utime, stime, cutime and cstime are fields 14 to 17.
    let field = |i: usize| rest.get(i)?.parse::<u64>().ok();
    Some((comm, field(11)? + field(12)?, field(13)? + field(14)?))
}

/// CPU ticks (user + system) the calling thread has used so far; `None` without `/proc`.
pub fn thread_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    stat_ticks(&stat).map(|(_, own, _)| own)
}

/// Milliseconds per `per` items of `ticks` spent over `items` items.
pub fn ticks_ms_per(ticks: u64, items: usize, per: usize) -> f64 {
    ticks as f64 / TICKS_PER_S * 1000.0 * per as f64 / items.max(1) as f64
}

impl CpuSnapshot {
    /// Reads the counters now; empty where `/proc` is missing.
    pub fn now() -> Self {
        let mut ticks: BTreeMap<&'static str, u64> = GROUPS.iter().map(|g| (*g, 0)).collect();
        let me = std::process::id().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self::default();
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str() else { continue };
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((comm, own, children)) = stat_ticks(&stat) else {
                continue;
            };
            // This process's waited-for children are the servers it started: not its own.
            let (group, t) = if pid == me {
                ("bench", own)
            } else if comm == "mosquitto" {
                ("mosquitto", own + children)
            } else if comm == "postgres" {
                ("postgres", own + children)
            } else {
                continue;
            };
            *ticks.entry(group).or_default() += t;
        }
        Self { ticks }
    }

    /// CPU milliseconds per `per` items spent by each group since `earlier`.
    pub fn ms_per(&self, earlier: &CpuSnapshot, items: usize, per: usize) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        let mut total = 0.0;
        for g in GROUPS {
            let d = self
                .ticks
                .get(g)
                .copied()
                .unwrap_or(0)
                .saturating_sub(earlier.ticks.get(g).copied().unwrap_or(0));
            let ms = d as f64 / TICKS_PER_S * 1000.0 * per as f64 / items.max(1) as f64;
            total += ms;
            out.insert(g.into(), crate::round1(ms).into());
        }
        out.insert("total".into(), crate::round1(total).into());
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_spaces_in_the_name() {
        let line = "42 (my proc) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 5 0 0";
        assert_eq!(stat_ticks(line), Some(("my proc".into(), 10, 3)));
    }

    #[test]
    fn own_process_time_grows_with_work() {
        let a = CpuSnapshot::now();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = CpuSnapshot::now();
        let ms = b.ms_per(&a, 1, 1);
        assert!(ms["bench"].as_f64().unwrap() >= 100.0, "{ms}");
    }
}
