//! Nothing lost: 100,000 readings through the production broker settings into PostgreSQL
//! while datad restarts, PostgreSQL is down for 10 s and Mosquitto restarts.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::NodeBuilder;
use mqttcal_store::{self as store, Store};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const TOTAL: u64 = 100_000;

fn psql_count(pg: &Postgres, db: &str, sql: &str) -> u64 {
    pg.psql(db, sql).trim().parse().unwrap_or_else(|e| {
        panic!("`{sql}` did not return a number: {e}");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_through_datad_postgresql_and_broker_restarts() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let pg = Postgres::start();
    let db_url = pg.create_database("lost");
    let store: Arc<dyn Store> = store::open(&db_url).await.unwrap();
    let node = start_datad(&url, store).await;
    let source = NodeBuilder::new("labd")
        .build()
        .start(&transport(&url))
        .await
        .unwrap();

    // About 4,500 readings/s for 22 s, in steps of 450 every 100 ms.
    let ctx = source.context().clone();
    let publisher = tokio::spawn(async move {
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < TOTAL {
            for _ in 0..450.min(TOTAL - sent) {
                ctx.publish(
                    "meas",
                    json!({"DC-measurement": 1.0 + sent as f64 * 1e-9, "src": ["Z1"], "unit": "V"}),
                )
                .await
                .unwrap();
                sent += 1;
            }
            if sent.is_multiple_of(9000) {
                eprintln!(
                    "published {sent} at {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "published all {TOTAL} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });

    // The faults, one after the other while the readings flow.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("restarting datad");
    node.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store: Arc<dyn Store> = store::open(&db_url).await.unwrap();
    let node = start_datad(&url, store).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("stopping PostgreSQL for 10 s");
    let (pg, broker) = tokio::task::spawn_blocking(move || {
        let (mut pg, mut broker) = (pg, broker);
        pg.stop();
        std::thread::sleep(Duration::from_secs(10));
        pg.start_again();
        eprintln!("PostgreSQL is back; restarting Mosquitto in 2 s");
        std::thread::sleep(Duration::from_secs(2));
        broker.restart();
        eprintln!("Mosquitto restarted");
        (pg, broker)
    })
    .await
    .unwrap();

    publisher.await.unwrap();
    let c = client(&url).await;
    let end = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while stored < TOTAL {
        stored = psql_count(&pg, "lost", "SELECT COUNT(*) FROM measurements");
        assert!(
            Instant::now() < end,
            "only {stored} of {TOTAL} stored; datad: {}",
            c.context()
                .request("datad", "stats", json!({}))
                .await
                .map(|v| v.to_string())
                .unwrap_or_else(|e| e.to_string())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Anything redelivered late would show now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        psql_count(&pg, "lost", "SELECT COUNT(*) FROM measurements"),
        TOTAL
    );
    assert_eq!(
        psql_count(
            &pg,
            "lost",
            "SELECT COUNT(DISTINCT (origin, epoch, seq)) FROM measurements"
        ),
        TOTAL,
        "every reading once"
    );
    assert_eq!(
        psql_count(
            &pg,
            "lost",
            "SELECT MAX(seq) - MIN(seq) + 1 FROM measurements"
        ),
        TOTAL,
        "no hole in the sequence"
    );
    let stats = c
        .context()
        .request("datad", "stats", json!({}))
        .await
        .unwrap();
    assert_eq!(stats["missing"]["labd"].as_u64().unwrap_or(0), 0, "{stats}");
    eprintln!("datad after the faults: {stats}");
    node.stop().await.unwrap();
    source.stop().await.unwrap();
    drop(broker);
}
