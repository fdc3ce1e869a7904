//! Nothing lost at the source: `mqttcal run labd` with an outbox streams 10,000 readings
//! of simulated instruments (over real sockets) to a datad process on PostgreSQL, through
//! a Mosquitto with the production settings, and is SIGKILLed three times mid-stream,
//! each time while the broker is stalled (SIGSTOP), so that readings labd has made are
//! not acknowledged yet. After each kill the outbox file says how many readings labd had
//! made and how many it still kept; labd starts again, sends what the outbox kept, and is
//! asked for the rest. In the end datad holds exactly 10,000 distinct readings, each of
//! labd's runs a whole `seq` range, and each killed run is closed (its successor said
//! `bye` for it), not left with an unknown tail.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const READINGS: u64 = 10_000;
/// Readings a run of labd makes before it is killed.
const PER_RUN: u64 = 1_500;

fn spawn(url: &str, config: &Path, kind: &str, database: &str, log: &Path) -> Proc {
    run_node(url, config, kind, &[], database, log)
}

/// Distinct readings of labd stored, and rows in all.
fn stored(pg: &Postgres) -> (u64, u64) {
    let out = pg.psql(
        "outbox",
        "SELECT count(DISTINCT dedup_key), count(*) FROM measurements WHERE origin = 'labd'",
    );
    let (distinct, rows) = out.trim().split_once('|').unwrap();
    (distinct.parse().unwrap(), rows.parse().unwrap())
}

/// Readings labd published in this run, as its `ping` says.
async fn published(c: &mqttcal_core::Client) -> Option<u64> {
    let pong = c
        .context()
        .request_timeout("labd", "ping", json!({}), Duration::from_secs(2))
        .await
        .ok()?;
    Some(pong["seqs"]["meas"].as_u64().map_or(0, |last| last + 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labd_killed_three_times_mid_stream_loses_no_reading() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let pg = Postgres::start();
    let database = pg.create_database("outbox");
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("labd.outbox");
    let (_sims, section) = spawn_sim_lab("0.0002", &dir.path().join("sims.log"));
    let labd_yaml = dir.path().join("labd.yaml");
    std::fs::write(
        &labd_yaml,
        format!("{section}  outbox:\n    path: \"{}\"\n", outbox.display()),
    )
    .unwrap();
    let datad_yaml = dir.path().join("datad.yaml");
    std::fs::write(&datad_yaml, "datad: {}\n").unwrap();
    let logs = || log_tails(dir.path(), &["labd.log", "datad.log", "sims.log"]);
    let (labd_log, datad_log) = (dir.path().join("labd.log"), dir.path().join("datad.log"));
    let mut watch = watch_announce(&url, "outbox-watch").await;
    let _datad = spawn(&url, &datad_yaml, "datad", &database, &datad_log);
    expect_announce(&mut watch, "datad", "hello", Duration::from_secs(20)).await;
    let mut labd = spawn(&url, &labd_yaml, "labd", &database, &labd_log);
    expect_announce(&mut watch, "labd", "hello", Duration::from_secs(20)).await;
    let c = client(&url).await;

    let mut made = 0;
    let mut kept_at_kills = Vec::new();
    for kill in 1..=3 {
        let ctx = c.context().clone();
        let rest = READINGS - made;
        let call = tokio::spawn(async move {
            ctx.request_timeout(
                "labd",
                "measure",
                json!({"src": "Z1", "repetitions": rest}),
                Duration::from_secs(600),
            )
            .await
        });
        let end = Instant::now() + Duration::from_secs(60);
        while published(&c).await.unwrap_or(0) < PER_RUN {
            assert!(
                Instant::now() < end,
                "labd run {kill} made fewer than {PER_RUN} readings in 60 s\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The broker stalls: labd goes on measuring, and what it publishes now waits
        // unacknowledged, in its memory and its outbox, when it is killed.
        let broker_pid = broker.pid().unwrap().to_string();
        let signal = |sig: &str| {
            std::process::Command::new("kill")
                .args([sig, &broker_pid])
                .status()
                .unwrap()
        };
        signal("-STOP");
        tokio::time::sleep(Duration::from_millis(300)).await;
        labd.signal("KILL");
        let exited = labd.wait_exit(Duration::from_secs(5));
        signal("-CONT");
        assert!(exited.is_some());
        call.abort();
        let state = mqttcal_core::outbox::inspect(&outbox).unwrap();
        made = state.last_id.map_or(0, |last| last + 1);
        kept_at_kills.push(state.kept.len());
        println!(
            "kill {kill}: labd had made {made} readings; its outbox kept {} the broker had not confirmed",
            state.kept.len()
        );
        assert!(made < READINGS, "the stream ended before kill {kill}");
        labd = spawn(&url, &labd_yaml, "labd", &database, &labd_log);
        expect_announce(&mut watch, "labd", "hello", Duration::from_secs(20)).await;
    }
    assert!(
        kept_at_kills.iter().all(|&n| n > 0),
        "each kill finds readings the broker has not acknowledged: {kept_at_kills:?}"
    );

    let rest = READINGS - made;
    let done = c
        .context()
        .request_timeout(
            "labd",
            "measure",
            json!({"src": "Z1", "repetitions": rest}),
            Duration::from_secs(600),
        )
        .await
        .unwrap_or_else(|e| panic!("the last {rest} readings: {e}\n{}", logs()));
    assert_eq!(done["readings"].as_array().unwrap().len() as u64, rest);

    let end = Instant::now() + Duration::from_secs(60);
    let (distinct, rows) = loop {
        let now = stored(&pg);
        if now.0 >= READINGS || Instant::now() > end {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (distinct, rows),
        (READINGS, READINGS),
        "datad holds every reading exactly once\n{}",
        logs()
    );
    // Four runs of labd, each a whole range of `seq` from 0.
    let runs = pg.psql(
        "outbox",
        "SELECT count(*), min(seq), max(seq) FROM measurements WHERE origin = 'labd' GROUP BY epoch ORDER BY min(sent_at)",
    );
    let runs: Vec<(u64, u64, u64)> = runs
        .lines()
        .map(|l| {
            let f: Vec<u64> = l.split('|').map(|x| x.trim().parse().unwrap()).collect();
            (f[0], f[1], f[2])
        })
        .collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    for (n, min, max) in &runs {
        assert_eq!((*min, *max), (0, n - 1), "a run with a hole: {runs:?}");
    }
    // Once the broker confirmed the last reading, the outbox keeps nothing.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let pong = c
            .context()
            .request("labd", "ping", json!({}))
            .await
            .unwrap();
        if pong["outbox"] == 0 {
            break;
        }
        assert!(Instant::now() < end, "the outbox still keeps: {pong}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each killed run was closed by the `bye` its successor sent for it once the outbox had
    // sent its tail again: no stream is left `cut` with an unknown tail.
    let gaps = gaps(&c, "datad", "labd").await;
    assert_eq!(gaps["missing"], 0, "{gaps}");
    let states: Vec<&str> = gaps["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states.len(), 4, "{gaps}");
    assert_eq!(
        states.iter().filter(|s| **s == "closed").count(),
        3,
        "the three killed runs are closed: {gaps}"
    );
    labd.signal("TERM");
    assert_eq!(labd.wait_exit(Duration::from_secs(10)), Some(0));
    let state = mqttcal_core::outbox::inspect(&outbox).unwrap();
    assert!(state.kept.is_empty(), "a clean stop leaves nothing kept");
    assert_eq!(state.last_id, Some(READINGS - 1), "one id per reading");
    assert!(
        state.last_message.is_none(),
        "a clean stop, its bye confirmed, leaves the next run no earlier run to close"
    );
}
