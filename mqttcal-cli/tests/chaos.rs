//! Chaos: labd streams readings to datad on a Mosquitto and a PostgreSQL of the test's own
//! while labd, datad, logd and the broker are killed (SIGKILL), labd is stopped (SIGTERM)
//! and PostgreSQL is stopped, at random moments; a supervisor restarts whatever died, as
//! systemd would. Afterwards: no reading is stored twice, every reading missing up to the
//! last one known is counted by datad's gap report (and a tail cut by a kill is said to be
//! unknown), every reading a witness saw on the broker is stored or counted, the logbook
//! verifies, and every node answers.
//!
//! `MQTTCAL_CHAOS_SECS` sets how long the chaos lasts (default 30), `MQTTCAL_CHAOS_SEED`
//! replays a schedule (the seed is printed).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::Client;
use mqttcal_nodes::datad::{GapReport, StreamState};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

/// The nodes the chaos runs, each as its own `mqttcal run` process.
const NODES: [&str; 3] = ["labd", "datad", "logd"];

/// What the chaos does at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Blow {
    KillNode(&'static str),
    StopLabd,
    KillBroker,
    StopPostgres,
    /// datad killed, then the broker while it holds readings queued for datad: they are
    /// lost for good (Mosquitto saves its queues every `autosave_interval`).
    LoseQueued,
}

const DECK: [Blow; 8] = [
    Blow::LoseQueued,
    Blow::LoseQueued,
    Blow::KillNode("labd"),
    Blow::KillNode("datad"),
    Blow::KillNode("logd"),
    Blow::StopLabd,
    Blow::KillBroker,
    Blow::StopPostgres,
];

/// A small deterministic generator (xorshift), so a seed replays a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }

    fn shuffled(&mut self) -> Vec<Blow> {
        let mut deck = DECK.to_vec();
        for i in (1..deck.len()).rev() {
            deck.swap(i, (self.next() % (i as u64 + 1)) as usize);
        }
        deck
    }
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// The lab under test: its broker, database, simulated instruments and node processes.
struct Lab {
    broker: Mosquitto,
    pg: Postgres,
    database: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    _sims: Proc,
    nodes: BTreeMap<&'static str, Proc>,
    restarts: BTreeMap<&'static str, u32>,
}

impl Lab {
    fn start() -> Self {
        let broker = Mosquitto::start(BrokerKind::Production);
        let pg = Postgres::start();
        let database = pg.create_database("chaos");
        let dir = tempfile::tempdir().unwrap();
        let (sims, labd) = spawn_sim_lab("0.001", &dir.path().join("sims.log"));
        let key = dir.path().join("checkpoint.key");
        std::fs::write(&key, [7u8; 48]).unwrap();
        let config = dir.path().join("lab.yaml");
        std::fs::write(
            &config,
            format!(
                "{labd}\nlogd:\n  checkpoint-key: {}\n  checkpoint-every: 10\n",
                key.display()
            ),
        )
        .unwrap();
        let mut lab = Self {
            broker,
            pg,
            database,
            dir,
            config,
            _sims: sims,
            nodes: BTreeMap::new(),
            restarts: BTreeMap::new(),
        };
        for node in NODES {
            lab.spawn(node);
        }
        lab
    }

    fn url(&self) -> String {
        self.broker.url()
    }

    fn log_of(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.log"))
    }

    fn spawn(&mut self, node: &'static str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_of(node))
            .unwrap();
        let mut cmd = mqttcal(
            &self.url(),
            &["--config", self.config.to_str().unwrap(), "run", node],
        );
        cmd.env("MQTTCAL_DATABASE_URL", &self.database)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.nodes.insert(node, Proc(cmd.spawn().unwrap()));
    }

    /// Restarts every node process that ended, as a service manager would.
    fn supervise(&mut self) {
        let dead: Vec<&'static str> = self
            .nodes
            .iter_mut()
            .filter_map(|(n, p)| p.0.try_wait().unwrap().map(|_| *n))
            .collect();
        for node in dead {
            *self.restarts.entry(node).or_default() += 1;
            self.spawn(node);
        }
    }

    fn signal(&self, node: &str, sig: &str) {
        self.nodes[node].signal(sig);
    }

    /// Every node's log, for a failed check.
    fn logs(&self) -> String {
        NODES
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(self.log_of(n)).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!("--- {n} (last 40 lines)\n{tail}\n")
            })
            .collect()
    }
}

/// The production configuration's `autosave_interval`.
const AUTOSAVE: Duration = Duration::from_secs(10);

/// What a witness on the broker saw of labd: readings per epoch, and the last `seq` each
/// clean `bye` announced.
#[derive(Debug, Default)]
struct Seen {
    readings: HashMap<u64, BTreeSet<u64>>,
    byes: HashMap<u64, u64>,
    /// When each epoch's first and last readings were seen.
    times: HashMap<u64, (Instant, Instant)>,
}

/// Follows `meas` and `announce` for the whole run, across broker restarts.
async fn witness(url: &str, seen: Arc<Mutex<Seen>>) {
    let mut link = transport(url)
        .connect(SessionSpec::new(
            "chaos-witness",
            vec![
                Subscription::new("meas", QoS::AtLeastOnce),
                Subscription::new("announce", QoS::AtLeastOnce),
            ],
        ))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(ev) = link.events.recv().await {
            let Event::Message { payload, .. } = ev else {
                continue;
            };
            let Ok(env) = Envelope::decode(&payload, usize::MAX) else {
                continue;
            };
            if env.from != "labd" {
                continue;
            }
            let mut seen = seen.lock().unwrap();
            match (env.epoch, env.seq, env.message.as_deref()) {
                (Some(epoch), Some(seq), None) if env.cmd.is_none() => {
                    seen.readings.entry(epoch).or_default().insert(seq);
                    let now = Instant::now();
                    seen.times.entry(epoch).or_insert((now, now)).1 = now;
                }
                (Some(epoch), _, Some("bye")) if !env.fields.contains_key("reason") => {
                    // A labd stopped before its first reading says bye without `seqs`.
                    if let Some(last) = env.fields.get("seqs").and_then(|s| s["meas"].as_u64()) {
                        seen.byes.insert(epoch, last);
                    }
                }
                _ => {}
            }
        }
    });
}

/// Keeps labd measuring: whenever it answers `ping` idle, a report-style trigger on `meas`.
fn keep_measuring(c: &Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    let ctx = c.context().clone();
    tokio::spawn(async move {
        let mut triggers = 0;
        while !stop.load(Ordering::Relaxed) {
            let pong = ctx
                .request_timeout("labd", "ping", json!({}), Duration::from_secs(1))
                .await;
            if pong.is_ok_and(|p| p["running"] == 0) {
                let trigger = json!({"cmd": "measure", "src": "Z1", "repetitions": 3000});
                if ctx.send("meas", "labd", &trigger).await.is_ok() {
                    triggers += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        triggers
    })
}

/// Asks `node` for `cap` until it answers, for at most `within`.
async fn ask(
    c: &Client,
    node: &str,
    cap: &str,
    params: serde_json::Value,
    within: Duration,
) -> serde_json::Value {
    let end = Instant::now() + within;
    loop {
        match c
            .context()
            .request_timeout(node, cap, params.clone(), Duration::from_secs(2))
            .await
        {
            Ok(v) => return v,
            Err(e) if Instant::now() > end => panic!("{node} {cap}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Restarts what died until every node answers `ping`.
async fn all_answer(lab: &mut Lab, c: &Client) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        lab.supervise();
        let mut silent = Vec::new();
        for node in NODES {
            let pong = c
                .context()
                .request_timeout(node, "ping", json!({}), Duration::from_secs(1))
                .await;
            if pong.is_err() {
                silent.push(node);
            }
        }
        if silent.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "{silent:?} never came back\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// labd's streams as stored: epoch → the distinct `seq`s, straight from PostgreSQL.
fn stored_seqs(pg: &Postgres) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut by_epoch: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let out = pg.psql(
        "chaos",
        "SELECT epoch, seq FROM measurements WHERE origin = 'labd' AND seq IS NOT NULL",
    );
    for line in out.lines() {
        let (epoch, seq) = line.split_once('|').unwrap();
        by_epoch
            .entry(epoch.parse().unwrap())
            .or_default()
            .insert(seq.parse().unwrap());
    }
    by_epoch
}

/// Waits until datad's gap report stops changing and labd's newest stream is closed and
/// whole; the report.
async fn settled_report(c: &Client, lab: &Lab) -> GapReport {
    let end = Instant::now() + Duration::from_secs(90);
    let mut last: Option<GapReport> = None;
    loop {
        let v = ask(
            c,
            "datad",
            "gaps",
            json!({"origin": "labd"}),
            Duration::from_secs(30),
        )
        .await;
        let report: GapReport = serde_json::from_value(v).unwrap();
        let newest_whole = report
            .streams
            .last()
            .is_some_and(|s| s.state == StreamState::Closed && s.stored == s.last + 1);
        if newest_whole && last.as_ref() == Some(&report) {
            return report;
        }
        assert!(
            Instant::now() < end,
            "datad's gap report did not settle: {report:#?}\n{}",
            lab.logs()
        );
        last = Some(report);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_survive_kills_of_every_part_and_every_loss_is_counted() {
    let seed = env_u64("MQTTCAL_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let span = Duration::from_secs(env_u64("MQTTCAL_CHAOS_SECS").unwrap_or(30));
    println!("chaos: seed {seed} (MQTTCAL_CHAOS_SEED replays it), {span:?}");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut lab = Lab::start();
    let url = lab.url();
    let seen = Arc::new(Mutex::new(Seen::default()));
    witness(&url, seen.clone()).await;
    let c = client(&url).await;
    all_answer(&mut lab, &c).await;
    let stop = Arc::new(AtomicBool::new(false));
    let driver = keep_measuring(&c, stop.clone());

    // The chaos: a shuffled deck of blows, one every 1 to 3 s, each kind as often.
    let mut done: BTreeMap<Blow, u32> = BTreeMap::new();
    let mut deck = Vec::new();
    let mut broker_back: Option<Instant> = None;
    let mut pg_back: Option<Instant> = None;
    let mut next_blow = Instant::now() + rng.millis(1000, 3000);
    // When the broker was killed holding readings queued for a killed datad.
    let mut lost_at: Vec<Instant> = Vec::new();
    while started.elapsed() < span {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lab.supervise();
        if broker_back.is_some_and(|t| Instant::now() >= t) {
            lab.broker.start_again();
            broker_back = None;
        }
        if pg_back.is_some_and(|t| Instant::now() >= t) {
            lab.pg.start_again();
            pg_back = None;
        }
        if Instant::now() < next_blow {
            continue;
        }
        next_blow = Instant::now() + rng.millis(1000, 3000);
        if deck.is_empty() {
            deck = rng.shuffled();
        }
        let blow = deck.pop().unwrap();
        match blow {
            Blow::KillNode(node) => lab.signal(node, "KILL"),
            Blow::StopLabd => lab.signal("labd", "TERM"),
            Blow::KillBroker if broker_back.is_none() => {
                lab.broker.kill();
                broker_back = Some(Instant::now() + rng.millis(300, 2000));
            }
            Blow::LoseQueued if broker_back.is_none() => {
                let measuring = c
                    .context()
                    .request_timeout("labd", "ping", json!({}), Duration::from_millis(500))
                    .await
                    .is_ok_and(|p| p["running"] == 1);
                if !measuring {
                    deck.insert(0, blow);
                    continue;
                }
                lab.signal("datad", "KILL");
                tokio::time::sleep(Duration::from_millis(600)).await;
                lost_at.push(Instant::now());
                lab.broker.kill();
                broker_back = Some(Instant::now() + rng.millis(300, 1000));
            }
            Blow::StopPostgres if pg_back.is_none() => {
                lab.pg.stop();
                pg_back = Some(Instant::now() + rng.millis(500, 3000));
            }
            _ => continue,
        }
        *done.entry(blow).or_default() += 1;
    }
    lab.broker.start_again();
    lab.pg.start_again();
    stop.store(true, Ordering::Relaxed);
    let triggers = driver.await.unwrap();
    println!(
        "chaos: {done:?}, restarts {:?}, {triggers} measurements started",
        lab.restarts
    );

    // Calm: every node back; labd stopped cleanly twice, around one last measurement that
    // nothing disturbs.
    all_answer(&mut lab, &c).await;
    for round in 0..2 {
        lab.signal("labd", "TERM");
        let code = lab
            .nodes
            .get_mut("labd")
            .unwrap()
            .wait_exit(Duration::from_secs(5));
        assert_eq!(code, Some(0), "labd stops cleanly\n{}", lab.logs());
        lab.spawn("labd");
        ask(&c, "labd", "ping", json!({}), Duration::from_secs(20)).await;
        if round == 0 {
            let last = c
                .context()
                .request_timeout(
                    "labd",
                    "measure",
                    json!({"src": "Z1", "repetitions": 200}),
                    Duration::from_secs(60),
                )
                .await
                .unwrap_or_else(|e| panic!("the last measurement: {e}\n{}", lab.logs()));
            assert!(!last.is_null());
        }
    }
    let report = settled_report(&c, &lab).await;

    // No reading is stored twice.
    let twice = lab.pg.psql(
        "chaos",
        "SELECT COUNT(*) FROM (SELECT origin, epoch, seq FROM measurements
         WHERE seq IS NOT NULL GROUP BY origin, epoch, seq HAVING COUNT(*) > 1) d",
    );
    assert_eq!(twice, "0", "readings stored twice");

    // Every reading missing up to the last one known is counted, stream by stream.
    let stored = stored_seqs(&lab.pg);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let by_epoch: BTreeMap<u64, _> = report.streams.iter().map(|s| (s.epoch, s)).collect();
    let (mut total_stored, mut total_missing) = (0u64, 0u64);
    for (epoch, seqs) in &stored {
        let s = by_epoch
            .get(epoch)
            .unwrap_or_else(|| panic!("epoch {epoch} is missing from the report: {report:#?}"));
        let head = *seqs.last().unwrap();
        assert!(s.last >= head, "{s:?}: stored up to {head}");
        let holes = (0..=s.last).filter(|q| !seqs.contains(q)).count() as u64;
        assert_eq!(s.stored, seqs.len() as u64, "{s:?}");
        assert_eq!(s.missing, holes, "{s:?}: {holes} holes below {}", s.last);
        total_stored += s.stored;
        total_missing += s.missing;
    }
    assert_eq!(report.missing, total_missing, "{report:#?}");
    for s in &report.streams {
        match s.state {
            StreamState::Cut => assert_eq!(
                s.unknown.as_deref(),
                Some(format!("unknown after seq {} of epoch {}", s.last, s.epoch).as_str())
            ),
            StreamState::Closed => {
                if let Some(bye) = seen.byes.get(&s.epoch) {
                    assert_eq!(
                        s.last, *bye,
                        "a closed stream ends where its bye said: {s:?}"
                    );
                }
            }
            StreamState::Open => panic!("labd's streams all ended: {s:?}"),
        }
    }
    // Every reading the witness saw is stored, or counted missing, or in a cut tail.
    for (epoch, seqs) in &seen.readings {
        let Some(s) = by_epoch.get(epoch) else {
            // A run of labd born and killed while the broker held everything it sent
            // (hello included) unsaved for a killed datad, then lost it: nobody can count
            // what nobody was told of. It must lie inside one such window (the broker
            // saves its queues every AUTOSAVE).
            let (first, last) = seen.times[epoch];
            let inside = lost_at
                .iter()
                .any(|k| first + AUTOSAVE + Duration::from_secs(1) >= *k && last <= *k);
            assert!(
                inside,
                "the witness saw epoch {epoch} ({} readings), datad has nothing of it, and it was not lost with the broker's unsaved queue",
                seqs.len()
            );
            println!(
                "chaos: epoch {epoch}: {} readings lost with the broker's unsaved queue, before datad heard of the run",
                seqs.len()
            );
            continue;
        };
        let beyond: Vec<&u64> = seqs.iter().filter(|q| **q > s.last).collect();
        assert!(
            beyond.is_empty() || s.state == StreamState::Cut,
            "{s:?}: readings seen past the last known seq: {beyond:?}"
        );
    }
    // Readings were lost (LoseQueued), and the witness saw some of them: the checks above
    // had something to count.
    let lost_seen: usize = seen
        .readings
        .iter()
        .map(|(e, seqs)| {
            let kept = stored.get(e);
            seqs.iter()
                .filter(|q| !kept.is_some_and(|k| k.contains(q)))
                .count()
        })
        .sum();
    assert!(
        done.get(&Blow::LoseQueued).is_some_and(|n| *n >= 2) && total_missing > 0 && lost_seen > 0,
        "the chaos lost nothing: {done:?}, {total_missing} missing, {lost_seen} seen and not stored"
    );
    // The calm measurement lost nothing.
    let calm = &report.streams[report.streams.len() - 1];
    assert_eq!(calm.missing, 0, "{calm:?}");
    assert!(calm.stored >= 200, "{calm:?}");

    // The logbook verifies; every node answers.
    let verify = ask(&c, "logd", "verify", json!({}), Duration::from_secs(30)).await;
    assert_eq!(verify["ok"], true, "{verify}\n{}", lab.logs());
    all_answer(&mut lab, &c).await;
    println!(
        "chaos: {} streams, {total_stored} readings stored, {total_missing} counted missing ({lost_seen} of them seen by the witness), {} tails unknown, {} logbook entries; {:?} in all",
        report.streams.len(),
        report.unknown_tails,
        verify["entries"],
        started.elapsed()
    );
}
