//! Request/reply round trips: a mqttcal node against a raw MQTT echo, interleaved in one run.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin rr -- --mosquitto nodelay --n 2000
//! (or `--mosquitto stock`, or `--broker mqtt://host:port` for a broker of your own).
//!
//! The raw echo is two plain rumqttc clients (TCP_NODELAY on, like our transport): one
//! publishes a payload on `rr/req` and waits for it on `rr/rep`, the other echoes it; no
//! JSON. The mqttcal series is a client calling a node's `echo` capability with the same
//! payload. For each QoS in turn, both series are set up and warmed up, then run in
//! alternating blocks of `--block` calls (10 to 100, default 100; at least 10 blocks each,
//! so `--n` below 10 blocks' worth is raised: `calls_per_series` says how many ran), the
//! raw block first in one block pair and second in the next, so that both sides of a ratio
//! see the same machine: this virtual machine switches between fast and slow wake-up modes
//! from run to run, and a busy machine hides our overhead.
//!
//! Use a nodelay broker (`--mosquitto nodelay`): on a stock Mosquitto (the default, and the
//! system one) every QoS 1 round trip waits 44 ms for a delayed ACK, in both series, and
//! the QoS 1 ratio says nothing (and a run of 2,000 takes three minutes).
//!
//! One JSON line: `load_average` as `/proc/loadavg` gives it (1, 5, 15 minutes, then
//! running/all tasks and the last pid); for each QoS, each series' p50, p99, max and
//! sequential requests/s over all its blocks, and the ratio of the mqttcal block's p50 over
//! the raw block's p50 beside it (above 1: mqttcal is slower): median (the upper middle
//! for an even count), lowest and highest of the blocks.
//!
//! Built with `--features paho`, each block also runs the same calls with node and client on
//! the Paho client (`mqttcal_paho`, `paho_p50_ratio` over the same raw blocks), between the
//! mqttcal block and the raw one or after both.
//!
//! `--only raw0|ours0|raw1|ours1` runs one series alone for `--n` calls after its warm-up
//! and prints nothing: the instruction counts per call (`scripts/rr-instructions.sh`) run
//! it under callgrind.

use std::time::Duration;

use mqttcal_benches::{broker_from_args, load_average, number_arg, Stats};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::QoS;
use serde_json::{json, Value};

mod path;
mod rigs;

use rigs::{OursRig, RawRig};

/// One QoS: the raw and the mqttcal rig, and what their blocks measured.
struct Pair {
    raw: RawRig,
    ours: OursRig,
    raw_samples: Vec<Duration>,
    ours_samples: Vec<Duration>,
    raw_time: Duration,
    ours_time: Duration,
    /// Per block: the mqttcal p50 over the raw p50.
    ratios: Vec<f64>,
    /// The same calls on the Paho client (feature `paho`), in the same blocks.
    paho: Option<Series>,
}

/// A further mqttcal series beside the raw one.
struct Series {
    rig: OursRig,
    samples: Vec<Duration>,
    time: Duration,
    ratios: Vec<f64>,
}

impl Pair {
    async fn start(url: &str, host: &str, port: u16, qos: QoS, warm_up: usize) -> Self {
        let raw_qos = match qos {
            QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
            QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        };
        let mut raw = RawRig::start(host, port, raw_qos, None).await;
        let mut ours = OursRig::start(url, qos, None).await;
        raw.series(warm_up).await;
        ours.series(warm_up).await;
        #[cfg(feature = "paho")]
        let paho = {
            let mut rig = OursRig::start_paho(url, qos).await;
            rig.series(warm_up).await;
            Some(Series {
                rig,
                samples: Vec::new(),
                time: Duration::ZERO,
                ratios: Vec::new(),
            })
        };
        #[cfg(not(feature = "paho"))]
        let paho = None;
        Self {
            raw,
            ours,
            raw_samples: Vec::new(),
            ours_samples: Vec::new(),
            raw_time: Duration::ZERO,
            ours_time: Duration::ZERO,
            ratios: Vec::new(),
            paho,
        }
    }

    /// One block of each series, the raw one first or last (the Paho one, if any, in
    /// between).
    async fn block(&mut self, size: usize, raw_first: bool) {
        let raw_before = if raw_first {
            Some(self.raw.series(size).await)
        } else {
            None
        };
        let ours = self.ours.series(size).await;
        let paho = match &mut self.paho {
            Some(p) => Some(p.rig.series(size).await),
            None => None,
        };
        let raw = match raw_before {
            Some(raw) => raw,
            None => self.raw.series(size).await,
        };
        if let (Some(p), Some(block)) = (&mut self.paho, paho) {
            p.ratios.push(median(&raw.0, &block.0));
            p.samples.extend(block.0);
            p.time += block.1;
        }
        self.ratios.push(median(&raw.0, &ours.0));
        self.raw_samples.extend(raw.0);
        self.ours_samples.extend(ours.0);
        self.raw_time += raw.1;
        self.ours_time += ours.1;
    }

    fn json(&self) -> Value {
        let raw = Stats::of(self.raw_samples.clone(), self.raw_time);
        let ours = Stats::of(self.ours_samples.clone(), self.ours_time);
        let mut out = json!({
            "raw": raw.json(),
            "mqttcal": ours.json(),
            "p50_ratio": ratio_json(&self.ratios),
        });
        if let Some(p) = &self.paho {
            out["mqttcal_paho"] = Stats::of(p.samples.clone(), p.time).json();
            out["paho_p50_ratio"] = ratio_json(&p.ratios);
        }
        out
    }

    async fn stop(self) {
        self.raw.stop().await;
        self.ours.stop().await;
        if let Some(p) = self.paho {
            p.rig.stop().await;
        }
    }
}

/// The p50 of `ours` over the p50 of `raw`.
fn median(raw: &[Duration], ours: &[Duration]) -> f64 {
    let p50 = |s: &[Duration]| {
        let mut s = s.to_vec();
        s.sort();
        s[s.len() / 2].as_secs_f64()
    };
    p50(ours) / p50(raw)
}

/// The median, lowest and highest of per-block ratios.
fn ratio_json(ratios: &[f64]) -> Value {
    let mut ratios = ratios.to_vec();
    ratios.sort_by(f64::total_cmp);
    json!({
        "median": round3(ratios[ratios.len() / 2]),
        "min": round3(ratios[0]),
        "max": round3(ratios[ratios.len() - 1]),
        "blocks": ratios.len(),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `--only SERIES`: one series alone, for instruction counts.
async fn only_series(series: &str, url: &str, host: &str, port: u16, n: usize, warm_up: usize) {
    let qos = if series.ends_with('1') {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    match series {
        "raw0" | "raw1" => {
            let raw_qos = match qos {
                QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
                QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
            };
            let mut raw = RawRig::start(host, port, raw_qos, None).await;
            raw.series(warm_up).await;
            raw.series(n).await;
            raw.stop().await;
        }
        "ours0" | "ours1" => {
            let mut ours = OursRig::start(url, qos, None).await;
            ours.series(warm_up).await;
            ours.series(n).await;
            ours.stop().await;
        }
        other => {
            eprintln!("unknown --only `{other}` (raw0, ours0, raw1 or ours1)");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let load = load_average();
    // Checked before a broker is started: an exit now leaves nothing behind.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    if let Some(series) = &only {
        if !["raw0", "ours0", "raw1", "ours1"].contains(&series.as_str()) {
            eprintln!("unknown --only `{series}` (raw0, ours0, raw1 or ours1)");
            std::process::exit(2);
        }
    }
    let (url, _broker) = match broker_from_args(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let n = number_arg(&args, "--n", 2000).max(1);
    // A block of fewer than 10 calls has no meaningful p50.
    let block = number_arg(&args, "--block", 100).clamp(10, 100);
    let warm_up = n.min(2000) / 10 + 10;
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let (host, port) = (cfg.hostname.clone(), cfg.port);
    if args.iter().any(|a| a == "--path") {
        let mut ways = serde_json::Map::new();
        for (name, qos) in [("qos0", QoS::AtMostOnce), ("qos1", QoS::AtLeastOnce)] {
            ways.insert(name.into(), path::run(&url, &host, port, qos, n).await);
        }
        let line = json!({ "bench": "rr-path", "broker": url, "load_average": load, "ways": ways });
        println!("{line}");
        return;
    }
    if let Some(series) = only {
        // A fixed warm-up, so that two runs differ only by their `--n` calls.
        only_series(&series, &url, &host, port, n, 100).await;
        return;
    }
    let blocks = n.div_ceil(block).max(10);
    // One QoS at a time: the raw echoes of both would share `rr/req` and `rr/rep`.
    let mut figures = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut pair = Pair::start(&url, &host, port, qos, warm_up).await;
        for b in 0..blocks {
            pair.block(block, b % 2 == 0).await;
        }
        figures.push(pair.json());
        pair.stop().await;
    }
    let line = json!({
        "bench": "rr",
        "broker": url,
        "load_average": load,
        "calls_per_series": blocks * block,
        "block": block,
        "qos0": figures[0],
        "qos1": figures[1],
    });
    println!("{line}");
}
