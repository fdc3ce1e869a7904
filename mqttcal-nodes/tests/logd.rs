//! logd on a real Mosquitto, with its logbook in PostgreSQL and in SQLite: automatic and
//! manual entries, search, and `verify` naming the first entry altered in the database.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::NodeBuilder;
use mqttcal_nodes::logd;
use mqttcal_store::{self as store, Store};
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
    let node = start_logd(&broker.url(), store, None).await;
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
            .request("logd", "add", json!({"author": "M. Rossi", "text": format!("Zener Z1 moved to bench {i}"), "tags": ["move", "sender:somebody-else"], "refs": {"standard": "Z1"}}))
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
    // Who sent a manual entry is in it (hashed with it), whatever the author claims;
    // a tag claiming another sender is replaced.
    let notes = search(c, json!({"kind": "note"})).await;
    let sender = format!("sender:{}", c.context().name());
    assert!(
        notes
            .iter()
            .all(|n| n["tags"].as_array().unwrap().contains(&json!(sender))),
        "{notes:?}"
    );
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

/// `verify` found the chain broken first at entry `seq`, for a reason saying `why`.
fn assert_broken(v: &Value, seq: i64, why: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_broken"], seq, "{v}");
    let problem = v["problem"].as_str().unwrap_or_default();
    assert!(problem.contains(why), "{v}");
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
    let (_broker, node, c) = write_entries(store::open(&url).await.unwrap()).await;
    check_entries_and_search(&c).await;

    pg.psql(
        "logbook",
        "UPDATE logbook SET text = 'Zener Z1 never moved' WHERE seq = 6",
    );
    let v = verify(&c).await;
    assert_broken(&v, 6, "column `text`");

    // Rewriting the stored bytes too breaks the hash.
    pg.psql("logbook", "UPDATE logbook SET entry = replace(entry, 'bench 0', 'bench 9'), text = 'Zener Z1 moved to bench 9' WHERE seq = 6");
    let v = verify(&c).await;
    assert_broken(&v, 6, "do not match its hash");

    // Removing an entry is found where the chain breaks.
    pg.psql("logbook", "DELETE FROM logbook WHERE seq = 4");
    let v = verify(&c).await;
    assert_broken(&v, 4, "entry 4 is missing");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_logbook_row_altered_in_sqlite_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.db");
    let target = format!("sqlite:{}", path.display());
    let (_broker, node, c) = write_entries(store::open(&target).await.unwrap()).await;
    check_entries_and_search(&c).await;
    // A search text too long for a LIKE pattern is refused, naming the field.
    let e = c
        .context()
        .request(
            "logd",
            "search",
            serde_json::json!({"text": "x".repeat(2000)}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("text: at most 1000 characters"),
        "{e}"
    );
    let db = rusqlite::Connection::open(&path).unwrap();
    let tags: String = db
        .query_row("SELECT tags FROM logbook WHERE seq = 7", [], |r| r.get(0))
        .unwrap();
    db.execute("UPDATE logbook SET tags = '[\"moved\"]' WHERE seq = 7", [])
        .unwrap();
    let v = verify(&c).await;
    assert_broken(&v, 7, "column `tags`");
    // A forged entry with a correct hash of its own still does not follow the one before.
    let forged = db
        .query_row("SELECT entry FROM logbook WHERE seq = 7", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap()
        .replace("bench 1", "bench 7");
    let hash = mqttcal_messages::sha256_hex(forged.as_bytes());
    db.execute(
        "UPDATE logbook SET entry = ?1, hash = ?2, text = 'Zener Z1 moved to bench 7', tags = ?3 WHERE seq = 7",
        rusqlite::params![forged, hash, tags],
    )
    .unwrap();
    let v = verify(&c).await;
    assert_broken(&v, 8, "does not follow entry 7");
    node.stop().await.unwrap();
}

/// Rewrites the chain from entry `from` on, every hash recomputed, as someone with write
/// access to the database could.
fn rewrite_chain(db: &rusqlite::Connection, from: i64, text: &str) {
    let rows: Vec<(i64, String)> = db
        .prepare("SELECT seq, entry FROM logbook ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = logd::GENESIS.to_owned();
    for (seq, entry) in rows {
        let mut c: logd::Canonical = serde_json::from_str(&entry).unwrap();
        if seq >= from {
            if seq == from {
                c.text = text.into();
            }
            c.prev_hash = prev.clone();
            let row = c.seal();
            db.execute(
                "UPDATE logbook SET text = ?1, entry = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?5",
                rusqlite::params![row.text, row.entry, row.prev_hash, row.hash, seq],
            )
            .unwrap();
            prev = row.hash;
        } else {
            prev = mqttcal_messages::sha256_hex(entry.as_bytes());
        }
    }
}

#[tokio::test]
async fn signed_checkpoints_catch_a_rewritten_or_cut_logbook() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.db");
    let key_file = dir.path().join("checkpoint.key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef-lab-key\n").unwrap();
    let signer = logd::Signer::new(logd::CheckpointKey::from_file(&key_file).unwrap(), 3);
    let store: Arc<dyn Store> = store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = start_logd(&broker.url(), store, Some(signer)).await;
    let c = client(&broker.url()).await;
    wait_entries(&c, 1).await;
    for i in 0..6 {
        c.context()
            .request(
                "logd",
                "add",
                json!({"author": "QA", "text": format!("check {i}")}),
            )
            .await
            .unwrap();
    }
    let v = verify(&c).await;
    assert_eq!(
        (
            v["ok"].clone(),
            v["entries"].clone(),
            v["checkpoints"].clone()
        ),
        (json!(true), json!(7), json!(2)),
        "{v}"
    );

    // Rewritten from entry 2 on, every hash recomputed: the chain is consistent again,
    // but entry 3 is not what was signed.
    let db = rusqlite::Connection::open(&path).unwrap();
    let backup: Vec<(i64, String, String, String, String)> = db
        .prepare("SELECT seq, text, entry, prev_hash, hash FROM logbook ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rewrite_chain(&db, 2, "nothing happened");
    let v = verify(&c).await;
    assert_broken(&v, 3, "signed checkpoint");
    for (seq, text, entry, prev, hash) in backup {
        db.execute(
            "UPDATE logbook SET text = ?1, entry = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?5",
            rusqlite::params![text, entry, prev, hash, seq],
        )
        .unwrap();
    }
    assert_eq!(verify(&c).await["ok"], true);

    // Cut after entry 5 (the foreign key to the checkpoints switched off, as an intruder
    // would): the checkpoint at 6 still names the lost entry.
    db.execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM logbook WHERE seq > 5")
        .unwrap();
    let v = verify(&c).await;
    assert_broken(&v, 6, "the logbook was cut");
    // Deleting the checkpoints as well leaves the one at 3 missing.
    db.execute("DELETE FROM logbook_checkpoints", []).unwrap();
    let v = verify(&c).await;
    assert_broken(&v, 3, "checkpoint at entry 3 is missing");
    // A forged checkpoint, signed with another key, is refused.
    let forged = logd::CheckpointKey::new(vec![9; 32]).unwrap();
    let hash: String = db
        .query_row("SELECT hash FROM logbook WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    let cp = forged.sign(3, &hash, 0.0);
    db.execute(
        "INSERT INTO logbook_checkpoints (seq, hash, key_id, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![cp.seq, cp.hash, cp.key_id, cp.signature, cp.at],
    )
    .unwrap();
    let v = verify(&c).await;
    assert!(
        v["problem"]
            .as_str()
            .unwrap()
            .contains("neither the signing key"),
        "{v}"
    );
    // Claiming the real key's id does not help: the signature does not verify.
    let real_id: String = logd::CheckpointKey::from_file(&key_file)
        .unwrap()
        .id()
        .to_owned();
    db.execute(
        "UPDATE logbook_checkpoints SET key_id = ?1 WHERE seq = 3",
        [real_id],
    )
    .unwrap();
    let v = verify(&c).await;
    assert!(
        v["problem"].as_str().unwrap().contains("does not verify"),
        "{v}"
    );
    node.stop().await.unwrap();
}

/// Texts of the entries, oldest first.
fn texts(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn entries_sent_while_logd_or_its_database_is_down_are_recorded_once() {
    let mut pg = Postgres::start();
    let url = pg.create_database("logd_away");
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let store: Arc<dyn Store> = store::open(&url).await.unwrap();
    let node = start_logd(&broker.url(), store.clone(), None).await;
    let c = client(&broker.url()).await;
    wait_entries(&c, 1).await;
    node.stop().await.unwrap();

    // logd is away: what is sent waits in the broker for its session.
    for i in 0..2 {
        c.context()
            .send(
                "log",
                "logd",
                json!({"kind": "gap", "text": format!("sent while away {i}")}),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = start_logd(&broker.url(), store.clone(), None).await;
    let all = wait_entries(&c, 5).await;
    let t1 = texts(&all);
    for i in 0..2 {
        let text = format!("sent while away {i}");
        assert_eq!(t1.iter().filter(|t| **t == text).count(), 1, "{t1:?}");
    }
    assert!(t1.contains(&"logd left".to_owned()), "{t1:?}");

    // The database is down: the entry waits, unacknowledged, until it is back.
    pg.stop();
    c.context()
        .send(
            "log",
            "logd",
            json!({"kind": "gap", "text": "sent while the database is down"}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start_again();
    let all = wait_entries(&c, t1.len() + 1).await;
    let t2 = texts(&all);
    assert_eq!(
        t2.iter()
            .filter(|t| *t == "sent while the database is down")
            .count(),
        1,
        "{t2:?}"
    );
    assert_eq!(verify(&c).await["ok"], true);
    node.stop().await.unwrap();
}

/// PostgreSQL cannot hold a NUL character: an entry carrying one is set aside, and the
/// logbook goes on with the entries after it (and `add` answers `invalid_params`).
#[tokio::test]
async fn an_entry_the_database_cannot_hold_is_set_aside_and_the_logbook_goes_on() {
    let pg = Postgres::start();
    let store = store::open(&pg.create_database("nul")).await.unwrap();
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = start_logd(&broker.url(), store, None).await;
    let c = client(&broker.url()).await;
    wait_entries(&c, 1).await;
    c.context()
        .send("log", "logd", json!({"text": "a\u{0}b"}))
        .await
        .unwrap();
    c.context()
        .send("log", "logd", json!({"text": "after the bad one"}))
        .await
        .unwrap();
    let all = wait_entries(&c, 2).await;
    assert_eq!(all[1]["text"], "after the bad one");
    let err = c
        .context()
        .request("logd", "add", json!({"author": "x", "text": "a\u{0}b"}))
        .await
        .unwrap_err();
    let mqttcal_core::CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(
        error.code,
        mqttcal_core::ErrorCode::InvalidParams,
        "{error:?}"
    );
    assert_eq!(verify(&c).await["ok"], true);
    node.stop().await.unwrap();
}

/// Writes `n` manual entries through logd.
async fn add_entries(c: &mqttcal_core::Client, n: usize, text: &str) {
    for i in 0..n {
        c.context()
            .request(
                "logd",
                "add",
                json!({"author": "QA", "text": format!("{text} {i}")}),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_rotated_key_signs_on_and_the_old_checkpoints_still_verify() {
    let pg = Postgres::start();
    let url = pg.create_database("rotation");
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let old = logd::CheckpointKey::new(b"the key of the first year, 32+ bytes".to_vec()).unwrap();
    let new = logd::CheckpointKey::new(b"the key of the second year, 32+ bytes".to_vec()).unwrap();
    let store = || async { store::open(&url).await.unwrap() };

    let node = start_logd(
        &broker.url(),
        store().await,
        Some(logd::Signer::new(old.clone(), 2)),
    )
    .await;
    let c = client(&broker.url()).await;
    wait_entries(&c, 1).await;
    add_entries(&c, 3, "year one").await;
    node.stop().await.unwrap();

    // Rotated: the new key signs, the old one is retired.
    let signer = logd::Signer::new(new.clone(), 2).retiring(vec![old.clone()]);
    let node = start_logd(&broker.url(), store().await, Some(signer)).await;
    add_entries(&c, 4, "year two").await;
    let v = verify(&c).await;
    assert_eq!(v["ok"], true, "{v}");
    let keys: Vec<String> = pg
        .psql(
            "rotation",
            "SELECT DISTINCT key_id FROM logbook_checkpoints ORDER BY key_id",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected = vec![old.id().to_owned(), new.id().to_owned()];
    expected.sort();
    assert_eq!(keys, expected, "checkpoints signed with both keys");
    node.stop().await.unwrap();

    // Without the retired key, the old checkpoints no longer verify, and verify says why.
    let node = start_logd(
        &broker.url(),
        store().await,
        Some(logd::Signer::new(new, 2)),
    )
    .await;
    let v = verify(&c).await;
    assert_eq!(v["ok"], false, "{v}");
    let problem = v["problem"].as_str().unwrap();
    assert!(
        problem.contains(old.id()) && problem.contains("retired"),
        "{v}"
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_backup_restores_and_verifies_on_postgresql_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let key = logd::CheckpointKey::new(vec![5; 32]).unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("lab.db").display());
    // One client for the whole test: two with the same id would take turns at the broker.
    let c = client(&broker.url()).await;
    for (original, restored) in [
        (pg.create_database("original"), None),
        (sqlite.clone(), Some(dir.path().join("restored.db"))),
    ] {
        let node = start_logd(
            &broker.url(),
            store::open(&original).await.unwrap(),
            Some(logd::Signer::new(key.clone(), 3)),
        )
        .await;
        wait_entries(&c, 1).await;
        add_entries(&c, 7, "before the backup").await;
        let before = search(&c, json!({"limit": 1000})).await;
        node.stop().await.unwrap();
        // The documented procedures: pg_dump and psql; SQLite's `VACUUM INTO`.
        let target = match &restored {
            None => {
                let dump = pg.dump("original");
                let url = pg.create_database("restored");
                pg.restore("restored", &dump);
                url
            }
            Some(file) => {
                let db = rusqlite::Connection::open(dir.path().join("lab.db")).unwrap();
                db.execute("VACUUM INTO ?1", [file.display().to_string()])
                    .unwrap();
                format!("sqlite:{}", file.display())
            }
        };
        let node = start_logd(
            &broker.url(),
            store::open(&target).await.unwrap(),
            Some(logd::Signer::new(key.clone(), 3)),
        )
        .await;
        let v = verify(&c).await;
        if v["ok"] != true {
            let all = search(&c, json!({"limit": 1000})).await;
            panic!("{target}: {v}\n{all:#?}");
        }
        assert!(v["checkpoints"].as_u64().unwrap() >= 2, "{v}");
        let after = search(&c, json!({"limit": 1000})).await;
        // The restored logbook holds every entry, and goes on from there.
        assert_eq!(after[..before.len()], before[..], "{target}");
        node.stop().await.unwrap();
    }
}
