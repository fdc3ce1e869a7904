//! Live-reading streams through webd while readings arrive at 1,000 a second: how far
//! each page's stream falls behind, against a plain MQTT subscriber of the same readings in
//! the same run, and webd's memory over the run.
//!
//! Run with: cargo build --release -p mqttcal-cli -p mqttcal-benches &&
//! target/release/webd_streams [--streams 20] [--rate 1000] [--seconds 20]
//!
//! Starts a Mosquitto (`MQTTCAL_MOSQUITTO`), then `mqttcal run ctrld` and `mqttcal run webd`
//! as processes of their own. A publisher sends readings on `meas` at `--rate` a second,
//! each stamped with the time it is sent; `--streams` logged-in clients read webd's
//! `/events?topics=meas` over HTTPS, and one plain MQTT client subscribes to `meas`. For
//! each, the lag of every reading is the time it arrived less the time it was sent. Prints
//! one JSON line: readings sent, and for the streams and the subscriber the readings
//! received, the p50, p99 and largest lag (ms), the readings the streams were told they
//! lost; webd's resident memory (KiB) after the warm-up, at its largest and at the end.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use mqttcal_benches::{mqttcal_binary, number_arg, Procs};
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::{Event, MqttTransport, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::Client;
use mqttcal_testkit::web::Web;
use mqttcal_testkit::{free_port, rss_kib, wait_for_port, BrokerKind, Mosquitto};
use serde_json::{json, Value};
use tokio::sync::Mutex;

fn now() -> f64 {
    mqttcal_core::clock::Timestamp::now().as_secs_f64()
}

/// What one reader saw: the lags (ms) and the readings it was told it lost.
#[derive(Default)]
struct Seen {
    lags: Vec<f64>,
    lost: u64,
}

/// The lag of each reading in an SSE chunk stream, until `until`.
async fn read_stream(mut body: hyper::body::Incoming, until: Instant, seen: Arc<Mutex<Seen>>) {
    let mut pending = String::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until.into(), body.frame()).await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let at = now();
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let kind = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message");
            let data = event.lines().find_map(|l| l.strip_prefix("data: "));
            let mut s = seen.lock().await;
            match (kind, data) {
                ("meas", Some(d)) => {
                    if let Some(sent) = serde_json::from_str::<Value>(d)
                        .ok()
                        .and_then(|v| v["sent"].as_f64())
                    {
                        s.lags.push((at - sent) * 1000.0);
                    }
                }
                ("lost", Some(d)) => s.lost += d.trim().parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
}

fn stats(mut lags: Vec<f64>) -> Value {
    if lags.is_empty() {
        return json!({"received": 0});
    }
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({"received": lags.len(), "p50_ms": r(at(0.5)), "p99_ms": r(at(0.99)), "max_ms": r(at(1.0))})
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let streams = number_arg(&args, "--streams", 20);
    let rate = number_arg(&args, "--rate", 1000).max(1);
    let seconds = number_arg(&args, "--seconds", 20).max(2);
    let mqttcal = mqttcal_binary(&args);
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    // One person per stream, as 20 people watching (a session holds 8 streams at most).
    let mut users = mqttcal_webd::Users::default();
    for i in 0..streams {
        users
            .set(&format!("viewer{i}"), "viewer", "a viewer's long password")
            .unwrap();
    }
    users.save(&dir.path().join("users")).unwrap();
    let port = free_port();
    let config = dir.path().join("lab.yaml");
    std::fs::write(
        &config,
        format!(
            "webd:\n  listen: 127.0.0.1:{port}\n  state_dir: {}\n  users_file: {}\n",
            dir.path().join("webd").display(),
            dir.path().join("users").display()
        ),
    )
    .unwrap();
    let spawn = |node: &str| {
        Command::new(&mqttcal)
            .args(["--broker", &url, "--config"])
            .arg(&config)
            .args(["run", node])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let procs = Procs(vec![spawn("ctrld"), spawn("webd")]);
    let webd_pid = procs.0[1].id();
    assert!(
        wait_for_port(port, Duration::from_secs(20)),
        "webd did not listen"
    );
    let page = format!("https://127.0.0.1:{port}/");
    let cert = dir.path().join("webd/webd-cert.pem");
    let rss_before_logins = rss_kib(webd_pid).unwrap_or(0);
    let mut people = Vec::new();
    for i in 0..streams {
        let mut web = Web::new(&page, Some(&cert));
        let end = Instant::now() + Duration::from_secs(10);
        while web
            .login(&format!("viewer{i}"), "a viewer's long password")
            .await
            .status
            != 303
        {
            assert!(Instant::now() < end, "no login");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        people.push(web);
    }

    let mut cfg = MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    let transport = MqttTransport::new(cfg);
    let mut subscriber = transport
        .connect(SessionSpec::new(
            format!("webd-streams-raw-{}", std::process::id()),
            vec![Subscription::new("meas", QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let publisher = Client::connect(&transport, "labd-bench", "").await.unwrap();

    // Warm up: the streams open and a second of readings goes by unmeasured.
    let mut bodies = Vec::new();
    for web in &mut people {
        bodies.push(web.events("?topics=meas").await);
    }
    let warm = Instant::now() + Duration::from_secs(1);
    let measured_until = warm + Duration::from_secs(seconds as u64) + Duration::from_secs(2);
    let seens: Vec<Arc<Mutex<Seen>>> = (0..streams).map(|_| Arc::default()).collect();
    for (body, seen) in bodies.into_iter().zip(&seens) {
        tokio::spawn(read_stream(body, measured_until, seen.clone()));
    }
    let raw = Arc::new(Mutex::new(Seen::default()));
    let raw_seen = raw.clone();
    tokio::spawn(async move {
        while let Ok(Some(ev)) =
            tokio::time::timeout_at(measured_until.into(), subscriber.events.recv()).await
        {
            if let Event::Message { payload, .. } = ev {
                let at = now();
                if let Some(sent) = serde_json::from_slice::<Value>(&payload)
                    .ok()
                    .and_then(|v| v["sent"].as_f64())
                {
                    raw_seen.lock().await.lags.push((at - sent) * 1000.0);
                }
            }
        }
    });
    let mut rss_after_warmup = 0;
    let mut rss_peak = 0;
    let mut sent = 0u64;
    let total = (rate * seconds) as u64 + rate as u64;
    let start = Instant::now();
    let mut next_rss = Instant::now();
    while sent < total {
        // Paced in 10 ms batches.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due.min(total) {
            let counted = Instant::now() >= warm;
            let reading = json!({"DC-measurement": 10.0 + sent as f64 * 1e-9, "src": ["Z1"], "unit": "V",
                                 "sent": if counted { now() } else { 0.0 }});
            publisher.context().publish("meas", reading).await.unwrap();
            sent += 1;
        }
        if Instant::now() >= next_rss {
            let rss = rss_kib(webd_pid).unwrap_or(0);
            if Instant::now() >= warm && rss_after_warmup == 0 {
                rss_after_warmup = rss;
            }
            rss_peak = rss_peak.max(rss);
            next_rss += Duration::from_millis(250);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep_until(measured_until.into()).await;
    let rss_end = rss_kib(webd_pid).unwrap_or(0);
    let mut all = Vec::new();
    let mut worst = 0.0f64;
    let mut fewest = usize::MAX;
    let mut lost = 0;
    for s in &seens {
        let s = s.lock().await;
        // Readings sent before the warm-up ended carry 0 and are not counted.
        let lags: Vec<f64> = s.lags.iter().copied().filter(|l| *l < 1e9).collect();
        worst = lags.iter().copied().fold(worst, f64::max);
        fewest = fewest.min(lags.len());
        lost += s.lost;
        all.extend(lags);
    }
    let raw_lags: Vec<f64> = raw
        .lock()
        .await
        .lags
        .iter()
        .copied()
        .filter(|l| *l < 1e9)
        .collect();
    println!(
        "{}",
        json!({
            "bench": "webd_streams",
            "streams": streams,
            "rate_per_s": rate,
            "seconds": seconds,
            "sent_measured": rate * seconds,
            "webd": stats(all),
            "fewest_received_by_a_stream": fewest,
            "worst_lag_ms": (worst * 10.0).round() / 10.0,
            "lost": lost,
            "mqtt_subscriber": stats(raw_lags),
            "webd_rss_kib": {"before_logins": rss_before_logins, "after_warmup": rss_after_warmup, "peak": rss_peak, "end": rss_end},
        })
    );
    drop(procs);
}
