//! logd on a real Mosquitto, with its logbook in PostgreSQL and in SQLite: automatic and
//! manual entries, search, and `verify` naming the first entry altered in the database.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::NodeBuilder;
use mqttcal_nodes::logd;
use mqttcal_nodes::store::{self, Store};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

async fn search(c: &mqttcal_core::Client, q: Value) -> Vec<Value> {
    c.context()
        .request("logd", "search", q)
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_entries(c: &mqttcal_core::Client, n: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let all = search(c, json!({})).await;
        if all.len() >= n {
            return all;
        }
        assert!(Instant::now() < end, "only {} entries: {all:?}", all.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes entries through logd; returns the client, the broker and the node for the
/// tampering that follows.
async fn write_entries(
    store: Arc<dyn Store>,
) -> (Mosquitto, mqttcal_core::NodeHandle, mqttcal_core::Client) {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let t = transport(&broker.url());
    let node = logd::node("logd", store).build().start(&t).await.unwrap();
    let c = client(&broker.url()).await;
    // logd's own arrival is the first entry; a node joins and leaves: two more.
    wait_entries(&c, 1).await;
    let labd = NodeBuilder::new("labd").build().start(&t).await.unwrap();
    wait_entries(&c, 2).await;
    labd.stop().await.unwrap();
    wait_entries(&c, 3).await;
    // A system command, and a gap report from datad on the `log` topic.
    c.context()
        .send("system", "*", json!({"cmd": "calibrate"}))
        .await
        .unwrap();
    wait_entries(&c, 4).await;
    c.context()
        .send("log", "logd", json!({"kind": "gap", "text": "labd: 12 readings missing", "tags": ["datad"], "refs": {"job": "J-7"}}))
        .await
        .unwrap();
    wait_entries(&c, 5).await;
    for i in 0..3 {
        let r = c
            .context()
            .request("logd", "add", json!({"author": "M. Rossi", "text": format!("Zener Z1 moved to bench {i}"), "tags": ["move"], "refs": {"standard": "Z1"}}))
            .await
            .unwrap();
        assert_eq!(r["seq"], 6 + i, "{:#?}", search(&c, json!({})).await);
    }
    let bad = c
        .context()
        .request("logd", "add", json!({"author": "", "text": "x"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("`author`"), "{bad}");
    (broker, node, c)
}

async fn check_entries_and_search(c: &mqttcal_core::Client) {
    let all = wait_entries(c, 8).await;
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["joined", "joined", "left", "system", "gap", "note", "note", "note"]
    );
    assert_eq!(all[0]["node"], "logd");
    assert_eq!(all[1]["node"], "labd");
    assert_eq!(
        all[3]["text"],
        format!("{} sent `calibrate` to *", all[3]["node"].as_str().unwrap())
    );
    assert_eq!(search(c, json!({"reference": "Z1"})).await.len(), 3);
    assert_eq!(search(c, json!({"reference": "J-7"})).await.len(), 1);
    assert_eq!(search(c, json!({"tag": "move"})).await.len(), 3);
    assert_eq!(search(c, json!({"text": "BENCH 1"})).await.len(), 1);
    assert_eq!(
        search(c, json!({"text": "100%"})).await.len(),
        0,
        "wildcards are text"
    );
    assert_eq!(
        search(c, json!({"node": "labd", "kind": "left"}))
            .await
            .len(),
        1
    );
    let page = search(c, json!({"limit": 2, "offset": 5})).await;
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["seq"], 6);
    let v = c
        .context()
        .request("logd", "verify", json!({}))
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"], 8);
}

async fn verify(c: &mqttcal_core::Client) -> Value {
    c.context()
        .request("logd", "verify", json!({}))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_logbook_row_altered_in_postgresql_is_named_by_verify() {
    let pg = Postgres::start();
    let url = pg.create_database("logbook");
    let (_broker, node, c) = write_entries(Arc::from(store::open(&url).await.unwrap())).await;
    check_entries_and_search(&c).await;

    pg.psql(
        "logbook",
        "UPDATE logbook SET text = 'Zener Z1 never moved' WHERE seq = 6",
    );
    let v = verify(&c).await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_broken"], 6, "{v}");
    assert!(
        v["problem"].as_str().unwrap().contains("column `text`"),
        "{v}"
    );

    // Rewriting the stored bytes too breaks the hash.
    pg.psql("logbook", "UPDATE logbook SET entry = replace(entry, 'bench 0', 'bench 9'), text = 'Zener Z1 moved to bench 9' WHERE seq = 6");
    let v = verify(&c).await;
    assert_eq!(v["first_broken"], 6, "{v}");
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("do not match its hash"),
        "{v}"
    );

    // Removing an entry is found where the chain breaks.
    pg.psql("logbook", "DELETE FROM logbook WHERE seq = 4");
    let v = verify(&c).await;
    assert_eq!(v["first_broken"], 4, "{v}");
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("entry 4 is missing"),
        "{v}"
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_logbook_row_altered_in_sqlite_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.db");
    let target = format!("sqlite:{}", path.display());
    let (_broker, node, c) = write_entries(Arc::from(store::open(&target).await.unwrap())).await;
    check_entries_and_search(&c).await;
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE logbook SET tags = '[\"moved\"]' WHERE seq = 7", [])
        .unwrap();
    let v = verify(&c).await;
    assert_eq!(v["first_broken"], 7, "{v}");
    assert!(
        v["problem"].as_str().unwrap().contains("column `tags`"),
        "{v}"
    );
    // A forged entry with a correct hash of its own still does not follow the one before.
    let forged = db
        .query_row("SELECT entry FROM logbook WHERE seq = 7", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap()
        .replace("bench 1", "bench 7");
    let hash = logd::sha256_hex(forged.as_bytes());
    db.execute(
        "UPDATE logbook SET entry = ?1, hash = ?2, text = 'Zener Z1 moved to bench 7', tags = '[\"move\"]' WHERE seq = 7",
        rusqlite::params![forged, hash],
    )
    .unwrap();
    let v = verify(&c).await;
    assert_eq!(v["first_broken"], 8, "{v}");
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("does not follow entry 7"),
        "{v}"
    );
    node.stop().await.unwrap();
}
