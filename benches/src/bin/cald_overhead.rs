//! The time cald adds to a calibration beyond the instruments' own time, at realistic
//! instrument timing, in one run: each job's wall time (from `start` to its `done` progress
//! message) against the time the simulated instruments spent on its operations
//! (integration, settling, relays, sensor reads), counted by the simulator itself.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin cald_overhead -- --mosquitto nodelay --jobs 5
//!
//! datad keeps its records in a PostgreSQL cluster of its own (`MQTTCAL_PG_BINDIR`).
//! Prints one JSON line per job and a summary with the median overhead and the load.

use std::time::{Duration, Instant};

use mqttcal_benches::{broker_from_args, number_arg, round1};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, MqttTransport, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::Client;
use mqttcal_instruments::sim::{LabParams, SimLab};
use mqttcal_nodes::cald::{self, CaldConfig};
use mqttcal_nodes::datad::{self, DatadConfig};
use mqttcal_nodes::labd::{self, LabdConfig};
use serde_json::json;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, _broker) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let jobs = number_arg(&args, "--jobs", 5);
    let groups = number_arg(&args, "--groups", 2);
    let load_at_start = mqttcal_benches::load_average();
    let pg = mqttcal_testkit::Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("bench"))
        .await
        .unwrap();
    let sim = SimLab::start(LabParams::default(), "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let t = MqttTransport::new(cfg);
    let nodes = vec![
        datad::node("datad", &DatadConfig::default(), store)
            .build()
            .start(&t)
            .await
            .unwrap(),
        labd::node("labd", LabdConfig::for_sim_lab(&sim))
            .build()
            .start(&t)
            .await
            .unwrap(),
        cald::node("cald", CaldConfig::default())
            .build()
            .start(&t)
            .await
            .unwrap(),
    ];
    let mut progress = t
        .connect(SessionSpec::new(
            format!("cald-bench-{}", std::process::id()),
            vec![Subscription::new(cald::PROGRESS, QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let c = Client::connect(&t, &format!("cald-bench-c-{}", std::process::id()), "")
        .await
        .unwrap();
    let ctx = c.context();
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "Z2", "kind": "standard",
               "calibration_due": mqttcal_core::clock::Timestamp::now().as_secs_f64() + 3e7}),
    )
    .await
    .unwrap();
    for (back, v) in [(730.0, 9.999_995_9), (365.0, 9.999_995_9)] {
        ctx.request(
            "datad",
            "add_calibration",
            json!({"equipment": "Z2", "calibrated_at": 1.79e9 - back * 86_400.0, "value": v,
                   "unit": "V", "uncertainty": 2e-7, "coverage_factor": 2.0}),
        )
        .await
        .unwrap();
    }
    ctx.request(
        "cald",
        "checkin",
        json!({"id": "Z1", "customer": "C", "serial": "1", "nominal_value": 10}),
    )
    .await
    .unwrap();
    let mut overheads = Vec::new();
    for k in 0..jobs {
        let job = format!("B-{k}-{}", std::process::id());
        let busy0 = sim.model.lock().unwrap().instrument_time();
        let t0 = Instant::now();
        ctx.request(
            "cald",
            "start",
            json!({"item": "Z1", "job": job, "procedure": {"name": "bench", "reference": "Z2",
                   "groups": groups, "readings": 5, "NPLC": 10}}),
        )
        .await
        .unwrap();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(600), progress.events.recv())
                .await
                .expect("progress within 10 minutes")
                .expect("the broker stays");
            if let Event::Message { payload, .. } = ev {
                let env = Envelope::decode(&payload, usize::MAX).unwrap();
                let text = env
                    .fields
                    .get("text")
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                if env.fields.get("job").and_then(|j| j.as_str()) == Some(job.as_str())
                    && ["done", "failed", "cancelled"].contains(&text)
                {
                    assert_eq!(text, "done", "job {job} ended {text}");
                    break;
                }
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let busy = sim.model.lock().unwrap().instrument_time() - busy0;
        let overhead = (wall / busy - 1.0) * 100.0;
        overheads.push(overhead);
        println!(
            "{}",
            json!({"job": job, "wall_s": round1(wall * 10.0) / 10.0,
                   "instruments_s": round1(busy * 10.0) / 10.0, "overhead_pct": (overhead * 100.0).round() / 100.0})
        );
    }
    overheads.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "bench": "cald_overhead",
            "broker": url,
            "jobs": jobs,
            "groups": groups,
            "readings": 5,
            "nplc": 10,
            "median_overhead_pct": (overheads[overheads.len() / 2] * 100.0).round() / 100.0,
            "min_overhead_pct": (overheads[0] * 100.0).round() / 100.0,
            "max_overhead_pct": (overheads[overheads.len() - 1] * 100.0).round() / 100.0,
            "load_at_start": load_at_start,
            "load_at_end": mqttcal_benches::load_average(),
        })
    );
    for n in nodes {
        n.stop().await.unwrap();
    }
}
