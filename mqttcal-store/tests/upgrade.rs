//! A database written by release 0.1.0 (schema 3, data in every table; the fixtures in
//! `tests/fixtures/` are that release's own dumps) opens with this build, is brought to the
//! current schema, and reads back whole: every row, every hash, every budget.

use mqttcal_messages::{config_hash, sha256_hex};
use mqttcal_store::{self as store, JobQuery, LogbookStore, MeasurementQuery, Store};
use mqttcal_testkit::Postgres;

const PG_FIXTURE: &str = include_str!("fixtures/schema3.postgres.sql");
const SQLITE_FIXTURE: &str = include_str!("fixtures/schema3.sqlite.sql");

/// Everything the fixture holds, read through the store.
async fn reads_back_whole(store: &dyn Store) {
    assert_eq!(store.schema_version().await.unwrap(), store::SCHEMA_VERSION);

    // 12 labd readings with `seq`, 3 from a report-style peer without.
    assert_eq!(store.count_measurements().await.unwrap(), 15);
    let all = store
        .query_measurements(&MeasurementQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 15);
    let labd: Vec<_> = all.iter().filter(|r| r.origin == "labd").collect();
    assert_eq!(labd.len(), 12);
    for r in &labd {
        assert_eq!(r.job.as_deref(), Some("J-2025-001"));
        assert_eq!(r.standard.as_deref(), Some("Z1"));
        let payload: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
        assert_eq!(payload["DC-measurement"].as_f64(), Some(r.value));
        assert_eq!(
            r.environment
                .as_ref()
                .map(|e| e.to_value()["pressure"].clone()),
            Some(serde_json::json!(1013.1))
        );
    }
    let peer = store
        .query_measurements(&MeasurementQuery {
            origin: Some("pylabd".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(peer.len(), 3);
    assert!(peer
        .iter()
        .all(|r| r.seq.is_none() && r.pol.as_deref() == Some("-")));
    let heads = store.stream_heads(1e6).await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].seq, 11);

    // Equipment register and history.
    let z1 = store.equipment("Z1").await.unwrap().expect("Z1");
    assert_eq!(z1.serial.as_deref(), Some("1234567"));
    let dmm = store.equipment("dmm-1").await.unwrap().expect("dmm-1");
    assert_eq!(dmm.model.as_deref(), Some("3458A"));
    let history = store.history("Z1").await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(history
        .windows(2)
        .all(|w| w[0].calibrated_at < w[1].calibrated_at));

    // Configurations, jobs, results with their budgets, certificates with their documents.
    let jobs = store.jobs(&JobQuery::default()).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let hash = jobs[0].job.config_hash.clone().expect("a configuration");
    let config = store.config(&hash).await.unwrap().expect("stored");
    assert_eq!(config_hash(&config.body), hash);
    let results = store.results("J-2025-001").await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].result.budget.len(), 2);
    assert_eq!(results[0].result.budget[0].source, "reference");
    assert_eq!(results[0].result.budget[1].u, 6.4e-8);
    assert_eq!(results[1].result.amends, Some(results[0].id));
    results[1].result.validate().unwrap();
    for number in ["C-2025-001", "C-2025-002"] {
        let c = store.certificate(number).await.unwrap().expect(number);
        assert_eq!(c.content_hash.as_deref(), Some(c.compute_hash().as_str()));
    }
    let amended = store.certificate("C-2025-002").await.unwrap().unwrap();
    assert_eq!(amended.replaces.as_deref(), Some("C-2025-001"));
    assert_eq!(
        store
            .certificate("C-2025-001")
            .await
            .unwrap()
            .unwrap()
            .documents
            .len(),
        2
    );

    // The logbook: nine entries in an unbroken chain, two signed checkpoints.
    let logbook: &dyn LogbookStore = store;
    let entries = logbook.log_page(0, 100).await.unwrap();
    assert_eq!(entries.len(), 9);
    let mut prev = "0".repeat(64);
    for e in &entries {
        assert_eq!(sha256_hex(e.entry.as_bytes()), e.hash, "entry {}", e.seq);
        assert_eq!(e.prev_hash, prev, "entry {}", e.seq);
        prev.clone_from(&e.hash);
    }
    let checkpoints = logbook.checkpoints().await.unwrap();
    assert_eq!(
        checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [4, 8]
    );
    assert_eq!(logbook.log_head().await.unwrap().map(|h| h.0), Some(9));
}

#[tokio::test]
async fn a_schema_3_postgresql_database_opens_with_nothing_lost() {
    let pg = Postgres::start();
    let url = pg.create_database("release_0_1");
    pg.psql("release_0_1", PG_FIXTURE);
    let store = store::open(&url).await.unwrap();
    reads_back_whole(store.as_ref()).await;
    // And it takes new data beside the old.
    drop(store);
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.count_measurements().await.unwrap(), 15);
}

#[tokio::test]
async fn a_schema_3_sqlite_database_opens_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release-0.1.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SQLITE_FIXTURE)
        .unwrap();
    let store = store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    reads_back_whole(store.as_ref()).await;
}
