//! Request/reply round trips: a mqttcal node against a raw MQTT echo, in one run.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin rr -- --mosquitto stock --n 2000
//! (or `--mosquitto nodelay`, or `--broker mqtt://host:port` for a broker of your own).
//!
//! The raw echo is two plain rumqttc clients (TCP_NODELAY on, like our transport): one
//! publishes a payload on `rr/req` and waits for it on `rr/rep`, the other echoes it; no
//! JSON. The mqttcal series is a client calling a node's `echo` capability with the same
//! payload. Both run at QoS 0 and at QoS 1, interleaved, after a warm-up. One JSON line:
//! each series' p50, p99, max and sequential requests/s, and `p50_ratio_qos0`,
//! `p50_ratio_qos1` (ours over raw).

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttcal_benches::{broker_from_args, number_arg, Stats};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::{MqttTransport, QoS};
use mqttcal_core::{Client, NodeBuilder, NodeError};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn raw_client(host: &str, port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    (c, el)
}

/// Drives an event loop, forwarding publishes on `tx`; signals the first SUBACK on `ready`.
fn drive(
    mut el: rumqttc::EventLoop,
    tx: mpsc::UnboundedSender<Bytes>,
    ready: mpsc::UnboundedSender<()>,
) {
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Packet::Publish(p)) if tx.send(p.payload.clone()).is_err() => {
                    return
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = ready.send(());
                }
                _ => {}
            }
        }
    });
}

async fn raw_series(
    ping: &AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<Bytes>,
    qos: rumqttc::QoS,
    count: usize,
) -> (Vec<Duration>, Duration) {
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let payload = Bytes::from_static(PAYLOAD.as_bytes());
        ping.publish_bytes("rr/req", qos, false, payload)
            .await
            .unwrap();
        replies.recv().await.unwrap();
        samples.push(t.elapsed());
    }
    (samples, start.elapsed())
}

async fn raw_echo(host: &str, port: u16, qos: rumqttc::QoS, n: usize) -> Stats {
    let tag = format!("{}-{:?}", std::process::id(), qos);
    let (echo, el) = raw_client(host, port, &format!("rr-echo-{tag}"));
    let (etx, mut erx) = mpsc::unbounded_channel();
    let (rtx, mut ready) = mpsc::unbounded_channel();
    drive(el, etx, rtx.clone());
    echo.subscribe("rr/req", qos).await.unwrap();
    ready.recv().await;
    let echo2 = echo.clone();
    tokio::spawn(async move {
        while let Some(p) = erx.recv().await {
            if echo2.publish_bytes("rr/rep", qos, false, p).await.is_err() {
                return;
            }
        }
    });
    let (ping, el) = raw_client(host, port, &format!("rr-ping-{tag}"));
    let (ptx, mut prx) = mpsc::unbounded_channel();
    drive(el, ptx, rtx);
    ping.subscribe("rr/rep", qos).await.unwrap();
    ready.recv().await;
    raw_series(&ping, &mut prx, qos, n / 10 + 10).await;
    let (samples, total) = raw_series(&ping, &mut prx, qos, n).await;
    let _ = ping.disconnect().await;
    let _ = echo.disconnect().await;
    Stats::of(samples, total)
}

async fn mqttcal_echo(url: &str, qos: QoS, n: usize) -> Stats {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    let transport = MqttTransport::new(cfg);
    let tag = format!("{}-{:?}", std::process::id(), qos);
    let node_name = format!("rr-node-{tag}");
    let node = NodeBuilder::new(node_name.clone())
        .control_qos(qos)
        .capability(
            "echo",
            "Return the parameters",
            |p: Map<String, Value>, _ctx| async move { Ok::<_, NodeError>(Value::Object(p)) },
        )
        .build()
        .start(&transport)
        .await
        .unwrap();
    let client = Client::connect_as(
        &transport,
        NodeBuilder::new(format!("rr-client-{tag}")).control_qos(qos),
    )
    .await
    .unwrap();
    let ctx = client.context().clone();
    let params = json!({ "payload": PAYLOAD });
    let series = |count: usize| {
        let ctx = ctx.clone();
        let params = params.clone();
        let node_name = node_name.clone();
        async move {
            let mut samples = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                let t = Instant::now();
                ctx.request(&node_name, "echo", &params).await.unwrap();
                samples.push(t.elapsed());
            }
            (samples, start.elapsed())
        }
    };
    series(n / 10 + 10).await;
    let (samples, total) = series(n).await;
    client.close().await;
    node.stop().await.unwrap();
    Stats::of(samples, total)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, _broker) = match broker_from_args(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let n = number_arg(&args, "--n", 2000);
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let (host, port) = (cfg.hostname.clone(), cfg.port);

    let raw0 = raw_echo(&host, port, rumqttc::QoS::AtMostOnce, n).await;
    let ours0 = mqttcal_echo(&url, QoS::AtMostOnce, n).await;
    let raw1 = raw_echo(&host, port, rumqttc::QoS::AtLeastOnce, n).await;
    let ours1 = mqttcal_echo(&url, QoS::AtLeastOnce, n).await;
    let line = json!({
        "bench": "rr",
        "broker": url,
        "n": n,
        "raw_qos0": raw0.json(),
        "mqttcal_qos0": ours0.json(),
        "raw_qos1": raw1.json(),
        "mqttcal_qos1": ours1.json(),
        "p50_ratio_qos0": ratio(ours0.p50_us, raw0.p50_us),
        "p50_ratio_qos1": ratio(ours1.p50_us, raw1.p50_us),
    });
    println!("{line}");
}

/// `ours / raw`, to three decimals.
fn ratio(ours: f64, raw: f64) -> f64 {
    (ours / raw * 1000.0).round() / 1000.0
}
