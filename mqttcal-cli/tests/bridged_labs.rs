//! Two labs and a central site, each with a Mosquitto of the production settings; each
//! lab's broker bridged to the central one with the shipped `deploy/mosquitto/bridge.conf`
//! (its TLS and login lines aside). In each lab `mqttcal run labd` (with an outbox) streams
//! 10,000 readings of its own simulated instruments; one `mqttcal run datad` with
//! `labs: true` at the central site stores them in PostgreSQL. Mid-stream the central
//! broker restarts (every bridge drops and reconnects), then lab A's broker restarts.
//! Afterwards the central datad holds each lab's 10,000 readings exactly once, under
//! `lab-a/labd` and `lab-b/labd`; a central client reaches each lab's labd through its
//! bridge; and a `stop` to `*` in lab A stops lab A's labd and leaves lab B's running.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, Link, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::Client;
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const READINGS: u64 = 10_000;

/// The shipped bridge for lab `lab` to the central broker on `port`: the lab's name and
/// the address replaced, the TLS and login lines left out (the test brokers are plain
/// loopback listeners).
fn bridge(lab: &str, port: u16) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto/bridge.conf");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let conf: Vec<String> = text
        .lines()
        .filter(|l| {
            let key = l.split_whitespace().next().unwrap_or("#");
            !key.starts_with('#')
                && !matches!(
                    key,
                    "remote_username" | "remote_password" | "bridge_cafile" | "bridge_insecure"
                )
        })
        .map(|l| match l.split_whitespace().next() {
            Some("address") => format!("address 127.0.0.1:{port}"),
            _ => l.replace("lab-a", lab),
        })
        .collect();
    assert!(conf.iter().any(|l| l.starts_with("topic meas/# out 1")));
    conf.join("\n")
}

fn spawn(url: &str, config: &Path, kind: &str, database: &str, log: &Path) -> Proc {
    run_node(url, config, kind, &[], database, log)
}

/// A lab: its broker, simulated instruments and labd's process.
struct Lab {
    name: &'static str,
    broker: Mosquitto,
    _sims: Proc,
    labd: Proc,
}

/// Distinct readings stored for `origin`, and rows.
fn stored(pg: &Postgres, origin: &str) -> (u64, u64) {
    let out = pg.psql(
        "central",
        &format!(
            "SELECT count(DISTINCT dedup_key), count(*) FROM measurements WHERE origin = '{origin}'"
        ),
    );
    let (distinct, rows) = out.trim().split_once('|').unwrap();
    (distinct.parse().unwrap(), rows.parse().unwrap())
}

async fn watch_labs(url: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            "central-watch",
            vec![Subscription::new("+/announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap()
}

/// Waits for `hello` from `from` on `topic` (a lab's `announce` at the central site).
async fn expect_hello(link: &mut Link, topic: &str, from: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(end, link.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no `hello` from `{from}` on `{topic}`"))
            .expect("link closed");
        if let Event::Message {
            topic: t, payload, ..
        } = ev
        {
            let env = Envelope::decode(&payload, usize::MAX).unwrap();
            if t == topic && env.from == from && env.message.as_deref() == Some("hello") {
                return;
            }
        }
    }
}

/// A central client of lab `lab` (through its bridge): `ping` to its labd.
async fn ping_through_bridge(url: &str, lab: &str) -> Result<serde_json::Value, String> {
    let c = Client::connect(&transport(url), &format!("hq-{lab}"), lab)
        .await
        .unwrap();
    let r = c
        .context()
        .request_timeout("labd", "ping", json!({}), Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string());
    c.close().await;
    r
}

async fn wait_stored(pg: &Postgres, origin: &str, at_least: u64, what: &str) {
    let end = Instant::now() + Duration::from_secs(120);
    while stored(pg, origin).0 < at_least {
        assert!(
            Instant::now() < end,
            "{what}: {origin} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridged_labs_feed_one_central_datad_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut central = Mosquitto::start(BrokerKind::Production);
    let pg = Postgres::start();
    let database = pg.create_database("central");
    let datad_yaml = dir.path().join("datad.yaml");
    std::fs::write(&datad_yaml, "datad:\n  labs: true\n").unwrap();
    let datad_log = dir.path().join("datad.log");
    let mut watch = watch_labs(&central.url()).await;
    let _datad = spawn(&central.url(), &datad_yaml, "datad", &database, &datad_log);

    let mut labs = Vec::new();
    for name in ["lab-a", "lab-b"] {
        let broker = Mosquitto::start_with(BrokerKind::Production, &bridge(name, central.port()));
        let (sims, section) = spawn_sim_lab("0.0005", &dir.path().join(format!("{name}-sims.log")));
        let config = dir.path().join(format!("{name}.yaml"));
        let outbox = dir.path().join(format!("{name}.outbox"));
        std::fs::write(
            &config,
            format!("{section}  outbox:\n    path: \"{}\"\n", outbox.display()),
        )
        .unwrap();
        let log = dir.path().join(format!("{name}-labd.log"));
        let labd = spawn(&broker.url(), &config, "labd", &database, &log);
        expect_hello(&mut watch, &format!("{name}/announce"), "labd").await;
        labs.push(Lab {
            name,
            broker,
            _sims: sims,
            labd,
        });
    }
    let logs = |dir: &Path| log_tails(dir, &["datad.log", "lab-a-labd.log", "lab-b-labd.log"]);

    // Requests and replies cross the bridges: the central site calls each lab's labd.
    for lab in &labs {
        let pong = ping_through_bridge(&central.url(), lab.name).await;
        assert!(pong.is_ok(), "{}: {pong:?}", lab.name);
    }

    // Each lab streams 10,000 readings (the report's trigger on its own broker).
    for lab in &labs {
        let c = client(&lab.broker.url()).await;
        c.context()
            .send(
                "meas",
                "labd",
                json!({"cmd": "measure", "src": "Z1", "repetitions": READINGS}),
            )
            .await
            .unwrap();
        c.close().await;
    }
    wait_stored(&pg, "lab-a/labd", 2_500, "before the central restart").await;
    let t = Instant::now();
    central.restart();
    println!("central broker restarted in {:?}", t.elapsed());
    wait_stored(&pg, "lab-a/labd", 6_000, "before lab A's restart").await;
    let t = Instant::now();
    labs[0].broker.restart();
    println!("lab A's broker restarted in {:?}", t.elapsed());

    let t = Instant::now();
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let a = stored(&pg, "lab-a/labd");
        let b = stored(&pg, "lab-b/labd");
        if a.0 >= READINGS && b.0 >= READINGS {
            break;
        }
        assert!(
            Instant::now() < end,
            "lab A {a:?}, lab B {b:?} of {READINGS} after 120 s\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("both labs complete {:?} after lab A's restart", t.elapsed());
    for lab in ["lab-a", "lab-b"] {
        let origin = format!("{lab}/labd");
        assert_eq!(
            stored(&pg, &origin),
            (READINGS, READINGS),
            "{origin}: exactly once\n{}",
            logs(dir.path())
        );
    }
    let others = pg.psql(
        "central",
        "SELECT count(*) FROM measurements WHERE origin NOT IN ('lab-a/labd', 'lab-b/labd')",
    );
    assert_eq!(others.trim(), "0", "nothing stored without its lab");

    // A `stop` to `*` in lab A stays there.
    let admin = Client::connect(&transport(&labs[0].broker.url()), "admin", "")
        .await
        .unwrap();
    admin
        .context()
        .send("system", "*", json!({"cmd": "stop"}))
        .await
        .unwrap();
    admin.close().await;
    assert_eq!(
        labs[0].labd.wait_exit(Duration::from_secs(10)),
        Some(0),
        "lab A's labd stops"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        labs[1].labd.0.try_wait().unwrap().is_none(),
        "lab B's labd runs on"
    );
    let pong = ping_through_bridge(&central.url(), "lab-b").await;
    assert!(pong.is_ok(), "lab B answers: {pong:?}");
    let c = client(&central.url()).await;
    let stats = c
        .context()
        .request_timeout("datad", "stats", json!({}), Duration::from_secs(5))
        .await
        .unwrap();
    let missing = stats["missing"].as_object().unwrap();
    assert!(
        missing.values().all(|n| n == 0),
        "datad counts nothing missing: {stats}"
    );
}
