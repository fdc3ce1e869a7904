//! cald killed with SIGKILL in the middle of a job, as processes on a real Mosquitto and
//! PostgreSQL: after its restart the job is `aborted`, no result exists, and labd is free.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

fn spawn_node(
    url: &str,
    config: &std::path::Path,
    database: &str,
    node: &str,
    log: &std::path::Path,
) -> Proc {
    run_node(url, config, node, &[], database, log)
}

async fn job(c: &mqttcal_core::Client, id: &str) -> Value {
    c.context()
        .request("datad", "job", json!({ "id": id }))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cald_killed_mid_job_marks_it_aborted_at_restart_and_stores_no_result() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let pg = Postgres::start();
    let database = pg.create_database("crash");
    let dir = tempfile::tempdir().unwrap();
    let (_sims, labd) = spawn_sim_lab("0.05", &dir.path().join("sims.log"));
    let config = dir.path().join("lab.yaml");
    std::fs::write(&config, labd).unwrap();
    let url = broker.url();
    let log = dir.path().join("nodes.log");
    let _datad = spawn_node(&url, &config, &database, "datad", &log);
    let _labd = spawn_node(&url, &config, &database, "labd", &log);
    let mut cald = spawn_node(&url, &config, &database, "cald", &log);
    let c = client(&url).await;
    for n in ["datad", "labd", "cald"] {
        wait_ping(&c, n).await;
    }
    let ctx = c.context();
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "Z2", "kind": "standard", "serial": "S2", "calibration_due": 1.79e9 + 365.0 * 86_400.0}),
    )
    .await
    .unwrap();
    for (days, v) in [(700.0, 9.999_995_9), (350.0, 9.999_995_9)] {
        ctx.request(
            "datad",
            "add_calibration",
            json!({"equipment": "Z2", "calibrated_at": 1.79e9 - days * 86_400.0, "value": v,
                   "unit": "V", "uncertainty": 2e-7, "coverage_factor": 2.0}),
        )
        .await
        .unwrap();
    }
    ctx.request(
        "cald",
        "checkin",
        json!({"id": "Z1", "customer": "C", "serial": "S1", "nominal_value": 10}),
    )
    .await
    .unwrap();
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-KILL", "procedure":
               {"name": "P", "reference": "Z2", "groups": 100, "readings": 3, "NPLC": 10}}),
    )
    .await
    .unwrap();
    // Kill it in the middle of a group: some steps done, far from the end.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = ctx.request("cald", "jobs", json!({})).await.unwrap();
        if jobs[0]["i"].as_u64().is_some_and(|i| i >= 6) {
            break;
        }
        assert!(Instant::now() < end, "the job does not advance: {jobs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cald.signal("KILL");
    cald.wait_exit(Duration::from_secs(5)).expect("cald ended");
    assert_eq!(job(&c, "J-KILL").await["status"], "running");
    let readings = pg.psql(
        "crash",
        "SELECT count(*) FROM measurements WHERE job = 'J-KILL'",
    );
    assert!(readings.trim().parse::<u32>().unwrap() >= 18, "{readings}");
    // labd is still leased to the dead job (once the dead cald's last step, which may
    // still hold labd's measurement slot, has ended).
    let end = Instant::now() + Duration::from_secs(20);
    let e = loop {
        let e = ctx
            .request("labd", "measure", json!({"src": "Z1", "repetitions": 1}))
            .await
            .unwrap_err();
        let slot = matches!(&e, mqttcal_core::CallError::Remote { error, .. }
            if error.details.as_ref().is_some_and(|d| d.get("limit").is_some()));
        if !slot || Instant::now() > end {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(e.to_string().contains("J-KILL"), "{e}");

    // `follow` does not wait forever for a job whose cald is gone: it gives up, and says
    // why.
    let started = Instant::now();
    let out = output(mqttcal(&url, &["follow", "J-KILL", "--give-up", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cald does not answer"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let cald = spawn_node(&url, &config, &database, "cald", &log);
    let end = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let j = job(&c, "J-KILL").await;
        if j["status"] != "running" {
            break j;
        }
        assert!(
            Instant::now() < end,
            "J-KILL still running after cald's restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended["status"], "aborted", "{ended}");
    let results = ctx
        .request("datad", "results", json!({"id": "J-KILL"}))
        .await
        .unwrap();
    assert_eq!(results, json!([]), "no result from a partial job");
    // The restarted cald released the lease: labd measures again.
    ctx.request("labd", "measure", json!({"src": "Z1", "repetitions": 1}))
        .await
        .unwrap();

    // A clean stop (SIGTERM) ends a running job `cancelled` before cald leaves.
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-TERM", "procedure":
               {"name": "P", "reference": "Z2", "groups": 100, "readings": 3, "NPLC": 10}}),
    )
    .await
    .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while job(&c, "J-TERM").await["status"] != "running" {
        assert!(Instant::now() < end, "J-TERM does not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut cald = cald;
    cald.signal("TERM");
    assert_eq!(cald.wait_exit(Duration::from_secs(20)), Some(0));
    assert_eq!(job(&c, "J-TERM").await["status"], "cancelled");
}
