//! One suite, run against PostgreSQL (a private cluster) and SQLite (a temporary file).

use mqttcal_messages::{CalibrationRecord, CertificateRecord, Equipment, JobRecord, ResultRecord};
use mqttcal_store::{
    self as store, JobQuery, JsonText, MeasurementQuery, MeasurementRow, Store, StoreError,
    StreamEnd,
};
use mqttcal_testkit::Postgres;
use serde_json::json;

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn refs(rows: &[MeasurementRow]) -> Vec<&MeasurementRow> {
    rows.iter().collect()
}

/// A labd-style reading as datad stores it.
fn row(from: &str, epoch: u64, seq: u64, standard: &str, value: f64, t: f64) -> MeasurementRow {
    let payload = json!({
        "timestamp": t, "from": from, "to": "*", "epoch": epoch, "seq": seq,
        "DC-measurement": value, "src": [standard]
    })
    .to_string();
    MeasurementRow {
        dedup_key: format!("{from}\u{1f}{epoch}\u{1f}{seq}"),
        origin: from.into(),
        epoch: Some(epoch as i64),
        seq: Some(seq as i64),
        sent_at: t,
        acquired: Some(t - 0.1),
        standard: Some(standard.into()),
        src: Some(JsonText::from_value(&json!([standard]))),
        value,
        unit: Some("V".into()),
        nplc: Some(100.0),
        ndigits: Some(8),
        range: Some(10.0),
        mode: Some("absolute".into()),
        pol: Some("+".into()),
        job: None,
        raw: Some(format!("{value:+.8E}")),
        origin_uid: Some(JsonText::from_value(&json!(["LAB", "host", from]))),
        environment: Some(JsonText::from_value(
            &json!({"temperature": 23.01, "humidity": 45.0, "pressure": 1013.0}),
        )),
        payload,
    }
}

/// What senders announced of their streams is kept (highest `seq` wins, closed stays
/// closed) and joined with the stored readings, recent streams only, each counted whole.
async fn streams_suite(store: &dyn Store) {
    let end = |origin: &str, epoch: u64, announced: u64, closed: bool| StreamEnd {
        origin: origin.into(),
        epoch,
        announced: Some(announced),
        closed,
    };
    store
        .note_stream_ends(&[
            end("labx", 3, 6, false),
            end("labx", 3, 5, true),
            end("labx", 4, 9, false),
            // Nothing stored of this one yet: it still shows.
            end("quiet", 1, 2, false),
            // Past what the database holds: left out, no error.
            end("huge", u64::MAX, 1, false),
        ])
        .await
        .unwrap();
    store
        .note_stream_ends(&[
            end("labx", 4, 3, false),
            end("quiet", 1, u64::MAX, false),
            // A hello tells no seq: it keeps what was announced, and starts a stream.
            StreamEnd {
                announced: None,
                ..end("labx", 4, 0, false)
            },
            StreamEnd {
                announced: None,
                ..end("hello", 1, 0, false)
            },
        ])
        .await
        .unwrap();
    let got: Vec<_> = store
        .stream_summaries(7.0, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.origin, s.epoch, s.stored, s.head, s.announced, s.closed))
        .collect();
    assert_eq!(
        got,
        [
            ("hello".to_owned(), 1, 0, None, None, false),
            ("labx".to_owned(), 3, 2, Some(4), Some(6), true),
            ("labx".to_owned(), 4, 1, Some(1), Some(9), false),
            ("quiet".to_owned(), 1, 0, None, Some(i64::MAX as u64), false),
        ]
    );
    // Where a gap counter takes up a stream: the highest seq stored or announced.
    let asked: Vec<(String, u64)> = [
        ("labx", 3),
        ("labx", 4),
        ("hello", 1),
        ("nobody", 1),
        ("labx", u64::MAX),
    ]
    .iter()
    .map(|(o, e)| (o.to_string(), *e))
    .collect();
    let mut known: Vec<_> = store
        .streams_known_last(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.origin, h.epoch, h.seq))
        .collect();
    known.sort();
    assert_eq!(known, [("labx".into(), 3, 6), ("labx".into(), 4, 9)]);
    assert!(store.streams_known_last(&[]).await.unwrap().is_empty());
    let quiet = store.stream_summaries(7.0, Some("quiet")).await.unwrap();
    assert_eq!(quiet.len(), 1);
    assert_eq!(quiet[0].origin, "quiet");
    let labx = store.stream_summaries(7.0, Some("labx")).await.unwrap();
    assert_eq!(labx.iter().map(|s| s.epoch).collect::<Vec<_>>(), [3, 4]);
}

async fn suite(store: &dyn Store) {
    assert_eq!(store.schema_version().await.unwrap(), store::SCHEMA_VERSION);
    let rows: Vec<MeasurementRow> = (0..20)
        .map(|i| {
            row(
                "labd",
                7,
                i,
                if i % 2 == 0 { "Z1" } else { "Z2" },
                10.0 + i as f64 * 1e-7,
                1000.0 + i as f64,
            )
        })
        .collect();
    assert_eq!(store.insert_measurements(&refs(&rows)).await.unwrap(), 20);
    // A redelivered batch is not stored twice; a new epoch with the same seq is new.
    assert_eq!(
        store
            .insert_measurements(&refs(&rows[5..10]))
            .await
            .unwrap(),
        0
    );
    let restarted = [row("labd", 8, 0, "Z1", 10.0, 2000.0)];
    assert_eq!(
        store.insert_measurements(&refs(&restarted)).await.unwrap(),
        1
    );
    assert_eq!(store.count_measurements().await.unwrap(), 21);
    // A batch mixing stored and new readings stores the new ones only.
    let mut mixed = rows[15..20].to_vec();
    let now = now();
    mixed.push(row("labx", 3, 0, "Z3", 1.0, now));
    mixed.push(row("labx", 3, 4, "Z3", 1.0, now));
    mixed.push(row("labx", 4, 1, "Z3", 1.0, now));
    assert_eq!(store.insert_measurements(&refs(&mixed)).await.unwrap(), 3);
    assert_eq!(store.count_measurements().await.unwrap(), 24);
    // Where a restarted datad takes up each recent stream (old ones are left out).
    let mut heads = store.stream_heads(7.0).await.unwrap();
    heads.sort_by_key(|h| h.epoch);
    assert_eq!(
        heads
            .iter()
            .map(|h| (h.origin.as_str(), h.epoch, h.seq))
            .collect::<Vec<_>>(),
        [("labx", 3, 4), ("labx", 4, 1)]
    );
    streams_suite(store).await;

    let z1 = store
        .query_measurements(&MeasurementQuery {
            standard: Some("Z1".into()),
            until: Some(1500.0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(z1.len(), 10);
    assert!(z1.windows(2).all(|w| w[0].sent_at < w[1].sent_at));
    assert_eq!(z1[0], rows[0], "a stored row reads back field for field");
    let page = store
        .query_measurements(&MeasurementQuery {
            limit: Some(5),
            offset: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq.unwrap()).collect::<Vec<_>>(),
        [5, 6, 7, 8, 9]
    );
    // Values containing SQL are data, never SQL.
    let hostile = store
        .query_measurements(&MeasurementQuery {
            standard: Some("Z1' OR '1'='1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(hostile.is_empty());
    let bad = store
        .query_measurements(&MeasurementQuery {
            limit: Some(0),
            ..Default::default()
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

/// The equipment register, calibration history, results and certificates.
async fn records_suite(store: &dyn Store) {
    let z1: Equipment = serde_json::from_value(json!({
        "id": "Z1", "kind": "standard", "manufacturer": "Fluke", "model": "732B",
        "serial": "1234567", "owner": "lab", "nominal_value": 10.0, "unit": "V",
        "calibration_due": 1.9e9, "checked_in": 1.7e9
    }))
    .unwrap();
    store.register_equipment(&z1).await.unwrap();
    assert_eq!(store.equipment("Z1").await.unwrap().as_ref(), Some(&z1));
    assert_eq!(store.equipment("Z9").await.unwrap(), None);
    // Checking out updates the register.
    let mut out = z1.clone();
    out.checked_out = Some(1.75e9);
    store.register_equipment(&out).await.unwrap();
    assert_eq!(
        store.equipment("Z1").await.unwrap().unwrap().checked_out,
        Some(1.75e9)
    );
    // The register, by id, a page at a time.
    let mut a0 = z1.clone();
    a0.id = "A0".into();
    store.register_equipment(&a0).await.unwrap();
    let ids = |r: Vec<Equipment>| r.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(store.register(10, 0).await.unwrap()), ["A0", "Z1"]);
    assert_eq!(ids(store.register(1, 1).await.unwrap()), ["Z1"]);
    assert!(store.register(10, 2).await.unwrap().is_empty());
    assert_eq!(
        store.register(10, 0).await.unwrap()[1].checked_out,
        Some(1.75e9)
    );

    // History, oldest first, whatever the order of entry.
    for (t, v) in [
        (1.72e9, 10.000_013_1),
        (1.70e9, 10.000_012_0),
        (1.71e9, 10.000_012_6),
    ] {
        let c = CalibrationRecord {
            equipment: "Z1".into(),
            calibrated_at: t,
            value: v,
            unit: "V".into(),
            uncertainty: 4.0e-7,
            coverage_factor: 2.0,
            certificate: Some(format!("NMI-{t}")),
            laboratory: Some("NMI".into()),
        };
        store.add_calibration(&c).await.unwrap();
    }
    let history = store.history("Z1").await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.value).collect::<Vec<_>>(),
        [10.000_012_0, 10.000_012_6, 10.000_013_1]
    );
    let mut unknown = history[0].clone();
    unknown.equipment = "Z9".into();
    let err = store.add_calibration(&unknown).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("`Z9` is not in the equipment register")),
        "{err:?}"
    );

    // Results; a correction cites the original, which stays as it was.
    let result: ResultRecord = serde_json::from_value(json!({
        "job": "J-2026-001", "quantity": "Z1 output voltage", "standard": "Z1",
        "value": 10.000_013_4, "unit": "V", "standard_uncertainty": 2.1e-7,
        "coverage_factor": 2.0, "expanded_uncertainty": 4.2e-7, "effective_dof": 58.3,
        "budget": [{"source": "reference", "u": 2.0e-7}, {"source": "type A", "u": 6.4e-8}],
        "environment_ok": true, "software_version": "mqttcal 0.1.0", "config_hash": "abc"
    }))
    .unwrap();
    let first = store.save_result(&result).await.unwrap();
    assert_eq!(first.result, result, "a result reads back field for field");
    let mut fix = result.clone();
    fix.value = 10.000_013_2;
    fix.amends = Some(first.id);
    fix.reason = Some("wrong thermal EMF correction".into());
    let second = store.save_result(&fix).await.unwrap();
    let results = store.results("J-2026-001").await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].result.value, 10.000_013_4,
        "never updated in place"
    );
    assert_eq!(results[1].result.amends, Some(first.id));
    assert!(second.id > first.id);
    let mut dangling = fix.clone();
    dangling.amends = Some(first.id + 1000);
    assert!(matches!(
        store.save_result(&dangling).await,
        Err(StoreError::Invalid(_))
    ));
    let mut inconsistent = result.clone();
    inconsistent.expanded_uncertainty = 1.0;
    assert!(matches!(
        store.save_result(&inconsistent).await,
        Err(StoreError::Invalid(_))
    ));

    // Certificates: once per number, amendments cite what they replace.
    let cert: CertificateRecord = serde_json::from_value(json!({
        "number": "C-2026-001", "job": "J-2026-001", "issued_at": 1.76e9,
        "authorised_by": "A. Person", "data": {"customer": "ACME", "item": {"model": "732B"}},
        "documents": [
            {"kind": "pdf", "media_type": "application/pdf", "content": "JVBERi0xLjcK"},
            {"kind": "dcc", "media_type": "application/xml", "content": "PGRjYz48L2RjYz4="}
        ]
    }))
    .unwrap();
    let hash = store.save_certificate(&cert).await.unwrap();
    let back = store.certificate("C-2026-001").await.unwrap().unwrap();
    assert_eq!(back.content_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(
        back.compute_hash(),
        hash,
        "data and documents read back intact"
    );
    assert_eq!(back.documents.len(), 2);
    let again = store.save_certificate(&cert).await.unwrap_err();
    assert!(
        matches!(&again, StoreError::Invalid(m) if m.contains("is issued already")),
        "{again:?}"
    );
    let mut amended = cert.clone();
    amended.number = "C-2026-001-A1".into();
    amended.replaces = Some("C-2026-001".into());
    store.save_certificate(&amended).await.unwrap();
    // Replaced once: the record says by which, and a second amendment of it is refused.
    let original = store.certificate("C-2026-001").await.unwrap().unwrap();
    assert_eq!(original.replaced_by.as_deref(), Some("C-2026-001-A1"));
    let mut branch = amended.clone();
    branch.number = "C-2026-001-A2".into();
    let err = store.save_certificate(&branch).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("replaced already")),
        "{err:?}"
    );
    assert_eq!(store.certificate("C-2026-001-A2").await.unwrap(), None);
    let mut orphan = amended.clone();
    orphan.number = "C-2026-002".into();
    orphan.replaces = Some("C-1999-000".into());
    let err = store.save_certificate(&orphan).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("no certificate `C-1999-000`")),
        "{err:?}"
    );
    assert_eq!(store.certificate("C-404").await.unwrap(), None);
    // Listed by issue date, both ends included, oldest first, without documents.
    let mut later = cert.clone();
    later.number = "C-2026-003".into();
    later.issued_at = 1.76e9 + 86_400.0;
    store.save_certificate(&later).await.unwrap();
    let listed = store
        .certificates(1.76e9, 1.76e9 + 86_400.0, 10)
        .await
        .unwrap();
    let numbers: Vec<&str> = listed.iter().map(|c| c.number.as_str()).collect();
    assert_eq!(numbers, ["C-2026-001", "C-2026-001-A1", "C-2026-003"]);
    assert!(listed.iter().all(|c| c.documents.is_empty()));
    assert_eq!(listed[0].data, cert.data, "the data read back");
    assert_eq!(listed[1].replaces.as_deref(), Some("C-2026-001"));
    let first_day = store
        .certificates(1.76e9, 1.76e9 + 86_399.0, 10)
        .await
        .unwrap();
    assert_eq!(first_day.len(), 2);
    assert_eq!(
        store
            .certificates(0.0, 1.76e9 + 1e6, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.certificates(0.0, 1.0, 10).await.unwrap().is_empty());
    numbers_suite(store).await;
}

/// Certificate numbers: each series counts from 1, one by one.
async fn numbers_suite(store: &dyn Store) {
    assert_eq!(store.next_certificate_number("CAL").await.unwrap(), 1);
    assert_eq!(store.next_certificate_number("CAL").await.unwrap(), 2);
    assert_eq!(store.next_certificate_number("CAL-2027").await.unwrap(), 1);
    assert_eq!(store.next_certificate_number("CAL").await.unwrap(), 3);
}

async fn jobs_suite(store: &dyn Store) {
    let body = json!({"nplc": 10, "range": 10.0, "points": [1, 2]});
    let hash = store.save_config(&body).await.unwrap();
    assert_eq!(hash, mqttcal_messages::config_hash(&body));
    assert_eq!(store.save_config(&body).await.unwrap(), hash, "stored once");
    let cfg = store.config(&hash).await.unwrap().unwrap();
    assert_eq!(cfg.body, body);
    assert_eq!(store.config("0000").await.unwrap(), None);

    let mut job = JobRecord {
        id: "J-2026-001".into(),
        procedure: Some("P-DCV-01".into()),
        item: Some("Z1".into()),
        customer: Some("ACME".into()),
        status: "planned".into(),
        config_hash: Some(hash.clone()),
        body: Some(json!({"operator": "M. Rossi"})),
    };
    let first = store.save_job(&job).await.unwrap();
    assert_eq!(first.job, job);
    assert_eq!(first.created_at, first.updated_at);
    job.status = "running".into();
    let second = store.save_job(&job).await.unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(
        store.job("J-2026-001").await.unwrap().unwrap().job.status,
        "running"
    );
    assert_eq!(store.job("J-404").await.unwrap(), None);

    let unknown = JobRecord {
        id: "J-2".into(),
        config_hash: Some("beef".into()),
        ..job.clone()
    };
    let err = store.save_job(&unknown).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("no measurement configuration `beef`")),
        "{err:?}"
    );
    let empty = JobRecord {
        id: "J-3".into(),
        status: " ".into(),
        ..job.clone()
    };
    assert!(matches!(
        store.save_job(&empty).await,
        Err(StoreError::Invalid(m)) if m == "`status` must not be empty"
    ));
    let bare = JobRecord {
        id: "J-4".into(),
        procedure: None,
        item: None,
        customer: None,
        status: "planned".into(),
        config_hash: None,
        body: None,
    };
    store.save_job(&bare).await.unwrap();
    let all = store.jobs(&JobQuery::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|j| j.job.id.as_str()).collect();
    assert_eq!(ids, ["J-2026-001", "J-4"]);
    let planned = store
        .jobs(&JobQuery {
            status: Some("planned".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].job, bare);
    let page = store
        .jobs(&JobQuery {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].job.id, "J-4");
}

#[tokio::test]
async fn store_suite_on_postgresql() {
    let pg = Postgres::start();
    let url = pg.create_database("mqttcal_store");
    suite(store::open(&url).await.unwrap().as_ref()).await;
    records_suite(store::open(&url).await.unwrap().as_ref()).await;
    jobs_suite(store::open(&url).await.unwrap().as_ref()).await;
    // Reopening applies nothing twice; a newer schema is refused with a clear message.
    let again = store::open(&url).await.unwrap();
    assert_eq!(again.count_measurements().await.unwrap(), 24);
    assert_eq!(
        again.next_certificate_number("CAL").await.unwrap(),
        4,
        "numbers go on after a restart"
    );
    pg.psql(
        "mqttcal_store",
        "INSERT INTO mqttcal_schema (version) VALUES (99)",
    );
    let err = store::open(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                known: store::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn store_suite_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.db");
    let target = format!("sqlite:{}", path.display());
    suite(store::open(&target).await.unwrap().as_ref()).await;
    records_suite(store::open(&target).await.unwrap().as_ref()).await;
    jobs_suite(store::open(&target).await.unwrap().as_ref()).await;
    let again = store::open(&target).await.unwrap();
    assert_eq!(again.count_measurements().await.unwrap(), 24);
    assert_eq!(
        again.next_certificate_number("CAL").await.unwrap(),
        4,
        "numbers go on after a restart"
    );
    drop(again);
    let conn = rusqlite_insert_version(&path);
    assert!(conn);
    let err = store::open(&target).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                known: store::SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
}

/// A database left by schema 2, with a reading in it, is brought to the current schema and
/// keeps the reading as it was.
#[tokio::test]
async fn a_schema_2_postgresql_database_is_migrated_with_its_rows() {
    let pg = Postgres::start();
    let url = pg.create_database("mqttcal_v2");
    let setup = [
        "CREATE TABLE mqttcal_schema (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        include_str!("../src/postgres/migrations/0001.sql"),
        include_str!("../src/postgres/migrations/0002.sql"),
        "INSERT INTO mqttcal_schema (version) VALUES (1), (2);",
        "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, standard, src, value, job, origin_uid, environment, payload, stored_at)
         VALUES ('old', 'labd', 1, 1, 10.5, 'Z1', '[\"Z1\"]', 1.0181195, 'J-7', '{\"host\": \"lab-1\"}', '{\"temperature\": 23.02}', '{}', 11.0);",
    ]
    .concat();
    pg.psql("mqttcal_v2", &setup);
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), store::SCHEMA_VERSION);
    let old = store
        .query_measurements(&MeasurementQuery {
            job: Some("J-7".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    let value = |j: &Option<JsonText>| j.as_ref().map(JsonText::to_value);
    assert_eq!(value(&old[0].src), Some(json!(["Z1"])));
    assert_eq!(value(&old[0].origin_uid), Some(json!({"host": "lab-1"})));
    assert_eq!(
        value(&old[0].environment),
        Some(json!({"temperature": 23.02}))
    );
    // Readings without a job stay out of the job index.
    let index = pg.psql(
        "mqttcal_v2",
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'measurements_job'",
    );
    assert!(index.contains("WHERE (job IS NOT NULL)"), "{index}");
    // New rows go in beside it, through the COPY path.
    let rows: Vec<MeasurementRow> = (0..3).map(|i| row("labd", 2, i, "Z1", 1.0, 20.0)).collect();
    assert_eq!(store.insert_measurements(&refs(&rows)).await.unwrap(), 3);
    assert_eq!(store.count_measurements().await.unwrap(), 4);
}

/// PostgreSQL cannot hold a NUL byte in a text: such a row is refused for good, never
/// worth another try, and the rows beside it go in once it is left out.
#[tokio::test]
async fn a_row_postgresql_cannot_hold_is_rejected_for_good() {
    let pg = Postgres::start();
    let store = store::open(&pg.create_database("nul")).await.unwrap();
    let good = row("labd", 1, 0, "Z1", 1.0, 10.0);
    let mut bad = row("labd", 1, 1, "Z1", 1.0, 11.0);
    bad.raw = Some("+1.0\0E+00".into());
    let err = store.insert_measurements(&[&good, &bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(
        store.count_measurements().await.unwrap(),
        0,
        "all or nothing"
    );
    assert_eq!(store.insert_measurements(&[&good]).await.unwrap(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let port = mqttcal_testkit::free_port();
    let err = store::open(&format!("postgres://lab:hunter2@127.0.0.1:{port}/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert_eq!(
        text,
        format!("cannot open the database `postgres://lab:***@127.0.0.1:{port}/x`")
    );
    // The driver's error is kept as the cause, not flattened into the message.
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(!cause.is_empty() && !cause.contains("hunter2"), "{cause}");
}

/// Marks the SQLite database as written by a newer version.
fn rusqlite_insert_version(path: &std::path::Path) -> bool {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("INSERT INTO mqttcal_schema VALUES (99, 0)", [])
        .is_ok()
}

/// Nodes that start together on one new SQLite file (datad and logd in a lab) migrate it
/// once: every one opens it, none fails on a table another just made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_one_new_sqlite_file_together_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let target = format!("sqlite:{}", dir.path().join("new.db").display());
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let target = target.clone();
                tokio::spawn(async move { store::open(&target).await })
            })
            .collect();
        for open in opens {
            let s = open
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(s.schema_version().await.unwrap(), store::SCHEMA_VERSION);
        }
    }
}
