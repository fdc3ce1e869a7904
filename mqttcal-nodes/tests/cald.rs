//! cald end to end: a real Mosquitto, a real PostgreSQL, labd on simulated instruments over
//! real sockets, datad and logd.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::{CallError, Client, ErrorCode, NodeHandle};
use mqttcal_instruments::sim::{LabParams, SimLab};
use mqttcal_nodes::cald::{self, CaldConfig};
use mqttcal_nodes::labd::{self, LabdConfig};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

const DAY: f64 = 86_400.0;

struct Lab {
    broker: Mosquitto,
    pg: Postgres,
    _sim: SimLab,
    nodes: Vec<NodeHandle>,
    c: Client,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The lab, with Z2 registered as a reference (due in `due_days`) and a history that
/// agrees with the simulator's Z2, and Z1 checked in.
async fn lab(cald_config: CaldConfig) -> Lab {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let pg = Postgres::start();
    let url = pg.create_database("cald");
    let store = mqttcal_store::open(&url).await.unwrap();
    let sim = SimLab::start(
        LabParams {
            time_factor: 0.01,
            ..LabParams::default()
        },
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let t = transport(&broker.url());
    let nodes = vec![
        start_logd(&broker.url(), store.clone(), None).await,
        start_datad(&broker.url(), store).await,
        labd::node("labd", LabdConfig::for_sim_lab(&sim))
            .build()
            .start(&t)
            .await
            .unwrap(),
        cald::node("cald", cald_config)
            .build()
            .start(&t)
            .await
            .unwrap(),
    ];
    let c = client(&broker.url()).await;
    for n in ["datad", "logd", "labd", "cald"] {
        wait_ping(&c, n).await;
    }
    register_reference(&c, "Z2", 10.0 - 4.1e-6, 2e-8, now() + 180.0 * DAY).await;
    let r = c
        .context()
        .request(
            "cald",
            "checkin",
            json!({"id": "Z1", "customer": "ACME", "manufacturer": "Fluke", "model": "732B",
                   "serial": "1234567", "nominal_value": 10.0}),
        )
        .await
        .unwrap();
    assert_eq!(r["id"], "Z1");
    Lab {
        broker,
        pg,
        _sim: sim,
        nodes,
        c,
    }
}

fn procedure(groups: u32) -> Value {
    json!({"name": "DCV-10V-DIFF", "reference": "Z2", "groups": groups, "readings": 2,
           "NPLC": 1, "range": 0.1})
}

/// Waits until datad has job `id` with a final status; that status.
async fn final_status(c: &Client, id: &str, within: Duration) -> Value {
    let end = Instant::now() + within;
    loop {
        if let Ok(j) = c.context().request("datad", "job", json!({"id": id})).await {
            let s = j["status"].as_str().unwrap_or_default();
            if !["planned", "running"].contains(&s) {
                return j;
            }
        }
        assert!(
            Instant::now() < end,
            "job {id} did not end within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn refused_reason(e: CallError) -> String {
    match e {
        CallError::Remote { error, .. } => {
            assert_eq!(error.code, ErrorCode::Refused, "{error:?}");
            error.details.unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        }
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn logbook_has(c: &Client, params: Value, text: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let entries = c
            .context()
            .request("logd", "search", &params)
            .await
            .unwrap();
        if entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"].as_str().unwrap_or_default().contains(text))
        {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calibration_ends_in_a_stored_result_traceable_to_its_readings() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    let mut progress = watch_topic(&lab.broker.url(), "progress").await;
    let started = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-1", "procedure": procedure(3)}),
        )
        .await
        .unwrap();
    assert_eq!(started["steps"], 12);
    let job = final_status(&lab.c, "J-1", Duration::from_secs(60)).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["config_hash"], started["config_hash"]);
    // Too late to cancel, and cald says why.
    match ctx.request("cald", "cancel", json!({"job": "J-1"})).await {
        Err(CallError::Remote { error, .. }) => {
            let d = error.details.unwrap();
            assert_eq!(
                (d["reason"].as_str(), d["status"].as_str()),
                (Some("ended"), Some("done"))
            );
        }
        other => panic!("cancel of a finished job: {other:?}"),
    }
    let results = ctx
        .request("datad", "results", json!({"id": "J-1"}))
        .await
        .unwrap();
    let r = &results[0];
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(r["config_hash"], started["config_hash"]);
    assert_eq!(r["environment_ok"], true);
    let names: Vec<&str> = r["budget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "reference",
            "difference",
            "dmm_gain",
            "emf",
            "reference_stability",
            "temperature",
            "pressure"
        ]
    );
    // The simulator's Z1 is 10 V + 12.3 µV; U is a few tenths of a µV.
    let (v, u) = (
        r["value"].as_f64().unwrap(),
        r["expanded_uncertainty"].as_f64().unwrap(),
    );
    assert!(u > 0.05e-6 && u < 1e-6, "U = {u}");
    assert!((v - (10.0 + 12.3e-6)).abs() < 3.0 * u, "V = {v}, U = {u}");
    let k = r["coverage_factor"].as_f64().unwrap();
    assert!((r["standard_uncertainty"].as_f64().unwrap() * k - u).abs() < 1e-15);
    // One query from the result to its readings: 3 groups × 4 polarities × 2 readings.
    let id = r["id"].as_i64().unwrap();
    let n = lab.pg.psql(
        "cald",
        &format!(
            "SELECT count(*) FROM results r JOIN measurements m ON m.job = r.job WHERE r.id = {id}"
        ),
    );
    assert_eq!(n.trim(), "24", "{n}");
    // The result lists the equipment relied on, with due dates, and the conditions.
    assert_eq!(r["equipment"][0]["id"], "Z2", "{r}");
    assert_eq!(r["equipment"][0]["role"], "reference");
    assert!(r["equipment"][0]["calibration_due"].as_f64().is_some());
    assert!(
        r["environment"]["temperature"]["mean"].as_f64().is_some(),
        "{r}"
    );
    // So does the job's record.
    assert_eq!(job["body"]["equipment"][0]["id"], "Z2", "{job}");
    assert!(job["body"]["equipment"][0]["calibration_due"]
        .as_f64()
        .is_some());
    // Progress went out step by step, up to 12 of 12.
    let seen = progress_steps(&mut progress, "J-1").await;
    assert!(seen.contains(&12) && seen.len() >= 12, "{seen:?}");
    assert!(logbook_has(&lab.c, json!({"reference": "J-1"}), "done: Z1 =").await);
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_17025_forbids_are_refused_and_logged() {
    let lab = lab(CaldConfig {
        instruments: [
            ("scanner-x".to_owned(), "SCX-1".to_owned()),
            ("dmm".to_owned(), "DMM-1".to_owned()),
        ]
        .into(),
        ..CaldConfig::default()
    })
    .await;
    let ctx = lab.c.context();
    // A DMM swapped for another one (its serial, from the 3458A's calibration string, is
    // not the register's): refused, so no result records the wrong due date.
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "DMM-1", "kind": "instrument", "serial": "2823A99999",
               "calibration_due": now() + 90.0 * DAY}),
    )
    .await
    .unwrap();
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-DMM", "procedure": procedure(2)}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("instrument `dmm`"), "{e}");
    assert_eq!(refused_reason(e), "serial_mismatch");
    // With its true serial it passes, so every refusal below is the scanner's or the
    // reference's.
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "DMM-1", "kind": "instrument", "serial": mqttcal_instruments::sim::SIM_CALSTR,
               "calibration_due": now() + 90.0 * DAY}),
    )
    .await
    .unwrap();
    // An instrument whose identity differs from the register.
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "SCX-1", "kind": "instrument", "serial": "NOT-THIS-ONE", "calibration_due": now() + 90.0 * DAY}),
    )
    .await
    .unwrap();
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-S", "procedure": procedure(2)}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "serial_mismatch");
    assert!(logbook_has(&lab.c, json!({"tag": "refusal"}), "J-S refused").await);
    // The right serial: the job is allowed.
    let ids = ctx.request("labd", "identify", json!({})).await.unwrap();
    let serial = ids["scanner-x"]
        .as_str()
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .trim()
        .to_owned();
    ctx.request("datad", "register_equipment", json!({"id": "SCX-1", "kind": "instrument", "serial": serial, "calibration_due": now() - DAY}))
        .await
        .unwrap();
    // ... but now overdue.
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-O", "procedure": procedure(2)}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "overdue");
    assert!(logbook_has(&lab.c, json!({"tag": "overdue"}), "J-O refused").await);
    // An overdue reference.
    register_reference(&lab.c, "Z3", 1.018 + 0.8e-6, 2e-9, now() - 2.0 * DAY).await;
    ctx.request("datad", "register_equipment", json!({"id": "SCX-1", "kind": "instrument", "serial": serial, "calibration_due": now() + DAY}))
        .await
        .unwrap();
    let mut p = procedure(2);
    p["reference"] = json!("Z3");
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-R", "procedure": p}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "overdue");
    assert!(logbook_has(&lab.c, json!({"reference": "J-R"}), "reference `Z3` is due").await);
    // A reference in calibration now but due before the job's expected end (8 steps of
    // 1000 readings at NPLC 1: some 16 minutes).
    register_reference(&lab.c, "Z4", 10.0 - 4.1e-6, 2e-8, now() + 120.0).await;
    let mut p = procedure(2);
    p["reference"] = json!("Z4");
    p["readings"] = json!(1000);
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-E", "procedure": p}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "overdue");
    // Nothing of these jobs reached datad.
    for id in ["J-DMM", "J-S", "J-O", "J-R", "J-E"] {
        assert!(ctx
            .request("datad", "job", json!({"id": id}))
            .await
            .is_err());
    }
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_is_refused_while_a_job_runs_and_a_cancelled_job_has_no_result() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    // A time in the past would dodge the due-date checks.
    let e = ctx
        .request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-P", "procedure": procedure(2), "at": 0}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`at`"), "{e}");
    // The lab's own reference is never overwritten by a check-in.
    let e = ctx
        .request(
            "cald",
            "checkin",
            json!({"id": "Z2", "customer": "X", "serial": "1", "nominal_value": 10}),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "registered");
    // Two starts at once on one item (and a checkout meanwhile): exactly one job gets it.
    let start = |id: &'static str| {
        let ctx = ctx.clone();
        async move {
            ctx.request(
                "cald",
                "start",
                json!({"item": "Z1", "job": id, "procedure": procedure(1000)}),
            )
            .await
        }
    };
    let (a, b, out) = tokio::join!(
        start("J-C"),
        start("J-D"),
        ctx.request("cald", "checkout", json!({"id": "Z1"}))
    );
    assert!(!(a.is_ok() && b.is_ok()), "{a:?} {b:?}");
    let a_won = a.is_ok();
    let job = match (out, a_won) {
        (Err(e), _) => {
            // A start came first: the other start and the checkout found the item taken.
            assert_eq!(refused_reason(e), "job_running");
            let loser = if a_won {
                b.unwrap_err()
            } else {
                a.unwrap_err()
            };
            assert_eq!(refused_reason(loser), "job_running");
            if a_won {
                "J-C"
            } else {
                "J-D"
            }
        }
        (Ok(_), _) => {
            // The checkout came first: neither start may have the item.
            for r in [a, b] {
                let reason = refused_reason(r.unwrap_err());
                assert!(
                    ["not_checked_in", "checked_out"].contains(&reason.as_str()),
                    "{reason}"
                );
            }
            ctx.request(
                "cald",
                "checkin",
                json!({"id": "Z1", "customer": "ACME", "serial": "1234567", "nominal_value": 10}),
            )
            .await
            .unwrap();
            start("J-C").await.unwrap();
            "J-C"
        }
    };
    let e = ctx
        .request("cald", "checkout", json!({"id": "Z1"}))
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "job_running");
    // Once the job has taken labd (after its start checks)...
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = ctx.request("cald", "jobs", json!({})).await.unwrap();
        if jobs[0]["i"].as_u64().is_some_and(|i| i >= 1) {
            break;
        }
        assert!(Instant::now() < end, "the job does not start: {jobs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... naming the job does not make another node its holder: no lease, release or
    // measurement for it from here.
    for (cap, params) in [
        (
            "measure",
            json!({"src": "Z1", "repetitions": 1, "job": job}),
        ),
        ("lease", json!({"job": job, "seconds": 3600})),
        ("release", json!({"job": job})),
        ("NPLC", json!({"NPLC": 100})),
    ] {
        let mut refused = None;
        for _ in 0..100 {
            match ctx.request("labd", cap, &params).await {
                Err(CallError::Remote { error, .. })
                    if error
                        .details
                        .as_ref()
                        .is_some_and(|d| d.get("limit").is_some()) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(CallError::Remote { error, .. }) => {
                    refused = Some(error);
                    break;
                }
                other => panic!("{cap} for another node's job: {other:?}"),
            }
        }
        let error = refused.expect("an answer that is not the slot");
        assert!(
            [ErrorCode::Busy, ErrorCode::Refused].contains(&error.code),
            "{cap}: {error:?}"
        );
        if cap == "lease" {
            // Not even allowed to ask: labd lends itself only to the nodes it is told of.
            assert_eq!(error.details.unwrap()["reason"], "not_allowed");
        } else {
            assert!(error.message.contains(job), "{cap}: {}", error.message);
        }
    }
    let job: &str = job;
    let jobs = ctx.request("cald", "jobs", json!({})).await.unwrap();
    assert_eq!(jobs[0]["job"], job, "{jobs}");
    // labd is leased to the job: anyone else's measurement is busy, naming it (or busy
    // with its one measurement slot taken, without a name: asked again, for up to 5 s on a
    // loaded machine).
    let mut named = None;
    for _ in 0..250 {
        match ctx
            .request("labd", "measure", json!({"src": "Z1", "repetitions": 1}))
            .await
        {
            Err(CallError::Remote { error, .. }) if error.code == ErrorCode::Busy => {
                if let Some(job) = error.details.as_ref().and_then(|d| d.get("job")) {
                    named = Some(job.clone());
                    break;
                }
            }
            other => panic!("a measurement during the job: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(named, Some(json!(job)));
    ctx.request("cald", "cancel", json!({"job": job}))
        .await
        .unwrap();
    let record = final_status(&lab.c, job, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    let results = ctx
        .request("datad", "results", json!({"id": job}))
        .await
        .unwrap();
    assert_eq!(results, json!([]));
    // The lease ended with the job.
    ctx.request("labd", "measure", json!({"src": "Z1", "repetitions": 1}))
        .await
        .unwrap();
    ctx.request("cald", "checkout", json!({"id": "Z1"}))
        .await
        .unwrap();
    let item = ctx
        .request("datad", "equipment", json!({"id": "Z1"}))
        .await
        .unwrap();
    assert!(item["checked_out"].as_f64().is_some(), "{item}");
    // Out once: a second checkout is refused; both are in the logbook under the item.
    let e = ctx
        .request("cald", "checkout", json!({"id": "Z1"}))
        .await
        .unwrap_err();
    assert_eq!(refused_reason(e), "checked_out");
    for text in ["Z1 checked in", "Z1 checked out", "checkout of Z1 refused"] {
        assert!(
            logbook_has(&lab.c, json!({"reference": "Z1"}), text).await,
            "{text}"
        );
    }
    // Back for another calibration, asked for at check-in: the job is planned with it.
    let r = ctx
        .request(
            "cald",
            "checkin",
            json!({"id": "Z1", "customer": "ACME", "serial": "1234567", "nominal_value": 10,
                   "calibration": {"procedure": procedure(2), "job": "J-AGAIN"}}),
        )
        .await
        .unwrap();
    assert_eq!(r["job"]["job"], "J-AGAIN", "{r}");
    let record = final_status(&lab.c, "J-AGAIN", Duration::from_secs(60)).await;
    assert_eq!(record["status"], "done", "{record}");
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_outside_the_limits_flag_the_result_or_abort_the_job() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    let mut p = procedure(2);
    p["limits"] = json!({"temperature": [30.0, 31.0]});
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-F", "procedure": p}),
    )
    .await
    .unwrap();
    assert_eq!(
        final_status(&lab.c, "J-F", Duration::from_secs(60)).await["status"],
        "done"
    );
    let results = ctx
        .request("datad", "results", json!({"id": "J-F"}))
        .await
        .unwrap();
    assert_eq!(results[0]["environment_ok"], false, "{results}");
    let mut p = procedure(2);
    p["limits"] = json!({"temperature": [30.0, 31.0], "on_violation": "abort"});
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-A", "procedure": p}),
    )
    .await
    .unwrap();
    let job = final_status(&lab.c, "J-A", Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{job}"
    );
    let results = ctx
        .request("datad", "results", json!({"id": "J-A"}))
        .await
        .unwrap();
    assert_eq!(results, json!([]));
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

/// A raw subscription to `topic`.
async fn watch_topic(url: &str, topic: &str) -> mqttcal_core::transport::Link {
    use mqttcal_core::transport::{QoS, SessionSpec, Subscription, Transport};
    transport(url)
        .connect(SessionSpec::new(
            format!("watch-{topic}-{}", std::process::id()),
            vec![Subscription::new(topic, QoS::AtMostOnce)],
        ))
        .await
        .unwrap()
}

/// The step counts `i` of the progress messages of `job` received so far.
async fn progress_steps(link: &mut mqttcal_core::transport::Link, job: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(300), link.events.recv()).await
    {
        if let mqttcal_core::transport::Event::Message { payload, .. } = ev {
            let v: Value = serde_json::from_slice(&payload).unwrap();
            if v["job"] == job {
                seen.push(v["i"].as_u64().unwrap());
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_left_running_by_a_killed_cald_is_aborted_at_its_next_start() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    // What a cald killed mid-job leaves behind: its job `running`, some readings, no result.
    ctx.request(
        "datad",
        "save_job",
        json!({"id": "J-K", "item": "Z1", "status": "running", "body": {"node": "cald-b"}}),
    )
    .await
    .unwrap();
    let other =
        json!({"id": "J-X", "item": "Z1", "status": "running", "body": {"node": "someone-else"}});
    ctx.request("datad", "save_job", &other).await.unwrap();
    let again = cald::node("cald-b", CaldConfig::default())
        .build()
        .start(&transport(&lab.broker.url()))
        .await
        .unwrap();
    let job = final_status(&lab.c, "J-K", Duration::from_secs(10)).await;
    assert_eq!(job["status"], "aborted", "{job}");
    assert!(logbook_has(&lab.c, json!({"reference": "J-K"}), "aborted").await);
    let results = ctx
        .request("datad", "results", json!({"id": "J-K"}))
        .await
        .unwrap();
    assert_eq!(results, json!([]));
    // Another cald's job is left alone.
    let x = ctx
        .request("datad", "job", json!({"id": "J-X"}))
        .await
        .unwrap();
    assert_eq!(x["status"], "running");
    again.stop().await.unwrap();
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_a_measurement_begun_before_it_and_says_so() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    // Somebody's long measurement (some 12 s at the simulator's speed) holds labd's slot
    // when the job starts: the job takes the lease, waits for the slot and then runs.
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let _watch = watch_progress(&lab.broker.url(), progress_tx).await;
    let long = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.request_timeout(
                "labd",
                "measure",
                json!({"src": "Z1", "repetitions": 600, "NPLC": 100}),
                Duration::from_secs(120),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-W", "procedure": procedure(2)}),
    )
    .await
    .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(text) = progress.recv().await {
            if text.contains("waiting for labd") {
                return text;
            }
        }
        String::new()
    })
    .await
    .expect("a progress message saying the job waits for labd");
    assert!(waited.contains("busy"), "{waited}");
    let long = long.await.unwrap();
    assert!(long.is_ok(), "the earlier measurement ends well: {long:?}");
    let job = final_status(&lab.c, "J-W", Duration::from_secs(60)).await;
    assert_eq!(job["status"], "done", "{job}");
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

/// Sends the `text` of every progress message of job J-W on `tx`.
async fn watch_progress(
    url: &str,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};
    let mut link = transport(url)
        .connect(SessionSpec::new(
            "progress-watch",
            vec![Subscription::new("progress", QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(e) = link.events.recv().await {
            if let Event::Message { payload, .. } = e {
                let v: Value = serde_json::from_slice(&payload).unwrap_or_default();
                if v["job"] == "J-W" {
                    let _ = tx.send(v["text"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cald_says_datad_is_out_before_its_caller_gives_up() {
    let mut lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    let datad = lab.nodes.remove(1);
    datad.stop().await.unwrap();
    for (cap, params) in [
        (
            "checkin",
            json!({"id": "Z9", "customer": "C", "serial": "9", "nominal_value": 10}),
        ),
        ("checkout", json!({"id": "Z1"})),
        (
            "start",
            json!({"item": "Z1", "job": "J-X", "procedure": procedure(2)}),
        ),
    ] {
        let t0 = Instant::now();
        let e = ctx.request("cald", cap, &params).await.unwrap_err();
        assert!(
            matches!(&e, CallError::Remote { error, .. } if error.message.contains("datad")),
            "{cap}: {e}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{cap}: {:?}",
            t0.elapsed()
        );
    }
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queue_behind_each_other_and_recheck_their_equipment_at_their_start() {
    let lab = lab(CaldConfig::default()).await;
    let ctx = lab.c.context();
    // Twenty check-ins of one new id at once: exactly one is told it succeeded.
    let checkins: Vec<_> = (0..20)
        .map(|i| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                ctx.request(
                    "cald",
                    "checkin",
                    json!({"id": "Z3", "customer": format!("C{i}"), "serial": format!("S{i}"),
                           "nominal_value": 1.018}),
                )
                .await
            })
        })
        .collect();
    let mut accepted = 0;
    for c in checkins {
        accepted += usize::from(c.await.unwrap().is_ok());
    }
    assert_eq!(accepted, 1);
    // Two jobs of this cald at once (Z1 against Z2, Z3 against Z4): the second waits for
    // the first's lease, then runs.
    register_reference(&lab.c, "Z4", 1.018 - 1.7e-6, 2e-9, now() + 180.0 * DAY).await;
    let mut second = procedure(2);
    second["reference"] = json!("Z4");
    for (job, item, p) in [("J-Q1", "Z1", procedure(2)), ("J-Q2", "Z3", second)] {
        ctx.request(
            "cald",
            "start",
            json!({"item": item, "job": job, "procedure": p}),
        )
        .await
        .unwrap();
    }
    for job in ["J-Q1", "J-Q2"] {
        let record = final_status(&lab.c, job, Duration::from_secs(60)).await;
        assert_eq!(record["status"], "done", "{record}");
    }
    // A lease forged in cald's name for a job it does not run (on this open broker anyone
    // can claim a name): cald ends it and runs its job instead of failing.
    {
        use mqttcal_core::transport::{Outgoing, QoS, SessionSpec, Transport};
        let forger = transport(&lab.broker.url())
            .connect(SessionSpec::new("forger", vec![]))
            .await
            .unwrap();
        let forged = json!({"from": "cald", "to": "labd", "request": "lease",
                            "requestid": "cald-forged-1", "job": "GHOST", "seconds": 600});
        forger
            .publisher
            .publish(Outgoing {
                topic: "request".into(),
                payload: serde_json::to_vec(&forged).unwrap().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .await
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let e = ctx
                .request("labd", "measure", json!({"src": "Z1", "repetitions": 1}))
                .await;
            if matches!(&e, Err(e) if e.to_string().contains("GHOST")) {
                break;
            }
            assert!(Instant::now() < end, "the forged lease did not take: {e:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ctx.request(
            "cald",
            "start",
            json!({"item": "Z1", "job": "J-AFTER-GHOST", "procedure": procedure(2)}),
        )
        .await
        .unwrap();
        let record = final_status(&lab.c, "J-AFTER-GHOST", Duration::from_secs(60)).await;
        assert_eq!(record["status"], "done", "{record}");
    }
    // A reference found overdue after the job was planned: the job fails at its start.
    let at = now() + 2.0;
    ctx.request(
        "cald",
        "start",
        json!({"item": "Z1", "job": "J-LATE", "procedure": procedure(2), "at": at}),
    )
    .await
    .unwrap();
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "Z2", "kind": "standard", "serial": "SN-Z2", "nominal_value": 10.0,
               "unit": "V", "calibration_due": now() - DAY}),
    )
    .await
    .unwrap();
    let record = final_status(&lab.c, "J-LATE", Duration::from_secs(30)).await;
    assert_eq!(record["status"], "failed", "{record}");
    let reason = record["body"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("at its start") && reason.contains("Z2"),
        "{reason}"
    );
    for n in lab.nodes {
        n.stop().await.unwrap();
    }
}
