//! Helpers for the tests: clients and the reference nodes on a broker.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::{Duration, Instant};

use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{
    Event, Link, MqttTransport, QoS, SessionSpec, Subscription, Transport,
};
use mqttcal_core::Client;

pub fn transport(url: &str) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

/// A TLS transport to a secured test broker, logged in as `user` (anonymous without).
pub fn tls(broker: &mqttcal_testkit::Mosquitto, user: Option<&str>) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&broker.url()).unwrap();
    cfg.ca_cert = Some(broker.ca_cert());
    cfg.username = user.map(str::to_owned);
    cfg.password = Some(mqttcal_testkit::Mosquitto::PASSWORD.into());
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

pub async fn client(url: &str) -> Client {
    Client::connect(&transport(url), &format!("test-{}", std::process::id()), "")
        .await
        .unwrap()
}

/// A raw subscription to `announce`.
pub async fn watch_announce(url: &str, id: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            id,
            vec![Subscription::new("announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap()
}

/// Waits for an announcement from `from` whose `message` is `message`.
pub async fn expect_announce(
    link: &mut Link,
    from: &str,
    message: &str,
    timeout: Duration,
) -> Envelope {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(end, link.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no `{message}` from `{from}` within {timeout:?}"))
            .expect("link closed");
        if let Event::Message { payload, .. } = ev {
            let env = Envelope::decode(&payload, usize::MAX).unwrap();
            if env.from == from && env.message.as_deref() == Some(message) {
                return env;
            }
        }
    }
}

/// Waits until `node` answers ping.
pub async fn wait_ping(c: &Client, node: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while c
        .context()
        .request_timeout(
            node,
            "ping",
            serde_json::json!({}),
            Duration::from_millis(300),
        )
        .await
        .is_err()
    {
        assert!(Instant::now() < end, "`{node}` never answered ping");
    }
}

/// A SQLite store in `dir`.
pub async fn sqlite_store(
    dir: &tempfile::TempDir,
    name: &str,
) -> std::sync::Arc<dyn mqttcal_store::Store> {
    let target = format!("sqlite:{}", dir.path().join(format!("{name}.db")).display());
    mqttcal_store::open(&target).await.unwrap()
}

/// datad with the default settings on the broker at `url`.
pub async fn start_datad(
    url: &str,
    store: std::sync::Arc<dyn mqttcal_store::Store>,
) -> mqttcal_core::NodeHandle {
    let config = mqttcal_nodes::datad::DatadConfig::default();
    mqttcal_nodes::datad::node("datad", &config, store)
        .build()
        .start(&transport(url))
        .await
        .unwrap()
}

/// logd on the broker at `url`, signing checkpoints with `signer` if given.
pub async fn start_logd(
    url: &str,
    store: std::sync::Arc<dyn mqttcal_store::Store>,
    signer: Option<mqttcal_nodes::logd::Signer>,
) -> mqttcal_core::NodeHandle {
    mqttcal_nodes::logd::node("logd", store, signer)
        .build()
        .start(&transport(url))
        .await
        .unwrap()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    mqttcal_core::clock::Timestamp::now().as_secs_f64()
}

/// A reference `id` whose value today is `today`, drifting `per_day`, with five yearly
/// calibrations (U = 0.2 µV, k = 2) scattered by a few tens of nV.
pub async fn register_reference(c: &Client, id: &str, today: f64, per_day: f64, due: f64) {
    use serde_json::json;
    let ctx = c.context();
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": id, "kind": "standard", "serial": format!("SN-{id}"), "nominal_value": 10.0,
               "unit": "V", "calibration_due": due}),
    )
    .await
    .unwrap();
    for (i, scatter) in [30e-9, -20e-9, 10e-9, -40e-9, 25e-9].iter().enumerate() {
        let back = 365.0 * (5 - i) as f64;
        ctx.request(
            "datad",
            "add_calibration",
            json!({"equipment": id, "calibrated_at": unix_now() - back * 86_400.0,
                   "value": today - per_day * back + scatter, "unit": "V",
                   "uncertainty": 0.2e-6, "coverage_factor": 2.0}),
        )
        .await
        .unwrap();
    }
}
