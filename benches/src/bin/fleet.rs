//! A thousand nodes on one Mosquitto: a broadcast gathers them all, a call to one of them
//! costs what it costs with two nodes, and the broker drops nothing.
//!
//! Run with: `cargo run --release -p mqttcal-benches --bin fleet -- --nodes 1000`
//!
//! Two private Mosquittos with the shipped production configuration (`$SYS` every second):
//! on the *pair* broker, a node `target` and a client; on the *fleet* broker, `target`,
//! `--nodes` minus one other nodes (all in this process, each with its own connection) and
//! a client. Each client first calls `target` a few times (so that it learns `target`
//! reads its own topic), then the two clients call `ping` on their `target` in alternating
//! blocks of `--block` calls (default 100; `--blocks` pairs, default 20), so both see the
//! same machine. On the fleet broker `map '*'` then gathers every node, three times.
//!
//! One JSON line: the nodes, their start time and this process's memory per node; per
//! broker the p50 and p99 of the calls and the median, lowest and highest per-block ratio
//! (fleet over pair); the time each `map '*'` took to gather all the nodes; and how many
//! messages each broker dropped over the run (`$SYS/broker/publish/messages/dropped`).

use std::time::{Duration, Instant};

use mqttcal_benches::{load_average, number_arg, round1};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::Transport;
use mqttcal_core::transport::{Event, MqttTransport, QoS, SessionSpec, Subscription};
use mqttcal_core::{Client, Gather, NodeBuilder, NodeHandle};
use mqttcal_testkit::{rss_kib, BrokerKind, Mosquitto};
use serde_json::json;

/// The broker's `$SYS` counter of the messages it dropped.
const DROPPED: &str = "$SYS/broker/publish/messages/dropped";

fn transport(url: &str) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(10))
}

/// Starts `n` nodes named `fleet-<i>` (and `target` first), 50 at a time.
async fn start_nodes(url: &str, n: usize) -> Vec<NodeHandle> {
    let mut nodes = Vec::with_capacity(n);
    let names: Vec<String> = std::iter::once("target".to_owned())
        .chain((1..n).map(|i| format!("fleet-{i}")))
        .collect();
    for chunk in names.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for name in chunk {
            let transport = transport(url);
            let name = name.clone();
            set.spawn(async move { NodeBuilder::new(&name).build().start(&transport).await });
        }
        while let Some(started) = set.join_next().await {
            nodes.push(started.unwrap().expect("a node starts"));
        }
    }
    nodes
}

/// The broker's count of the messages it dropped, as it last published it (Mosquitto
/// keeps the `$SYS` topics retained and updates them every `sys_interval`, 1 s here, when
/// they change): read by a fresh connection, which gets the retained value at once.
async fn dropped(url: &str) -> u64 {
    let mut link = transport(url)
        .connect(SessionSpec::new(
            format!("fleet-bench-sys-{}", std::process::id()),
            vec![Subscription::new(DROPPED, QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let n = loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), link.events.recv())
            .await
            .expect("the broker keeps its $SYS counters retained")
            .expect("the $SYS connection ended");
        if let Event::Message { payload, .. } = ev {
            if let Ok(n) = std::str::from_utf8(&payload).unwrap_or("").trim().parse() {
                break n;
            }
        }
    };
    let _ = link.publisher.disconnect().await;
    n
}

/// `n` sequential `ping`s of `target`: each one's time.
async fn pings(client: &Client, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .context()
            .request_timeout("target", "ping", json!({}), Duration::from_secs(5))
            .await
            .expect("target answers");
        out.push(t.elapsed());
    }
    out
}

fn percentile(samples: &[Duration], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = number_arg(&args, "--nodes", 1000).max(2);
    let blocks = number_arg(&args, "--blocks", 20).max(1);
    let block = number_arg(&args, "--block", 100).max(10);
    let load = load_average();

    let pair_broker = Mosquitto::start(BrokerKind::Production);
    let fleet_broker = Mosquitto::start(BrokerKind::Production);
    let (pair_url, fleet_url) = (pair_broker.url(), fleet_broker.url());
    let dropped_before = (dropped(&pair_url).await, dropped(&fleet_url).await);

    let rss_before = rss_kib(std::process::id()).unwrap_or(0);
    let pair_nodes = start_nodes(&pair_url, 1).await;
    let t = Instant::now();
    let fleet_nodes = start_nodes(&fleet_url, n).await;
    let fleet_start = t.elapsed();
    let rss_after = rss_kib(std::process::id()).unwrap_or(0);
    eprintln!("fleet: {n} nodes started in {fleet_start:.1?}");

    let pair = Client::connect(&transport(&pair_url), "fleet-bench-pair", "")
        .await
        .unwrap();
    let fleet = Client::connect(&transport(&fleet_url), "fleet-bench-fleet", "")
        .await
        .unwrap();
    pings(&pair, 50).await;
    pings(&fleet, 50).await;

    let (mut pair_samples, mut fleet_samples, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..blocks {
        let (p, f) = if b % 2 == 0 {
            let p = pings(&pair, block).await;
            (p, pings(&fleet, block).await)
        } else {
            let f = pings(&fleet, block).await;
            (pings(&pair, block).await, f)
        };
        ratios.push(percentile(&f, 0.5) / percentile(&p, 0.5));
        pair_samples.extend(p);
        fleet_samples.extend(f);
    }
    ratios.sort_by(f64::total_cmp);

    let mut gathers = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let replies = fleet
            .context()
            .request_envelopes(
                "*",
                "map",
                Default::default(),
                Gather {
                    timeout: Duration::from_secs(10),
                    expect: Some(n),
                },
            )
            .await
            .unwrap();
        let took = t.elapsed();
        eprintln!("map '*': {} of {n} nodes in {took:.1?}", replies.len());
        gathers.push(json!({"nodes": replies.len(), "ms": round1(took.as_secs_f64() * 1e3)}));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The counters as the broker publishes them after everything sent so far.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let dropped_after = (dropped(&pair_url).await, dropped(&fleet_url).await);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "bench": "fleet",
            "load_average": load,
            "nodes": n,
            "fleet_start_s": round1(fleet_start.as_secs_f64()),
            "rss_kib_per_node": (rss_after.saturating_sub(rss_before)) / n as u64,
            "calls_per_broker": pair_samples.len(),
            "pair": {
                "p50_us": round1(percentile(&pair_samples, 0.5)),
                "p99_us": round1(percentile(&pair_samples, 0.99)),
            },
            "fleet": {
                "p50_us": round1(percentile(&fleet_samples, 0.5)),
                "p99_us": round1(percentile(&fleet_samples, 0.99)),
            },
            "ratio_fleet_to_pair": {
                "median": r(ratios[(ratios.len() - 1) / 2]),
                "min": r(ratios[0]),
                "max": r(ratios[ratios.len() - 1]),
            },
            "map_all": gathers,
            "dropped": {
                "pair": dropped_after.0.saturating_sub(dropped_before.0),
                "fleet": dropped_after.1.saturating_sub(dropped_before.1),
            },
        })
    );
    pair.close().await;
    fleet.close().await;
    for node in pair_nodes.into_iter().chain(fleet_nodes) {
        let _ = node.stop().await;
    }
}
