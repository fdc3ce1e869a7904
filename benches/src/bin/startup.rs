//! A node's time from process start to its `hello`, and its idle resident memory, against
//! a bare rumqttc client doing the same in the same run.
//!
//! Run with: `cargo build --release -p mqttcal-examples -p mqttcal-benches &&
//! target/release/startup --mosquitto stock --runs 7` (add `-p mqttcal-cli` to measure
//! `mqttcal run base` too).
//!
//! Each round starts, one after the other and in alternating order, the `custom_node`
//! example (`thermo`), the `bare_client` baseline (connects, subscribes to the control
//! topics, says `hello`) and, when built, `mqttcal run base`, all found next to this binary.
//! It times each from spawn to its `hello` on `announce`, reads its memory from /proc after
//! 2 s idle, stops it, and prints one JSON line: per series the medians of start-to-hello
//! and of VmRSS (with its anonymous and file-backed parts), and the median of the per-round
//! ratios of `custom_node` to the bare client. `mqttcal run base` first checks that no node
//! answers to its name (0.7 s), which its start-to-hello includes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqttcal_benches::{broker_from_args, load_average, number_arg, round1};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::Transport;
use mqttcal_core::transport::{Event, Events, MqttTransport, QoS, SessionSpec, Subscription};
use serde_json::{json, Value};

/// One program measured.
struct Series {
    label: &'static str,
    program: PathBuf,
    hello_ms: Vec<f64>,
    rss: Vec<Memory>,
}

/// Resident memory in KiB, as /proc/PID/status gives it.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    total: f64,
    anon: f64,
    file: f64,
}

impl Memory {
    fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<f64> {
            let line = status.lines().find_map(|l| l.strip_prefix(name))?;
            line.split_whitespace().next()?.parse().ok()
        };
        Some(Self {
            total: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A program built next to this bench, or advice on how to build it.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe().unwrap().with_file_name(name)
}

fn require(path: &Path, package: &str) {
    if !path.exists() {
        eprintln!(
            "{} not found: cargo build --release -p {package} -p mqttcal-benches",
            path.display()
        );
        std::process::exit(2);
    }
}

/// Waits for `hello` from `name` on the watcher's `announce`.
async fn hello_from(events: &mut Events, name: &str) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no hello from `{name}` within 10 s"))
            .expect("the watcher's connection ended");
        if let Event::Message { payload, .. } = ev {
            let Ok(v) = serde_json::from_slice::<Value>(&payload) else {
                continue;
            };
            if v["from"] == name && v["message"] == "hello" {
                return;
            }
        }
    }
}

/// Starts one program, times it to its `hello`, reads its idle memory, stops it.
async fn measure(s: &mut Series, url: &str, round: usize, events: &mut Events) {
    let name;
    let mut cmd = Command::new(&s.program);
    match s.label {
        "custom_node" => {
            name = "thermo".to_owned();
            cmd.arg(url);
        }
        "bare_client" => {
            name = format!("startup-bare-{}-{round}", std::process::id());
            cmd.args([url, &name]);
        }
        _ => {
            name = format!("startup-{}-{round}", std::process::id());
            cmd.args(["--broker", url, "run", "base", "--name", &name]);
        }
    }
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", s.program.display()));
    hello_from(events, &name).await;
    s.hello_ms.push(t.elapsed().as_secs_f64() * 1e3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.rss.push(Memory::of(child.id()).unwrap_or_default());
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

fn summary(s: &Series) -> Value {
    let pick = |f: fn(&Memory) -> f64| median(s.rss.iter().map(f).collect());
    json!({
        "start_to_hello_ms_p50": round1(median(s.hello_ms.clone())),
        "start_to_hello_ms_max": round1(s.hello_ms.iter().copied().fold(0.0, f64::max)),
        "idle_rss_kib_p50": pick(|m| m.total),
        "idle_rss_anon_kib_p50": pick(|m| m.anon),
        "idle_rss_file_kib_p50": pick(|m| m.file),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, _broker) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let runs = number_arg(&args, "--runs", 7).max(1);
    let load = load_average();
    let node = sibling("custom_node");
    require(&node, "mqttcal-examples");
    let bare = sibling("bare_client");
    require(&bare, "mqttcal-benches");
    let mut series = vec![
        Series {
            label: "custom_node",
            program: node,
            hello_ms: Vec::new(),
            rss: Vec::new(),
        },
        Series {
            label: "bare_client",
            program: bare,
            hello_ms: Vec::new(),
            rss: Vec::new(),
        },
    ];
    let cli = sibling("mqttcal");
    if cli.exists() {
        series.push(Series {
            label: "mqttcal_run_base",
            program: cli,
            hello_ms: Vec::new(),
            rss: Vec::new(),
        });
    }
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let mut watch = MqttTransport::new(cfg)
        .connect(SessionSpec::new(
            format!("startup-watch-{}", std::process::id()),
            vec![Subscription::new("announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    for round in 0..runs {
        let n = series.len();
        for k in 0..n {
            // Alternate the order from round to round, so neither is always first.
            let i = if round % 2 == 0 { k } else { n - 1 - k };
            measure(&mut series[i], &url, round, &mut watch.events).await;
        }
    }
    let ratio = |f: fn(&Memory) -> f64| {
        let per_round: Vec<f64> = series[0]
            .rss
            .iter()
            .zip(&series[1].rss)
            .map(|(a, b)| f(a) / f(b).max(1.0))
            .collect();
        (median(per_round) * 1000.0).round() / 1000.0
    };
    let hello_ratio = {
        let per_round: Vec<f64> = series[0]
            .hello_ms
            .iter()
            .zip(&series[1].hello_ms)
            .map(|(a, b)| a / b.max(0.001))
            .collect();
        (median(per_round) * 100.0).round() / 100.0
    };
    let mut out = json!({
        "bench": "startup",
        "broker": url,
        "load_average": load,
        "runs": runs,
        "rss_ratio_node_to_bare_p50": ratio(|m| m.total),
        "hello_ratio_node_to_bare_p50": hello_ratio,
    });
    for s in &series {
        out[s.label] = summary(s);
    }
    println!("{out}");
}
