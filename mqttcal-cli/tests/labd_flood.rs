//! labd under a report-style trigger of 20,000 readings on `meas`: it keeps answering
//! `ping` and stops on SIGTERM within 2 s, on Mosquitto and on the lab's embedded broker.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::Client;
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::json;

/// Starts `mqttcal sim-lab` and returns it with the labd configuration it printed.
fn spawn_sim_lab(time_factor: &str, log: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqttcal"))
        .args(["sim-lab", "--time-factor", time_factor])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut section = String::new();
    let mut inside = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("a labd configuration") {
            inside = true;
        } else if inside {
            section.push_str(&line);
            section.push('\n');
            if line.trim_start().starts_with("channels:") {
                break;
            }
        }
    }
    assert!(
        section.contains("labd:"),
        "sim-lab printed no configuration"
    );
    // Keep reading: a write to a closed pipe would end the simulators.
    std::thread::spawn(move || lines.for_each(drop));
    (Proc(child), section)
}

/// Pings `labd` every 20 ms for `span` while it measures; the latencies, sorted.
async fn ping_while_measuring(c: &Client, span: Duration) -> (Vec<Duration>, u64) {
    let mut times = Vec::new();
    let mut busy_seen = 0;
    let end = Instant::now() + span;
    while Instant::now() < end {
        let t0 = Instant::now();
        let pong = c
            .context()
            .request_timeout("labd", "ping", json!({}), Duration::from_secs(2))
            .await
            .expect("labd answers ping while it measures");
        times.push(t0.elapsed());
        if pong["running"] == 1 {
            busy_seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times.sort();
    (times, busy_seen)
}

fn p(times: &[Duration], q: f64) -> Duration {
    times[((times.len() - 1) as f64 * q).round() as usize]
}

async fn trigger_and_check(url: &str, lab: &mut Proc, what: &str, log: Option<&std::path::Path>) {
    let log = || {
        log.map(|dir| {
            ["labd.log", "sims.log", "labd.yaml"]
                .iter()
                .map(|f| {
                    format!(
                        "--- {f}\n{}",
                        std::fs::read_to_string(dir.join(f)).unwrap_or_default()
                    )
                })
                .collect::<String>()
        })
        .unwrap_or_default()
    };
    let c = client(url).await;
    wait_ping(&c, "labd").await;
    c.context()
        .send(
            "meas",
            "labd",
            json!({"cmd": "measure", "src": "Z1", "repetitions": 20000}),
        )
        .await
        .unwrap();
    let (times, busy_seen) = ping_while_measuring(&c, Duration::from_secs(6)).await;
    println!(
        "{what}: {} pings during the measurement, p50 {:?}, p99 {:?}, max {:?}",
        times.len(),
        p(&times, 0.5),
        p(&times, 0.99),
        times.last().unwrap()
    );
    assert!(
        busy_seen > 10,
        "the measurement ran during the pings ({busy_seen}):\n{}",
        log()
    );
    assert!(
        p(&times, 0.99) < Duration::from_millis(500),
        "{what}: p99 {:?}",
        p(&times, 0.99)
    );
    let pong = c
        .context()
        .request("labd", "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(pong["running"], 1, "still measuring at the SIGTERM: {pong}");
    // More readings than a handler's queue holds went out and came back to labd's
    // subscription: what used to stall it for good.
    let sent = pong["seqs"]["meas"].as_u64().unwrap_or(0);
    println!("{what}: {sent} readings published before the SIGTERM");
    assert!(sent > 2048, "{what}: only {sent} readings");
    let t0 = Instant::now();
    lab.signal("TERM");
    let code = lab.wait_exit(Duration::from_secs(2));
    println!("{what}: stopped {:?} after SIGTERM", t0.elapsed());
    assert_eq!(code, Some(0), "{what}: exits cleanly within 2 s of SIGTERM");
}

#[tokio::test]
async fn labd_on_mosquitto_answers_ping_through_20000_triggered_readings() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let dir = tempfile::tempdir().unwrap();
    let (_sims, section) = spawn_sim_lab("0.001", &dir.path().join("sims.log"));
    let config = dir.path().join("labd.yaml");
    std::fs::write(&config, section).unwrap();
    let log = std::fs::File::create(dir.path().join("labd.log")).unwrap();
    let mut cmd = mqttcal(
        &broker.url(),
        &["--config", config.to_str().unwrap(), "run", "labd"],
    );
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    let mut labd = Proc(cmd.spawn().unwrap());
    trigger_and_check(&broker.url(), &mut labd, "Mosquitto", Some(dir.path())).await;
    let log = std::fs::read_to_string(dir.path().join("labd.log")).unwrap();
    assert!(
        log.contains("cancelled"),
        "the measurement is said to be cancelled:\n{log}"
    );
}

#[tokio::test]
async fn the_lab_on_its_embedded_broker_answers_ping_through_20000_triggered_readings() {
    let db = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", db.path().join("lab.db").display());
    let (mut lab, url, _) = spawn_broker(&[
        "lab",
        "--database",
        &database,
        "--port",
        "0",
        "--time-factor",
        "0.001",
    ]);
    trigger_and_check(&url, &mut lab, "embedded broker", None).await;
}
