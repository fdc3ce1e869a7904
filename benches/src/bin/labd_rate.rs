//! Readings per second through labd against the same readings taken from the simulated DMM
//! directly, in one run, at realistic instrument timing.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin labd_rate -- --mosquitto nodelay --n 40
//!
//! Direct: the 3458A driver configures the simulated DMM and takes `n` readings (`TRIG SGL`).
//! Through labd: a client asks labd to `measure` with `repetitions: n`; the time runs from
//! the request to the `n`-th reading on `meas`. Same simulator, same NPLC, same settling.
//! Prints one JSON line with both rates and labd's overhead.

use std::time::{Duration, Instant};

use mqttcal_benches::{broker_from_args, number_arg, round1};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, MqttTransport, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::Client;
use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458, ScpiScanner, Switch};
use mqttcal_instruments::interface::TcpInterface;
use mqttcal_instruments::sim::{LabParams, SimLab};
use mqttcal_nodes::labd::{self, LabdConfig};
use serde_json::json;

const NPLC: f64 = 1.0;

async fn direct(lab: &SimLab, n: usize) -> f64 {
    let link = |port| TcpInterface::connect("127.0.0.1", port, Duration::from_secs(3));
    let mut scanner = ScpiScanner::new(Box::new(link(lab.scanner_x.addr().port()).await.unwrap()));
    scanner.connect(1).await.unwrap().unwrap();
    let mut dmm = Hp3458::new(Box::new(link(lab.hp3458.addr().port()).await.unwrap()));
    dmm.configure(&DmmConfig {
        range: 10.0,
        nplc: NPLC,
        ndigits: 8,
    })
    .await
    .unwrap()
    .unwrap();
    let t = Instant::now();
    for _ in 0..n {
        dmm.read().await.unwrap().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

async fn through_labd(url: &str, n: usize) -> f64 {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    let transport = MqttTransport::new(cfg);
    let mut meas = transport
        .connect(SessionSpec::new(
            format!("labd-rate-watch-{}", std::process::id()),
            vec![Subscription::new("meas", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    let client = Client::connect(&transport, &format!("labd-rate-{}", std::process::id()), "")
        .await
        .unwrap();
    // Warm up: connect the instruments and set the route.
    client
        .context()
        .request_timeout(
            "labd",
            "measure",
            json!({"src": "Z1", "NPLC": NPLC, "repetitions": 1}),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    while let Ok(Some(_)) =
        tokio::time::timeout(Duration::from_millis(200), meas.events.recv()).await
    {}
    let t = Instant::now();
    let ctx = client.context().clone();
    let call = tokio::spawn(async move {
        ctx.request_timeout(
            "labd",
            "measure",
            json!({"src": "Z1", "NPLC": NPLC, "repetitions": n}),
            Duration::from_secs(600),
        )
        .await
    });
    let mut seen = 0;
    let mut call = Some(call);
    while seen < n {
        tokio::select! {
            ev = meas.events.recv() => match ev {
                Some(Event::Message { payload, .. }) => {
                    let env = Envelope::decode(&payload, usize::MAX).unwrap();
                    if env.fields.contains_key("DC-measurement") {
                        seen += 1;
                    }
                }
                Some(_) => {}
                None => panic!("the `meas` subscription ended after {seen} of {n} readings"),
            },
            // A call that ends before its readings arrived failed: say why instead of
            // waiting for readings that never come.
            done = async { call.as_mut().unwrap().await }, if call.is_some() => {
                call = None;
                if let Err(e) = done.unwrap() {
                    panic!("labd refused `measure` after {seen} of {n} readings: {e}");
                }
            }
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    if let Some(call) = call {
        call.await.unwrap().unwrap();
    }
    client.close().await;
    rate
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, _broker) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let n = number_arg(&args, "--n", 40);
    let lab = SimLab::start(LabParams::default(), "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let node = labd::node("labd", LabdConfig::for_sim_lab(&lab))
        .build()
        .start(&MqttTransport::new(cfg))
        .await
        .unwrap();
    let direct_rate = direct(&lab, n).await;
    let labd_rate = through_labd(&url, n).await;
    node.stop().await.unwrap();
    println!(
        "{}",
        json!({
            "bench": "labd_rate",
            "broker": url,
            "n": n,
            "nplc": NPLC,
            "direct_per_s": (direct_rate * 100.0).round() / 100.0,
            "labd_per_s": (labd_rate * 100.0).round() / 100.0,
            "labd_overhead_pct": round1((direct_rate / labd_rate - 1.0) * 100.0),
        })
    );
}
