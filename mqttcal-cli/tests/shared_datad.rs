//! Two datad processes share `meas` through an MQTT 5 shared subscription (`share: datad`)
//! on a Mosquitto with the production settings and one PostgreSQL of the test's own. A
//! publisher streams 10,000 readings at QoS 1; one instance is killed (SIGKILL) mid-stream
//! and started again once the stream has been sent. Afterwards every reading is stored
//! exactly once, both instances stored some, the database counts nothing missing, and the
//! time the restarted instance took to drain the share the broker kept for it is printed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::clock::Timestamp;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Outgoing, QoS, Transport};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const READINGS: u64 = 10_000;

fn spawn_datad(url: &str, config: &Path, name: &str, database: &str, log: &Path) -> Proc {
    run_node(url, config, "datad", &["--name", name], database, log)
}

/// Distinct readings stored, and rows in all.
fn stored(pg: &Postgres) -> (u64, u64) {
    let out = pg.psql(
        "shared",
        "SELECT count(DISTINCT seq), count(*) FROM measurements WHERE origin = 'labd'",
    );
    let (distinct, rows) = out.trim().split_once('|').unwrap();
    (distinct.parse().unwrap(), rows.parse().unwrap())
}

fn reading(epoch: u64, seq: u64) -> Vec<u8> {
    let mut env = Envelope::new("labd", "*");
    env.timestamp = Some(Timestamp::now());
    env.epoch = Some(epoch);
    env.seq = Some(seq);
    env.fields
        .insert("DC-measurement".into(), json!(10.0 + seq as f64 * 1e-9));
    env.fields.insert("src".into(), json!(["Z1"]));
    env.fields.insert("unit".into(), json!("V"));
    env.encode(usize::MAX).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_datads_share_the_stream_and_a_killed_one_loses_nothing() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let pg = Postgres::start();
    let database = pg.create_database("shared");
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("datad.yaml");
    std::fs::write(&config, "datad:\n  share: datad\n").unwrap();
    let logs = |dir: &Path| {
        ["datad-a", "datad-b"]
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(dir.join(format!("{n}.log")));
                format!("--- {n}\n{}", log.unwrap_or_default())
            })
            .collect::<String>()
    };
    let log_a = dir.path().join("datad-a.log");
    let log_b = dir.path().join("datad-b.log");
    let mut watch = watch_announce(&url, "shared-watch").await;
    let _a = spawn_datad(&url, &config, "datad-a", &database, &log_a);
    expect_announce(&mut watch, "datad-a", "hello", Duration::from_secs(20)).await;
    let mut b = spawn_datad(&url, &config, "datad-b", &database, &log_b);
    expect_announce(&mut watch, "datad-b", "hello", Duration::from_secs(20)).await;

    let link = transport(&url)
        .connect(mqttcal_core::transport::SessionSpec::new(
            "shared-publisher",
            vec![],
        ))
        .await
        .unwrap();
    let epoch = Timestamp::now().as_micros();
    for seq in 0..READINGS {
        if seq == READINGS * 3 / 10 {
            b.signal("KILL");
            let _ = b.wait_exit(Duration::from_secs(5));
        }
        link.publisher
            .publish(Outgoing {
                topic: "meas".into(),
                payload: reading(epoch, seq).into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    // The sender's end, as labd's `bye` would say it.
    let mut bye = Envelope::new("labd", "*");
    bye.message = Some("bye".into());
    bye.epoch = Some(epoch);
    bye.fields
        .insert("seqs".into(), json!({ "meas": READINGS - 1 }));
    link.publisher
        .publish(Outgoing {
            topic: "announce".into(),
            payload: bye.encode(usize::MAX).unwrap().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        })
        .await
        .unwrap();

    // datad-a stores its share; datad-b's waits at the broker.
    let mut before = (0, 0);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = stored(&pg);
        if now == before && now.0 > 0 {
            break;
        }
        before = now;
    }
    assert!(
        before.0 < READINGS,
        "the killed instance's share should wait for it, yet all {READINGS} are stored"
    );
    let waiting = READINGS - before.0;

    let t = Instant::now();
    let _b = spawn_datad(&url, &config, "datad-b", &database, &log_b);
    let end = t + Duration::from_secs(60);
    let drained = loop {
        let (distinct, _) = stored(&pg);
        if distinct == READINGS {
            break t.elapsed();
        }
        assert!(
            Instant::now() < end,
            "{distinct} of {READINGS} stored 60 s after datad-b came back\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "shared datad: {waiting} readings waited for the killed instance; drained {:.0} ms after its restart",
        drained.as_secs_f64() * 1e3
    );

    let (distinct, rows) = stored(&pg);
    assert_eq!(
        (distinct, rows),
        (READINGS, READINGS),
        "stored exactly once"
    );
    let seqs = pg.psql(
        "shared",
        "SELECT min(seq), max(seq) FROM measurements WHERE origin = 'labd'",
    );
    assert_eq!(seqs.trim(), format!("0|{}", READINGS - 1));

    // Both shared the work, and the database counts nothing missing.
    let c = client(&url).await;
    let mut stored_by = Vec::new();
    for name in ["datad-a", "datad-b"] {
        let stats = c
            .context()
            .request_timeout(name, "stats", json!({}), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(stats["missing"], json!({}), "{name}: {stats}");
        stored_by.push(stats["stored"].as_u64().unwrap());
    }
    assert!(
        stored_by.iter().all(|&n| n > 0),
        "each instance stores a share: {stored_by:?}"
    );
    let gaps = gaps(&c, "datad-a", "labd").await;
    assert_eq!(gaps["missing"], 0, "{gaps}");
    assert_eq!(gaps["streams"][0]["state"], "closed", "{gaps}");
}
