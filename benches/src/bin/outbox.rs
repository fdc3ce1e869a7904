//! What a durable outbox costs a publishing node: `Context::publish` of labd-style readings
//! by a node without an outbox, one with an outbox, and one with `sync: true`, in
//! alternating blocks in one run on one broker.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin outbox -- [--mosquitto production]
//! [--rounds 15] [--block 2000]
//!
//! Each block publishes `block` readings (fewer than the transport queues, so that the time
//! is the publishing node's own work, not the broker's pace), timed, and then waits,
//! untimed, until the broker has them all; the three nodes take turns, block after block.
//! Prints
//! one JSON line: readings per second of each (the median of the blocks), the median of
//! the per-round ratios to the node without an outbox, and the load average.

use std::time::{Duration, Instant};

use mqttcal_benches::{broker_from_args, load_average, number_arg};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::outbox::OutboxConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{NodeBuilder, NodeHandle};
use serde_json::json;

fn reading(i: usize) -> serde_json::Value {
    json!({
        "DC-measurement": 10.000_012_3 + i as f64 * 1e-9,
        "unit": "V",
        "OriginUID": ["SIM-DCV", "3458A", "2823A12345"],
        "NPLC": 1.0, "Ndigits": 8, "range": 10.0,
        "mode": "absolute", "pol": "+", "src": ["Z1"],
        "index": i, "acquired": 1_764_000_000.25,
        "raw": "+1.000001230E+01",
        "environment": {"temperature": 23.01, "humidity": 45.2, "pressure": 1013.2}
    })
}

/// Publishes a block; its readings per second (the publishing alone: appending to the
/// outbox, and with `sync` its `fdatasync`, included), then waits untimed until the broker
/// has them (the node's `ping` shows its outbox empty; without one, a `ping` round trip).
async fn block(node: &NodeHandle, probe: &mqttcal_core::Client, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        node.context().publish("meas", reading(i)).await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    loop {
        let pong = probe
            .context()
            .request_timeout(
                node.context().name(),
                "ping",
                json!({}),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        if pong["outbox"].as_u64().unwrap_or(0) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The broker's backlog from this block is gone before the next node's turn.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--broker" || a == "--mosquitto") {
        args.extend(["--mosquitto".into(), "production".into()]);
    }
    let (url, _broker) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let rounds = number_arg(&args, "--rounds", 15);
    let n = number_arg(&args, "--block", 2000);
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let transport = MqttTransport::new(cfg);
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str, outbox: Option<OutboxConfig>| {
        let builder = NodeBuilder::new(name);
        let builder = match outbox {
            Some(o) => builder.outbox(o),
            None => builder,
        };
        builder.build().start(&transport)
    };
    let plain = start("bench-plain", None).await.unwrap();
    let kept = start(
        "bench-outbox",
        Some(OutboxConfig::new(dir.path().join("a.outbox"))),
    )
    .await
    .unwrap();
    let synced = start(
        "bench-sync",
        Some(OutboxConfig::new(dir.path().join("b.outbox")).sync(true)),
    )
    .await
    .unwrap();
    let probe = mqttcal_core::Client::connect(&transport, "bench-outbox-probe", "")
        .await
        .unwrap();
    eprintln!("outbox: {rounds} rounds of {n} readings each, broker {url}");
    let (mut p, mut o, mut s) = (Vec::new(), Vec::new(), Vec::new());
    // A round to warm up, not counted.
    for round in 0..=rounds {
        let rates = [
            block(&plain, &probe, n).await,
            block(&kept, &probe, n).await,
            block(&synced, &probe, n).await,
        ];
        if round > 0 {
            p.push(rates[0]);
            o.push(rates[1]);
            s.push(rates[2]);
        }
    }
    let ratio = |x: &[f64]| median(x.iter().zip(&p).map(|(a, b)| a / b).collect());
    println!(
        "{}",
        json!({
            "bench": "outbox",
            "block": n,
            "rounds": rounds,
            "plain_per_s": median(p.clone()).round(),
            "outbox_per_s": median(o.clone()).round(),
            "outbox_sync_per_s": median(s.clone()).round(),
            "outbox_ratio": (ratio(&o) * 1000.0).round() / 1000.0,
            "outbox_sync_ratio": (ratio(&s) * 1000.0).round() / 1000.0,
            "load": load_average(),
        })
    );
    for node in [plain, kept, synced] {
        node.stop().await.unwrap();
    }
    probe.close().await;
}
