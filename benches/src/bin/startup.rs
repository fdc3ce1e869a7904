//! A node's time from process start to its `hello`, and its idle resident memory.
//!
//! Run with: cargo build --release -p mqttcal-cli -p mqttcal-benches &&
//! target/release/startup --mosquitto stock --runs 5
//!
//! Starts `mqttcal run base` (found next to this binary, or `--mqttcal PATH`) `--runs` times,
//! measures from spawn to its `hello` on `announce`, reads VmRSS from /proc after 2 s idle,
//! and prints one JSON line with the medians.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqttcal_benches::{broker_from_args, mqttcal_binary, number_arg, round1};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, MqttTransport, QoS, SessionSpec, Subscription, Transport};
use mqttcal_testkit::rss_kib;
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, _broker) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let runs = number_arg(&args, "--runs", 5).max(1);
    let mqttcal = mqttcal_binary(&args);
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let mut watch = MqttTransport::new(cfg)
        .connect(SessionSpec::new(
            format!("startup-watch-{}", std::process::id()),
            vec![Subscription::new("announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    let (mut hello_ms, mut rss) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("startup-{}-{i}", std::process::id());
        let t = Instant::now();
        let mut child = Command::new(&mqttcal)
            .args(["--broker", &url, "run", "base", "--name", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), watch.events.recv())
                .await
                .expect("no hello within 10 s")
                .unwrap();
            if let Event::Message { payload, .. } = ev {
                let env = Envelope::decode(&payload, usize::MAX).unwrap();
                if env.from == name && env.message.as_deref() == Some("hello") {
                    break;
                }
            }
        }
        hello_ms.push(t.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push(rss_kib(child.id()).unwrap_or(0) as f64);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
    println!(
        "{}",
        json!({
            "bench": "startup",
            "broker": url,
            "runs": runs,
            "start_to_hello_ms_p50": round1(median(hello_ms)),
            "idle_rss_kib_p50": median(rss),
        })
    );
}
