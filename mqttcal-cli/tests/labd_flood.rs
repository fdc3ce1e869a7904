//! labd under load: a report-style trigger of 20,000 readings on `meas` (it keeps answering
//! `ping` and stops on SIGTERM within 2 s, on Mosquitto and on the lab's embedded broker),
//! and a flood of 10,000 requests (every one answered, nothing dropped by the broker).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::Client;
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::json;

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
    // The settings answer during the measurement too, at once.
    let t0 = Instant::now();
    let settings = c
        .context()
        .request("labd", "settings", json!({}))
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "settings took {:?}",
        t0.elapsed()
    );
    // The call's parameters are its own: the defaults stay as they were.
    assert_eq!(settings["repetitions"], 1, "{settings}");
    // More readings than a handler's queue holds go out and come back to labd's
    // subscription (what used to stall it for good): on a busy machine the simulated
    // instruments take longer to get there, so wait for them.
    let until = Instant::now() + Duration::from_secs(30);
    let (pong, sent) = loop {
        let pong = c
            .context()
            .request("labd", "ping", json!({}))
            .await
            .unwrap();
        let sent = pong["seqs"]["meas"].as_u64().unwrap_or(0);
        if sent > 2048 || Instant::now() > until {
            break (pong, sent);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pong["running"], 1, "still measuring at the SIGTERM: {pong}");
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
        "--web-port",
        "0",
    ]);
    trigger_and_check(&url, &mut lab, "embedded broker", None).await;
}

/// Starts simulated instruments and `mqttcal run labd` on `broker`; labd's process and the
/// folder of its files. labd's allocator keeps one arena (`MALLOC_ARENA_MAX=1`), so that
/// its resident size after a flood measures what labd holds rather than which of glibc's
/// per-thread arenas happened to keep a peak.
fn labd_process(url: &str) -> (Proc, Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (sims, section) = spawn_sim_lab("0.001", &dir.path().join("sims.log"));
    let config = dir.path().join("labd.yaml");
    std::fs::write(&config, section).unwrap();
    let log = std::fs::File::create(dir.path().join("labd.log")).unwrap();
    let mut cmd = mqttcal(url, &["--config", config.to_str().unwrap(), "run", "labd"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    cmd.env("MALLOC_ARENA_MAX", "1");
    (Proc(cmd.spawn().unwrap()), sims, dir)
}

/// `n` concurrent `measure` calls; how many succeeded, were `busy`, and what else happened.
async fn flood(c: &Client, n: usize) -> (usize, usize, Vec<String>) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let ctx = c.context().clone();
            tokio::spawn(async move {
                ctx.request_timeout(
                    "labd",
                    "measure",
                    json!({"src": "Z1", "repetitions": 1}),
                    Duration::from_secs(60),
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut busy, mut other) = (0, 0, Vec::new());
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(mqttcal_core::CallError::Remote { error, .. })
                if error.code == mqttcal_core::ErrorCode::Busy =>
            {
                busy += 1
            }
            Err(e) => other.push(e.to_string()),
        }
    }
    (ok, busy, other)
}

/// Follows the broker's count of dropped messages (`$SYS`, every second).
async fn dropped_counter(url: &str) -> std::sync::Arc<std::sync::atomic::AtomicI64> {
    use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};
    let value = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let mut link = transport(url)
        .connect(SessionSpec::new(
            "sys-watch",
            vec![Subscription::new(
                "$SYS/broker/publish/messages/dropped",
                QoS::AtMostOnce,
            )],
        ))
        .await
        .unwrap();
    let v = value.clone();
    tokio::spawn(async move {
        while let Some(ev) = link.events.recv().await {
            if let Event::Message { payload, .. } = ev {
                if let Ok(n) = String::from_utf8_lossy(&payload).trim().parse::<i64>() {
                    v.store(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    value
}

/// labd's resident size once a flood is over: it has answered a ping after the last reply
/// and had half a second to drop what the flood's replies held.
async fn settled_rss(c: &Client, labd: &Proc) -> u64 {
    c.context()
        .request("labd", "ping", json!({}))
        .await
        .expect("labd answers after the flood");
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss(labd.pid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_10000_requests_is_answered_while_ping_stays_fast() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let (labd, _sims, _dir) = labd_process(&url);
    let c = client(&url).await;
    wait_ping(&c, "labd").await;
    let dropped = dropped_counter(&url).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dropped_before = dropped.load(Ordering::Relaxed);
    assert!(
        dropped_before >= 0,
        "the broker publishes its $SYS counters"
    );

    // The pinger runs on a thread and runtime of its own, so that the flood's 10,000
    // tasks in this process do not delay it: what it measures is the node.
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let ping_task = {
        let done = done.clone();
        let url = url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let pinger = Client::connect(&transport(&url), "pinger", "")
                    .await
                    .unwrap();
                let mut times = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    pinger
                        .context()
                        .request_timeout("labd", "ping", json!({}), Duration::from_secs(5))
                        .await
                        .expect("labd answers ping during the flood");
                    times.push(t0.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                pinger.close().await;
                times.sort();
                times
            })
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, busy, other) = flood(&c, 10_000).await;
    println!(
        "first flood: {ok} measured, {busy} busy, {} other",
        other.len()
    );
    let pong = c
        .context()
        .request("labd", "ping", json!({}))
        .await
        .unwrap();
    println!(
        "labd after the first flood: {pong}; broker dropped {}",
        dropped.load(Ordering::Relaxed) - dropped_before
    );
    assert!(
        other.is_empty(),
        "every request is answered: {:?}",
        &other[..other.len().min(5)]
    );
    assert_eq!(ok + busy, 10_000);
    assert!(ok >= 1 && busy >= 1);
    let rss_after_first = settled_rss(&c, &labd).await;
    let (ok2, busy2, other2) = flood(&c, 10_000).await;
    let rss_after_second = settled_rss(&c, &labd).await;
    done.store(true, Ordering::Relaxed);
    let times = ping_task.join().unwrap();
    println!(
        "second flood: {ok2} measured, {busy2} busy; labd RSS {} kB then {} kB; ping during the floods: {} calls, p50 {:?}, p99 {:?}",
        rss_after_first / 1024,
        rss_after_second / 1024,
        times.len(),
        p(&times, 0.5),
        p(&times, 0.99)
    );
    assert!(other2.is_empty(), "{:?}", &other2[..other2.len().min(5)]);
    // A leak would grow labd by what the flood holds (10,000 ids, replies); what a second
    // flood may add is the difference between the queues' peaks, which the allocator keeps:
    // with one arena and measured once labd has settled, 0 to 256 kB (median 68 kB) in 24
    // optimized runs; up to 1.6 MB in an unoptimized one. `.ci/run` runs the optimized one.
    let rss_bound = if cfg!(debug_assertions) { 4 } else { 1 } * 1024 * 1024;
    assert!(
        rss_after_second < rss_after_first + rss_bound,
        "a second identical flood grows labd by less than {} MB",
        rss_bound / 1024 / 1024
    );
    // The node reads ahead of the flood and takes its pings first: p99 was 15–36 ms in 24
    // optimized runs on a quiet machine (11–50 ms earlier) and 16–41 ms in unoptimized ones (with this file's other tests
    // running alongside), both on two cores shared with the flooder and Mosquitto. The
    // bound of 100 ms is for the optimized run (`cargo test --release -p mqttcal-cli
    // --test labd_flood`); the unoptimized one, with the rest of the suite around it, keeps
    // a margin for a busy machine (one run at 137 ms while other programs flooded another
    // broker).
    let bound = if cfg!(debug_assertions) {
        Duration::from_millis(400)
    } else {
        Duration::from_millis(100)
    };
    assert!(p(&times, 0.99) < bound, "ping p99 {:?}", p(&times, 0.99));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        dropped_before,
        "the broker dropped messages during the flood"
    );
}
