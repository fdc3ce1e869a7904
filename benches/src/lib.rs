//! Shared helpers of the mqttcal benchmarks: latency statistics and broker selection.
//!
//! Binaries:
//! - `rr`: request/reply round trips of a mqttcal node against a raw MQTT echo, same run
//!   (interleaved in blocks; `--path` for the two ways of a round trip, `--only` for
//!   `scripts/rr-instructions.sh`).
//! - `startup`: a node's time from start to `hello` and its idle resident memory, against
//!   a bare rumqttc client (`bare_client`) in the same run.
//! - `labd_rate`: readings per second through labd against the instrument driver alone.
//! - `fleet`: a thousand nodes on one broker: a broadcast gathering them all, a call to one
//!   of them against two nodes alone, and what the broker dropped.
//! - `ingest`: measurements per second persisted by datad against a raw MQTT flood and a
//!   plain PostgreSQL COPY.

use std::time::Duration;

pub mod cpu;

use mqttcal_testkit::{BrokerKind, Mosquitto};

/// Latency figures of one series of sequential round trips.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median, in microseconds.
    pub p50_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
    /// Largest, in microseconds.
    pub max_us: f64,
    /// Sequential round trips per second.
    pub per_s: f64,
}

impl Stats {
    /// Statistics of `samples` taken over `total`.
    pub fn of(mut samples: Vec<Duration>, total: Duration) -> Self {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1e6
        };
        Self {
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: at(1.0),
            per_s: samples.len() as f64 / total.as_secs_f64(),
        }
    }

    /// As a JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "p50_us": round1(self.p50_us),
            "p99_us": round1(self.p99_us),
            "max_us": round1(self.max_us),
            "per_s": round1(self.per_s),
        })
    }
}

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Reads `--broker URL` or `--mosquitto stock|nodelay|production` (a private broker from the testkit
/// configs) from the arguments; the broker, if started, lives as long as the guard.
pub fn broker_from_args(args: &[String]) -> Result<(String, Option<Mosquitto>), String> {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(url) = value("--broker") {
        return Ok((url, None));
    }
    let kind = match value("--mosquitto").as_deref() {
        Some("stock") | None => BrokerKind::Stock,
        Some("nodelay") => BrokerKind::NoDelay,
        Some("production") => BrokerKind::Production,
        Some(other) => {
            return Err(format!(
                "unknown --mosquitto `{other}` (stock, nodelay or production)"
            ))
        }
    };
    let m = Mosquitto::start(kind);
    Ok((m.url(), Some(m)))
}

/// The load averages as `/proc/loadavg` gives them (1, 5 and 15 minutes, running and all
/// tasks, last pid); empty where there is no such file. Print it beside every figure: a busy
/// machine hides overhead.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Reads `--FLAG N`, or `default`.
pub fn number_arg(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `mqttcal` binary: `--mqttcal PATH`, or the one next to this bench's binary; exits with
/// advice when it is not built.
pub fn mqttcal_binary(args: &[String]) -> std::path::PathBuf {
    let path = args
        .iter()
        .position(|a| a == "--mqttcal")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("mqttcal"));
    if !path.exists() {
        eprintln!(
            "{} not found: cargo build --release -p mqttcal-cli",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

/// Child processes, killed (and waited for) when dropped.
#[derive(Debug)]
pub struct Procs(pub Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
