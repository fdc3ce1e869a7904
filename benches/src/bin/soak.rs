//! A long run of the lab with each node as its own process, printing every node's resident
//! memory over time: a leak shows as a line that keeps climbing.
//!
//! Run with: cargo build --release -p mqttcal-cli -p mqttcal-benches &&
//! target/release/soak --minutes 10 [--every 10] [--postgres]
//!
//! Starts a Mosquitto with the production settings (`MQTTCAL_MOSQUITTO`), simulated
//! instruments (`mqttcal sim-lab`), and `mqttcal run` labd, datad and logd (SQLite in a
//! temporary folder, or a private PostgreSQL with `--postgres`, `MQTTCAL_PG_BINDIR`). labd
//! measures without pause; a client calls every node about 20 times a second (`ping`,
//! datad `stats`, `query` and `gaps`, logd `add` and `search`) and counts failed calls.
//! Every `--every` seconds one JSON line gives each process's VmRSS (KiB), readings stored
//! and missing, and calls made and failed; the last line compares each node's memory at the
//! end of the first interval (after warm-up) with the end of the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqttcal_benches::{mqttcal_binary, number_arg, Procs};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::Client;
use mqttcal_testkit::{rss_kib, spawn_sim_lab, BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const NODES: [&str; 3] = ["labd", "datad", "logd"];

fn spawn_node(mqttcal: &Path, url: &str, config: &Path, db: &str, node: &str, dir: &Path) -> Child {
    Command::new(mqttcal)
        .args(["--broker", url, "--config"])
        .arg(config)
        .args(["run", node])
        .env("MQTTCAL_DATABASE_URL", db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{node}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// Calls made and failed by the load.
#[derive(Default)]
struct Calls {
    made: AtomicU64,
    failed: AtomicU64,
}

/// One caller: a round of calls over every node, again and again, about 20 calls a second.
fn load(c: &Client, calls: Arc<Calls>) {
    let ctx = c.context().clone();
    tokio::spawn(async move {
        let mut i = 0u64;
        loop {
            i += 1;
            let round: [(&str, &str, serde_json::Value); 7] = [
                ("labd", "ping", json!({})),
                ("datad", "stats", json!({})),
                ("datad", "query", json!({"origin": "labd", "limit": 50})),
                ("datad", "gaps", json!({"days": 1})),
                (
                    "logd",
                    "add",
                    json!({"author": "soak", "text": format!("entry {i}")}),
                ),
                ("logd", "search", json!({"kind": "manual", "limit": 20})),
                ("logd", "ping", json!({})),
            ];
            for (node, cap, params) in round {
                let r = ctx
                    .request_timeout(node, cap, params, Duration::from_secs(5))
                    .await;
                calls.made.fetch_add(1, Ordering::Relaxed);
                if r.is_err() {
                    calls.failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
}

/// Keeps labd measuring: a trigger on `meas` whenever it answers `ping` idle.
fn keep_measuring(c: &Client) {
    let ctx = c.context().clone();
    tokio::spawn(async move {
        loop {
            let pong = ctx
                .request_timeout("labd", "ping", json!({}), Duration::from_secs(2))
                .await;
            if pong.is_ok_and(|p| p["running"] == 0) {
                let trigger = json!({"cmd": "measure", "src": "Z1", "repetitions": 5000});
                let _ = ctx.send("meas", "labd", &trigger).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

const USAGE: &str =
    "usage: soak [--minutes N (10)] [--seconds N] [--every S (10)] [--postgres] [--mqttcal PATH]
Runs labd, datad and logd as processes under steady load on a private Mosquitto and prints
each process's resident memory every --every seconds (one JSON line), then the growth.
Needs MQTTCAL_MOSQUITTO (and MQTTCAL_PG_BINDIR with --postgres) where the binaries are not
found on their own; the node logs stay in a temporary folder, kept and named on a failure.";

/// The arguments, checked: every flag known, each number a number.
fn checked_args() -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--postgres" => {}
            "--minutes" | "--seconds" | "--every" => {
                if rest.next().is_none_or(|v| v.parse::<u64>().is_err()) {
                    eprintln!("{a} takes a whole number\n{USAGE}");
                    std::process::exit(2);
                }
            }
            "--mqttcal" => {
                rest.next();
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    args
}

/// Ends the bench with `why`, keeping the folder of the node logs.
fn fail(why: &str, dir: tempfile::TempDir) -> ! {
    let kept = dir.keep();
    eprintln!("{why}; the node logs are in {}", kept.display());
    std::process::exit(1);
}

#[tokio::main]
async fn main() {
    let args = checked_args();
    let minutes = number_arg(&args, "--minutes", 10).max(1) as u64;
    let every = Duration::from_secs(number_arg(&args, "--every", 10).max(1) as u64);
    let mqttcal = mqttcal_binary(&args);
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let (_pg, database) = if args.iter().any(|a| a == "--postgres") {
        let pg = Postgres::start();
        let db = pg.create_database("soak");
        (Some(pg), db)
    } else {
        (
            None,
            format!("sqlite:{}", dir.path().join("soak.db").display()),
        )
    };
    let (sims, labd) = spawn_sim_lab(&mqttcal, "0.001", &dir.path().join("sims.log"));
    let config = dir.path().join("lab.yaml");
    std::fs::write(&config, labd).unwrap();
    let mut procs = Procs(vec![sims]);
    let mut pids = BTreeMap::new();
    for node in NODES {
        let child = spawn_node(&mqttcal, &url, &config, &database, node, dir.path());
        pids.insert(node, child.id());
        procs.0.push(child);
    }
    pids.insert("mosquitto", broker.pid().expect("the broker runs"));

    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let transport = MqttTransport::new(cfg);
    let c = Client::connect(&transport, &format!("soak-{}", std::process::id()), "")
        .await
        .unwrap();
    for node in NODES {
        let end = Instant::now() + Duration::from_secs(20);
        while c
            .context()
            .request_timeout(node, "ping", json!({}), Duration::from_secs(1))
            .await
            .is_err()
        {
            if Instant::now() > end {
                drop(procs);
                fail(&format!("{node} did not start"), dir);
            }
        }
    }
    keep_measuring(&c);
    let calls = Arc::new(Calls::default());
    load(&c, calls.clone());

    let started = Instant::now();
    // `--seconds` for a short trial.
    let span = Duration::from_secs(number_arg(&args, "--seconds", minutes as usize * 60) as u64);
    let mut first: Option<BTreeMap<&str, u64>> = None;
    let mut last = BTreeMap::new();
    while started.elapsed() < span {
        tokio::time::sleep(every).await;
        let rss: BTreeMap<&str, u64> = pids
            .iter()
            .filter_map(|(n, pid)| rss_kib(*pid).map(|r| (*n, r)))
            .collect();
        if rss.len() < pids.len() {
            drop(procs);
            fail(&format!("a process ended (those left: {rss:?})"), dir);
        }
        let stats = c
            .context()
            .request_timeout("datad", "stats", json!({}), Duration::from_secs(5))
            .await
            .unwrap_or_default();
        let missing: u64 = stats["missing"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
        println!(
            "{}",
            json!({
                "t_s": started.elapsed().as_secs(),
                "rss_kib": rss,
                "stored": stats["stored"],
                "missing": missing,
                "rate_per_s": stats["rate_per_s"],
                "calls": calls.made.load(Ordering::Relaxed),
                "failed": calls.failed.load(Ordering::Relaxed),
            })
        );
        if first.is_none() {
            first = Some(rss.clone());
        }
        last = rss;
    }
    let first = first.unwrap_or_default();
    let growth: BTreeMap<&str, i64> = last
        .iter()
        .map(|(n, r)| (*n, *r as i64 - first.get(n).copied().unwrap_or(*r) as i64))
        .collect();
    println!(
        "{}",
        json!({
            "summary": "RSS growth from the first sample to the last, KiB",
            "seconds": span.as_secs(),
            "growth_kib": growth,
            "calls": calls.made.load(Ordering::Relaxed),
            "failed": calls.failed.load(Ordering::Relaxed),
        })
    );
}
