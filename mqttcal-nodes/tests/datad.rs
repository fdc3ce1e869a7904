//! datad on a real Mosquitto, into PostgreSQL (a private cluster) and SQLite.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Outgoing, QoS, SessionSpec, Transport};
use mqttcal_core::{clock::Timestamp, NodeBuilder};
use mqttcal_store::{self as store, Store};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

async fn wait_stored(c: &mqttcal_core::Client, n: u64) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c
            .context()
            .request("datad", "stats", json!({}))
            .await
            .unwrap();
        if s["stored"].as_u64().unwrap() >= n {
            return s;
        }
        assert!(Instant::now() < end, "datad stored only {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stores_each_reading_once(store: Arc<dyn Store>) {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = start_datad(&broker.url(), store.clone()).await;
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    for i in 0..200 {
        let src = if i % 4 == 0 { "Z1" } else { "Z2" };
        source
            .context()
            .publish(
                "meas",
                json!({"DC-measurement": 10.0 + f64::from(i) * 1e-8, "src": [src], "unit": "V"}),
            )
            .await
            .unwrap();
    }
    // A trigger for labd on the same topic is not a measurement and not an error.
    source
        .context()
        .send("meas", "labd", json!({"cmd": "measure"}))
        .await
        .unwrap();
    let c = client(&broker.url()).await;
    let s = wait_stored(&c, 200).await;
    assert_eq!(s["stored"], 200);
    assert_eq!(s["missing"]["labd"].as_u64().unwrap_or(0), 0, "{s}");
    let rows = c
        .context()
        .request("datad", "query", json!({"standard": "Z1", "limit": 100}))
        .await
        .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 50);
    assert_eq!(rows[0]["origin"], "labd");
    let err = c
        .context()
        .request("datad", "query", json!({"limit": 0}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`limit`"), "{err}");
    let end = Instant::now() + Duration::from_secs(5);
    while c
        .context()
        .request("datad", "stats", json!({}))
        .await
        .unwrap()["ignored"]
        != 1
    {
        assert!(
            Instant::now() < end,
            "the trigger was not counted as ignored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.count_measurements().await.unwrap(), 200);
    node.stop().await.unwrap();
    source.stop().await.unwrap();
}

#[tokio::test]
async fn datad_stores_each_reading_once_into_postgresql() {
    let pg = Postgres::start();
    let url = pg.create_database("datad");
    stores_each_reading_once(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn datad_stores_each_reading_once_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    stores_each_reading_once(sqlite_store(&dir, "lab").await).await;
}

#[tokio::test]
async fn a_restart_of_datad_loses_nothing_and_stores_nothing_twice() {
    // The production broker settings: a stock broker would drop all but 1000 of the readings
    // queued while datad is away (see the next test).
    let broker = Mosquitto::start(BrokerKind::Production);
    let dir = tempfile::tempdir().unwrap();
    let target = format!("sqlite:{}", dir.path().join("lab.db").display());
    let store: Arc<dyn Store> = store::open(&target).await.unwrap();
    let node = start_datad(&broker.url(), store.clone()).await;
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let ctx = source.context().clone();
    let total = 3000u32;
    let publisher = tokio::spawn(async move {
        for i in 0..total {
            ctx.publish(
                "meas",
                json!({"DC-measurement": f64::from(i), "src": ["Z1"]}),
            )
            .await
            .unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    node.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let node = start_datad(&broker.url(), store.clone()).await;
    publisher.await.unwrap();
    let c = client(&broker.url()).await;
    let s = wait_stored(&c, 1).await;
    let end = Instant::now() + Duration::from_secs(30);
    while store.count_measurements().await.unwrap() < u64::from(total) {
        assert!(
            Instant::now() < end,
            "stored {} of {total}; {s}",
            store.count_measurements().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.count_measurements().await.unwrap(),
        u64::from(total),
        "exactly once"
    );
    node.stop().await.unwrap();
    source.stop().await.unwrap();
}

#[tokio::test]
async fn gaps_and_announced_tails_are_counted_per_sender() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "g").await;
    let logbook = start_logd(&broker.url(), store.clone(), None).await;
    let node = start_datad(&broker.url(), store).await;
    let raw = transport(&broker.url())
        .connect(SessionSpec::new("raw-labd", vec![]))
        .await
        .unwrap();
    let send = |topic: &str, env: Envelope| Outgoing {
        topic: topic.into(),
        payload: env.encode(usize::MAX).unwrap().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    for seq in [0u64, 1, 2, 3, 4, 7, 8, 9] {
        let mut env = Envelope::new("labx", "*");
        env.timestamp = Some(Timestamp::now());
        env.epoch = Some(42);
        env.seq = Some(seq);
        env.fields.insert("DC-measurement".into(), json!(1.0));
        raw.publisher.publish(send("meas", env)).await.unwrap();
    }
    let mut bye = Envelope::new("labx", "*");
    bye.message = Some("bye".into());
    bye.epoch = Some(42);
    bye.fields.insert("seqs".into(), json!({"meas": 12}));
    let c = client(&broker.url()).await;
    let s = wait_stored(&c, 8).await;
    assert_eq!(s["missing"]["labx"], 2, "{s}");
    raw.publisher.publish(send("announce", bye)).await.unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let s = c
            .context()
            .request("datad", "stats", json!({}))
            .await
            .unwrap();
        if s["missing"]["labx"] == 5 {
            break;
        }
        assert!(Instant::now() < end, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both losses are in the logbook.
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let entries = c
            .context()
            .request("logd", "search", json!({"kind": "gap"}))
            .await
            .unwrap();
        let texts: Vec<&str> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        if texts.len() == 2 {
            assert_eq!(
                texts,
                [
                    "2 readings from labx missing (a jump in seq)",
                    "3 readings from labx missing (announced as sent, not received)"
                ]
            );
            break;
        }
        assert!(Instant::now() < end, "{texts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A job's creation and its status changes are logbook entries too.
    for status in ["planned", "running", "running", "done"] {
        c.context()
            .request("datad", "save_job", json!({"id": "J-9", "status": status}))
            .await
            .unwrap();
    }
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let entries = c
            .context()
            .request("logd", "search", json!({"kind": "job", "reference": "J-9"}))
            .await
            .unwrap();
        let texts: Vec<&str> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .collect();
        if texts.len() >= 3 {
            assert_eq!(
                texts,
                [
                    "job J-9 created (planned)",
                    "job J-9: planned -> running",
                    "job J-9: running -> done"
                ]
            );
            break;
        }
        assert!(Instant::now() < end, "{texts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    logbook.stop().await.unwrap();
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_stock_broker_dropping_a_burst_shows_as_a_gap_of_the_exact_size() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "s").await;
    let node = start_datad(&broker.url(), store.clone()).await;
    node.stop().await.unwrap();
    // datad is away: its persistent session queues at most 1000 readings (stock limit).
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let total = 3000u32;
    for i in 0..total {
        source
            .context()
            .publish("meas", json!({"DC-measurement": f64::from(i)}))
            .await
            .unwrap();
    }
    // The source keeps running: its bye would be dropped with the rest of the burst, but it
    // answers datad's census (`ping` with its last seq).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = start_datad(&broker.url(), store.clone()).await;
    let c = client(&broker.url()).await;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c
            .context()
            .request("datad", "stats", json!({}))
            .await
            .unwrap();
        let stored = store.count_measurements().await.unwrap();
        let missing = s["missing"]["labd"].as_u64().unwrap_or(0);
        if stored > 0 && stored + missing == u64::from(total) {
            assert!(
                missing > 0,
                "the stock broker was expected to drop readings: {s}"
            );
            eprintln!("stock broker: {stored} stored, {missing} reported missing, of {total}");
            break;
        }
        assert!(
            Instant::now() < end,
            "stored {stored} + missing {missing} != {total}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.stop().await.unwrap();
}

async fn records_and_exports(store: Arc<dyn Store>) {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = start_datad(&broker.url(), store.clone()).await;
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    for i in 0..5 {
        source
            .context()
            .publish(
                "meas",
                json!({"DC-measurement": 10.0 + f64::from(i) * 1e-7, "src": ["Z1"], "unit": "V", "raw": "+1.00000E+01"}),
            )
            .await
            .unwrap();
    }
    let c = client(&broker.url()).await;
    wait_stored(&c, 5).await;
    let call = |cap: &'static str, params: Value| {
        let ctx = c.context().clone();
        async move { ctx.request("datad", cap, params).await }
    };

    call("register_equipment", json!({"id": "Z1", "kind": "standard", "model": "732B", "nominal_value": 10.0, "unit": "V"}))
        .await
        .unwrap();
    assert_eq!(
        call("equipment", json!({"id": "Z1"})).await.unwrap()["model"],
        "732B"
    );
    let err = call("add_calibration", json!({"equipment": "Z7", "calibrated_at": 1.7e9, "value": 10.0, "unit": "V", "uncertainty": 4e-7, "coverage_factor": 2.0}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`Z7` is not in the equipment register"),
        "{err}"
    );
    for (t, v) in [(1.71e9, 10.000_012_6), (1.70e9, 10.000_012_0)] {
        call("add_calibration", json!({"equipment": "Z1", "calibrated_at": t, "value": v, "unit": "V", "uncertainty": 4e-7, "coverage_factor": 2.0, "certificate": "NMI-1"}))
            .await
            .unwrap();
    }
    let history = call("history", json!({"id": "Z1"})).await.unwrap();
    assert_eq!(history[0]["value"], 10.000_012_0);
    assert_eq!(history[1]["value"], 10.000_012_6);

    let saved = call(
        "save_result",
        json!({
            "job": "J1", "quantity": "Z1 output voltage", "standard": "Z1", "value": 10.000_013,
            "unit": "V", "standard_uncertainty": 2e-7, "coverage_factor": 2.0,
            "expanded_uncertainty": 4e-7, "budget": [{"source": "reference", "u": 2e-7}],
            "software_version": "mqttcal 0.1.0"
        }),
    )
    .await
    .unwrap();
    let bad = call(
        "save_result",
        json!({
            "job": "J1", "quantity": "Z1", "value": 10.0, "unit": "V", "standard_uncertainty": 2e-7,
            "coverage_factor": 2.0, "expanded_uncertainty": 9e-7, "budget": [],
            "software_version": "mqttcal 0.1.0"
        }),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(bad.contains("expanded_uncertainty"), "{bad}");
    let results = call("results", json!({"id": "J1"})).await.unwrap();
    assert_eq!(results[0]["id"], saved["id"]);
    // A second result for the job that does not cite the first (a replay, a forgery):
    // refused; the job keeps one result.
    let again = call(
        "save_result",
        json!({
            "job": "J1", "quantity": "Z1 output voltage", "standard": "Z1", "value": 10.000_019,
            "unit": "V", "standard_uncertainty": 2e-7, "coverage_factor": 2.0,
            "expanded_uncertainty": 4e-7, "budget": [{"source": "reference", "u": 2e-7}],
            "software_version": "mqttcal 0.1.0"
        }),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(again.contains("has result"), "{again}");
    let results = call("results", json!({"id": "J1"})).await.unwrap();
    assert_eq!(results.as_array().unwrap().len(), 1);

    let stored = call("save_certificate", json!({
        "number": "C-1", "job": "J1", "issued_at": 1.76e9, "authorised_by": "A. Person",
        "data": {"customer": "ACME"},
        "documents": [{"kind": "pdf", "media_type": "application/pdf", "content": "JVBERi0xLjcK"}]
    }))
    .await
    .unwrap();
    let cert = call("certificate", json!({"id": "C-1"})).await.unwrap();
    assert_eq!(cert["content_hash"], stored["content_hash"]);
    assert_eq!(cert["documents"][0]["content"], "JVBERi0xLjcK");

    // Certificate numbers: concurrent takers never get one twice.
    let takers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(call(
                "next_certificate_number",
                json!({"series": "CAL-2026"}),
            ))
        })
        .collect();
    let mut numbers = Vec::new();
    for t in takers {
        numbers.push(t.await.unwrap().unwrap()["number"].as_u64().unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());
    let err = call(
        "next_certificate_number",
        json!({"series": "CAL 2026; DROP"}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("series"), "{err}");

    let csv = call("export", json!({"format": "csv", "standard": "Z1"}))
        .await
        .unwrap();
    assert_eq!(csv["rows"], 5);
    let text = csv["content"].as_str().unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.starts_with("origin,epoch,seq,sent_at,acquired,standard,src,value"));
    let json_page = call("export", json!({"format": "json", "limit": 2, "offset": 4}))
        .await
        .unwrap();
    assert_eq!(json_page["rows"], 1, "the last page");
    let err = call("export", json!({"format": "csv", "standrd": "Z1"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("standrd"), "{err}");
    let err = call("export", json!({"format": "xlsx"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("format"), "{err}");

    // Jobs and the configurations they ran with.
    let config = json!({"nplc": 100, "points": [10.0, 1.018], "dmm": "3458A"});
    let hash = call("save_config", json!({"body": config})).await.unwrap()["hash"].clone();
    let reordered = json!({"dmm": "3458A", "points": [10.0, 1.018], "nplc": 100});
    assert_eq!(
        call("save_config", json!({"body": reordered}))
            .await
            .unwrap()["hash"],
        hash,
        "stored once, whatever the key order"
    );
    assert_eq!(
        call("config", json!({"hash": hash})).await.unwrap()["body"],
        config
    );
    let err = call(
        "save_job",
        json!({"id": "J-1", "status": "planned", "config_hash": "beef"}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no measurement configuration `beef`"), "{err}");
    let job = json!({"id": "J-1", "procedure": "P-DCV-01", "item": "Z1", "status": "planned", "config_hash": hash});
    let first = call("save_job", job.clone()).await.unwrap();
    let mut running = job.clone();
    running["status"] = json!("running");
    let second = call("save_job", running).await.unwrap();
    assert_eq!(second["created_at"], first["created_at"]);
    let updated = |v: &Value| v["updated_at"].as_f64().expect("a time");
    assert!(updated(&second) >= updated(&first));
    assert_eq!(
        call("job", json!({"id": "J-1"})).await.unwrap()["status"],
        "running"
    );
    call("save_job", json!({"id": "J-2", "status": "planned"}))
        .await
        .unwrap();
    let planned = call("jobs", json!({"status": "planned"})).await.unwrap();
    assert_eq!(planned.as_array().unwrap().len(), 1);
    assert_eq!(planned[0]["id"], "J-2");
    assert_eq!(
        call("jobs", json!({}))
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let err = call("jobs", json!({"limit": 0}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit"), "{err}");
    let err = call("job", json!({"id": "J-404"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no job `J-404`"), "{err}");
    node.stop().await.unwrap();
    source.stop().await.unwrap();
}

#[tokio::test]
async fn records_and_exports_over_mqtt_with_postgresql() {
    let pg = Postgres::start();
    let url = pg.create_database("records");
    records_and_exports(store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn records_and_exports_over_mqtt_with_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    records_and_exports(sqlite_store(&dir, "r").await).await;
}

/// A reading no database can keep (a NUL in its raw response) and one of the wrong shape
/// are set aside: counted as rejected, not as missing, and the readings after them go in.
#[tokio::test]
async fn readings_that_can_never_be_stored_are_set_aside_and_are_no_gap() {
    let pg = Postgres::start();
    let store = store::open(&pg.create_database("aside")).await.unwrap();
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = start_datad(&broker.url(), store.clone()).await;
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    for i in 0..10 {
        let reading = match i {
            3 => json!({"DC-measurement": 10.0, "raw": "+1.0E+01\u{0}"}),
            6 => json!({"DC-measurement": 10.0, "pol": "?"}),
            _ => json!({"DC-measurement": 10.0 + f64::from(i) * 1e-8}),
        };
        source.context().publish("meas", reading).await.unwrap();
    }
    let c = client(&broker.url()).await;
    let s = wait_stored(&c, 8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s2 = c
        .context()
        .request("datad", "stats", json!({}))
        .await
        .unwrap();
    assert_eq!(s2["stored"], 8, "{s}");
    assert_eq!(s2["rejected"], 2, "{s2}");
    assert_eq!(s2["missing"]["labd"].as_u64().unwrap_or(0), 0, "{s2}");
    let seqs: Vec<u64> = c
        .context()
        .request("datad", "query", json!({"origin": "labd"}))
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1, 2, 4, 5, 7, 8, 9]);
    node.stop().await.unwrap();
    source.stop().await.unwrap();
}

/// Polls `check` on `cap` of datad until it holds (5 s at most); the last answer.
async fn until(
    c: &mqttcal_core::Client,
    cap: &str,
    params: Value,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c
            .context()
            .request_timeout("datad", cap, params.clone(), Duration::from_secs(10))
            .await
            .unwrap();
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < end, "{cap}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The gap report comes from the database: it holds across a restart of datad. A flood of
/// made-up streams (more than the gap counter tracks) neither makes datad count a real
/// sender's readings missing again nor floods the logbook; a reading whose `seq` the
/// database cannot hold is refused; a new run's `hello` cuts the run before at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_report_holds_across_restarts_and_floods() {
    let pg = Postgres::start();
    let store = store::open(&pg.create_database("gaps")).await.unwrap();
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let url = broker.url();
    let logbook = start_logd(&url, store.clone(), None).await;
    let node = start_datad(&url, store.clone()).await;
    let raw = transport(&url)
        .connect(SessionSpec::new("raw-labx", vec![]))
        .await
        .unwrap();
    let publish = |topic: &'static str, env: Envelope| {
        let out = Outgoing {
            topic: topic.into(),
            payload: env.encode(usize::MAX).unwrap().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        };
        let publisher = raw.publisher.clone();
        async move { publisher.publish(out).await.unwrap() }
    };
    let reading = |epoch: u64, seq: u64| {
        let mut env = Envelope::new("labx", "*");
        env.timestamp = Some(Timestamp::now());
        env.epoch = Some(epoch);
        env.seq = Some(seq);
        env.fields.insert("DC-measurement".into(), json!(1.0));
        env
    };
    let announce = |from: &str, message: &str, epoch: u64, last: Option<u64>| {
        let mut env = Envelope::new(from, "*");
        env.message = Some(message.into());
        env.epoch = Some(epoch);
        if let Some(last) = last {
            env.fields.insert("seqs".into(), json!({ "meas": last }));
        }
        env
    };
    for seq in [0u64, 1, 2, 3, 4, 7, 8, 9] {
        publish("meas", reading(42, seq)).await;
    }
    publish("announce", announce("labx", "heartbeat", 42, Some(12))).await;
    let c = client(&url).await;
    let labx = json!({"origin": "labx"});
    let report = until(&c, "gaps", labx.clone(), |r| r["missing"] == 5).await;
    assert_eq!(report["streams"][0]["last"], 12, "{report}");
    assert_eq!(report["streams"][0]["stored"], 8, "{report}");
    assert_eq!(report["streams"][0]["state"], "open", "{report}");

    // datad restarts: the report is the same; this run has counted nothing itself.
    node.stop().await.unwrap();
    let node = start_datad(&url, store.clone()).await;
    let again = until(&c, "gaps", labx.clone(), |r| r["missing"] == 5).await;
    assert_eq!(again, report);

    // 12,000 made-up streams, then labx's heartbeat again: its stream was forgotten by the
    // gap counter to make room, and is taken up from the database, not counted again.
    for i in 0..12_000u64 {
        publish(
            "announce",
            announce(&format!("fake{}", i % 3000), "heartbeat", 1000 + i, Some(3)),
        )
        .await;
    }
    publish("announce", announce("labx", "heartbeat", 42, Some(12))).await;
    let t0 = Instant::now();
    let all = until(&c, "gaps", json!({}), |r| r["streams_total"] == 12_001).await;
    println!(
        "gaps over 12,001 streams answered; polled for {:?}",
        t0.elapsed()
    );
    assert_eq!(all["streams"].as_array().unwrap().len(), 1000);
    assert_eq!(all["missing"], 5 + 12_000 * 4, "{}", all["missing"]);
    let stats = until(&c, "stats", json!({}), |s| {
        s["missing"].as_object().is_some_and(|m| m.len() > 1000)
    })
    .await;
    assert_eq!(
        stats["missing"]["labx"],
        Value::Null,
        "counted again: {}",
        stats["missing"]["labx"]
    );
    // The logbook got the first run's entry, at most 20 more, and the rest summed later.
    let entries = c
        .context()
        .request("logd", "search", json!({"kind": "gap", "limit": 1000}))
        .await
        .unwrap();
    let n = entries.as_array().unwrap().len();
    assert!((2..=22).contains(&n), "{n} gap entries");

    // A seq the database cannot hold is refused, and is no gap.
    let before = until(&c, "stats", json!({}), |_| true).await;
    publish("meas", reading(42, 1 << 63)).await;
    let after = until(&c, "stats", json!({}), |s| {
        s["rejected"] != before["rejected"]
    })
    .await;
    assert_eq!(after["missing"]["labx"], Value::Null, "{after}");
    let report = until(&c, "gaps", labx.clone(), |_| true).await;
    assert_eq!(report["missing"], 5, "{report}");

    // A new run's hello cuts the run before at once.
    publish("announce", announce("labx", "hello", 43, None)).await;
    let report = until(&c, "gaps", labx, |r| r["unknown_tails"] == 1).await;
    assert_eq!(
        report["streams"][0]["unknown"], "unknown after seq 12 of epoch 42",
        "{report}"
    );
    assert_eq!(report["streams"].as_array().unwrap().len(), 1, "{report}");
    node.stop().await.unwrap();
    logbook.stop().await.unwrap();
}
