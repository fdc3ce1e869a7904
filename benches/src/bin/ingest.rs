//! Ingest throughput: measurements persisted by datad per second, end to end, against the two
//! ceilings it cannot beat, in one run.
//!
//! Run with: cargo run --release -p mqttcal-benches --bin ingest -- --n 50000 [--batch 2000]
//! (`--broker URL` / `--database postgres://...` to use servers of your own; by default a
//! private Mosquitto with the shipped production settings and a private PostgreSQL cluster
//! with its durable defaults, `fsync` on).
//!
//! Series, all with the same `n` labd-style readings (about 480 bytes each), pre-encoded:
//! - `raw_flood`: a plain MQTT client publishes them at QoS 1 and a plain subscriber at QoS 1
//!   receives them: no JSON, no database.
//! - `pg_copy`: the same rows written by one binary `COPY` into a fresh `measurements` table
//!   (same indexes), no MQTT.
//! - `datad_postgres` / `datad_sqlite`: the same publisher, the broker, datad's ingest loop
//!   (decode, batch, commit, then acknowledge): the clock stops when the last row is
//!   committed.
//! - `datad_postgres_x2`: two datad instances sharing `meas` (an MQTT 5 shared
//!   subscription) into one PostgreSQL database.
//!
//! One JSON line with each rate and `ratio_postgres` / `ratio_sqlite`: the end-to-end rate
//! over the lower ceiling, `decode_us_per_reading` (datad's decoding of one reading, alone),
//! and `cpu_ms_per_1000`: CPU milliseconds per 1,000 readings that
//! each series cost this process, Mosquitto and PostgreSQL (from `/proc`); the publisher
//! runs on a thread of its own, so this process's share is also split into `publisher` and
//! `receiver` (the plain subscriber, or datad). On a small
//! machine the publisher, the broker, datad and PostgreSQL share the cores: there the CPU
//! figures, not the rates alone, show where the time goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttcal_benches::cpu::CpuSnapshot;
use mqttcal_benches::{broker_from_args, number_arg};
use mqttcal_core::clock::Timestamp;
use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{MqttTransport, Transport};
use mqttcal_messages::{Environment, Mode, Polarity, Reading, Sources};
use mqttcal_nodes::datad::{Datad, DatadConfig};
use mqttcal_store::postgres::{write_copy, COPY_COLUMNS};
use mqttcal_store::{MeasurementRow, Store};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::json;

fn readings(n: usize) -> Vec<Bytes> {
    let epoch = Timestamp::now().as_micros();
    (0..n)
        .map(|i| {
            let mut env = Envelope::new("labd", "*");
            env.timestamp = Some(Timestamp::now());
            env.epoch = Some(epoch);
            env.seq = Some(i as u64);
            let reading = Reading {
                unit: Some("V".into()),
                origin_uid: Some(vec![
                    "INRIM-DCV".into(),
                    "lab-1.example".into(),
                    "labd".into(),
                ]),
                nplc: Some(10.0),
                ndigits: Some(8),
                range: Some(10.0),
                mode: Some(Mode::Differential),
                pol: Some(Polarity::Positive),
                src: Some(Sources::Many(vec!["Z1".into(), "Z2".into()])),
                index: Some((i % 10) as u32),
                acquired: Some(Timestamp::now().as_secs_f64()),
                raw: Some("+1.01811950E+00".into()),
                environment: Some(Environment {
                    temperature: 23.02,
                    humidity: 45.1,
                    pressure: 1013.2,
                }),
                ..Reading::new(1.018_119_5 + (i % 97) as f64 * 1e-9)
            };
            if let serde_json::Value::Object(m) = serde_json::to_value(&reading).expect("a reading")
            {
                env.fields.extend(m);
            }
            Bytes::from(env.encode(usize::MAX).expect("encodes"))
        })
        .collect()
}

/// Messages the broker acknowledged to the publisher, for progress reports.
static PUBLISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn plain_client(host: &str, port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    let (c, mut el) = AsyncClient::new(o, 10_000);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    (c, el)
}

/// Publishes every message at QoS 1 on `topic`, from a plain client; returns when all are
/// acknowledged by the broker.
async fn publish_all(host: &str, port: u16, topic: &str, msgs: &[Bytes]) {
    let (c, mut el) = plain_client(host, port, &format!("ingest-pub-{}", std::process::id()));
    let total = msgs.len();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    PUBLISHED.store(acked, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
        el
    });
    for m in msgs {
        c.publish_bytes(topic, QoS::AtLeastOnce, false, m.clone())
            .await
            .expect("publish");
    }
    let mut el = acks.await.expect("publisher");
    let _ = c.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
}

/// [`publish_all`] on a thread of its own (one single-threaded runtime), so that its CPU
/// time is told apart from the rest of this process's; the thread's CPU ticks.
async fn publish_apart(host: &str, port: u16, topic: &str, msgs: &[Bytes]) -> u64 {
    let (host, topic, msgs) = (host.to_owned(), topic.to_owned(), msgs.to_vec());
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let before = mqttcal_benches::cpu::thread_ticks().unwrap_or(0);
        rt.block_on(publish_all(&host, port, &topic, &msgs));
        mqttcal_benches::cpu::thread_ticks()
            .unwrap_or(0)
            .saturating_sub(before)
    });
    tokio::task::spawn_blocking(move || thread.join().expect("the publisher"))
        .await
        .expect("the publisher")
}

async fn raw_flood(host: &str, port: u16, msgs: &[Bytes]) -> (f64, u64) {
    let topic = format!("bench/flood/{}", std::process::id());
    let (sub, mut el) = plain_client(host, port, &format!("ingest-sub-{}", std::process::id()));
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    let n = msgs.len();
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            if let Event::Incoming(Packet::Publish(_)) = el.poll().await.unwrap() {
                got += 1;
            }
        }
        Instant::now()
    });
    let t0 = Instant::now();
    let publisher = publish_apart(host, port, &topic, msgs).await;
    let done = receiver.await.unwrap();
    let _ = sub.disconnect().await;
    (n as f64 / (done - t0).as_secs_f64(), publisher)
}

/// The rows datad would store for `msgs`.
fn rows_of(msgs: &[Bytes]) -> Vec<MeasurementRow> {
    msgs.iter()
        .map(|m| mqttcal_nodes::datad::parse_common(m).expect("a usual reading"))
        .collect()
}

/// CPU time per series, per group of processes.
#[derive(Default)]
struct CpuLedger {
    mark: CpuSnapshot,
    series: serde_json::Map<String, serde_json::Value>,
}

impl CpuLedger {
    fn start(&mut self) {
        self.mark = CpuSnapshot::now();
    }

    fn account(&mut self, name: &str, items: usize) {
        let spent = CpuSnapshot::now().ms_per(&self.mark, items, 1000);
        self.series.insert(name.into(), spent);
    }

    /// Like [`CpuLedger::account`], with the publisher's thread apart: `publisher`, and the
    /// rest of this process as `receiver` (the plain subscriber, or datad).
    fn account_apart(&mut self, name: &str, items: usize, publisher_ticks: u64) {
        let mut spent = CpuSnapshot::now().ms_per(&self.mark, items, 1000);
        let publisher = mqttcal_benches::cpu::ticks_ms_per(publisher_ticks, items, 1000);
        if let Some(m) = spent.as_object_mut() {
            let bench = m
                .get("bench")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            m.insert(
                "publisher".into(),
                mqttcal_benches::round1(publisher).into(),
            );
            m.insert(
                "receiver".into(),
                mqttcal_benches::round1((bench - publisher).max(0.0)).into(),
            );
        }
        self.series.insert(name.into(), spent);
    }
}

async fn pg_copy(url: &str, rows: &[MeasurementRow]) -> f64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE copy_target (LIKE measurements INCLUDING ALL)")
        .await
        .unwrap();
    let refs: Vec<&MeasurementRow> = rows.iter().collect();
    let t0 = Instant::now();
    let sink = client
        .copy_in(&format!(
            "COPY copy_target {} FROM STDIN BINARY",
            COPY_COLUMNS
        ))
        .await
        .unwrap();
    let stored_at = Timestamp::now().as_secs_f64();
    let written = write_copy(sink, &refs, stored_at).await.unwrap();
    assert_eq!(written as usize, rows.len());
    let rate = rows.len() as f64 / t0.elapsed().as_secs_f64();
    // Gone before the next series, or autovacuum of its rows would run during that one.
    client
        .batch_execute("DROP TABLE copy_target")
        .await
        .unwrap();
    rate
}

/// `msgs` through `instances` datad nodes (sharing `meas` when more than one) into
/// `store`: readings committed per second.
async fn through_datad(
    url: &str,
    store: Arc<dyn Store>,
    msgs: &[Bytes],
    tag: &str,
    batch: usize,
    instances: usize,
) -> (f64, u64) {
    let (host, port) = host_port(url);
    let transport = MqttTransport::new(mqtt_config(url));
    let base = format!("ingest-bench-{tag}-{}", std::process::id());
    let config = DatadConfig {
        batch,
        share: (instances > 1).then(|| base.clone()),
        ..DatadConfig::default()
    };
    let mut nodes = Vec::new();
    let mut stats = Vec::new();
    let mut names = Vec::new();
    for i in 0..instances {
        let name = format!("{base}-{i}");
        let datad = Datad::new(&config, store.clone());
        stats.push(datad.stats());
        nodes.push(datad.node(&name).build().start(&transport).await.unwrap());
        names.push(name);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = msgs.len() as u64;
    let t0 = Instant::now();
    let publisher = publish_apart(&host, port, "meas", msgs);
    let waiter = async {
        let mut report = Instant::now();
        loop {
            let snapshots: Vec<_> = stats.iter().map(|s| s.snapshot()).collect();
            let stored: u64 = snapshots.iter().map(|s| s.stored).sum();
            if stored >= n {
                return Instant::now();
            }
            if report.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "  {tag}: {} of {n} published, {stored} stored, {} batches, {} retries",
                    PUBLISHED.load(std::sync::atomic::Ordering::Relaxed),
                    snapshots.iter().map(|s| s.batches).sum::<u64>(),
                    snapshots.iter().map(|s| s.retries).sum::<u64>(),
                );
                report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (publisher_ticks, done) = tokio::join!(publisher, waiter);
    if instances > 1 {
        let shares: Vec<u64> = stats.iter().map(|s| s.snapshot().stored).collect();
        eprintln!("  {tag}: stored per instance {shares:?}");
    }
    for (node, name) in nodes.into_iter().zip(&names) {
        node.stop().await.unwrap();
        // Drop the persistent session, or the broker keeps queueing for it.
        let link = transport
            .connect(mqttcal_core::transport::SessionSpec::new(
                format!("{name}-ingest"),
                vec![],
            ))
            .await
            .unwrap();
        let _ = link.publisher.disconnect().await;
    }
    let stored = store.count_measurements().await.unwrap();
    assert_eq!(stored, n, "{tag}: stored {stored} of {n}");
    (n as f64 / (done - t0).as_secs_f64(), publisher_ticks)
}

fn mqtt_config(url: &str) -> MqttConfig {
    let mut c = MqttConfig::default();
    c.apply_url(url).expect("broker URL");
    c
}

fn host_port(url: &str) -> (String, u16) {
    let c = mqtt_config(url);
    (c.hostname, c.port)
}

fn arg(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args: Vec<String> = std::env::args().collect();
    if arg(&args, "--broker").is_none() && arg(&args, "--mosquitto").is_none() {
        args.extend(["--mosquitto".into(), "production".into()]);
    }
    let (broker, _guard) = broker_from_args(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let n = number_arg(&args, "--n", 50_000);
    let batch = number_arg(&args, "--batch", 2000);
    let (db_base, _pg) = match arg(&args, "--database") {
        Some(url) => (url, None),
        None => {
            let pg = mqttcal_testkit::Postgres::start_durable();
            (String::new(), Some(pg))
        }
    };
    let database = |name: &str| match &_pg {
        Some(pg) => pg.create_database(name),
        None => db_base.clone(),
    };
    let (host, port) = host_port(&broker);
    let msgs = readings(n);
    let size = msgs.iter().map(Bytes::len).sum::<usize>() / n.max(1);
    eprintln!("ingest: {n} readings of {size} bytes, broker {broker}");

    let mut cpu = CpuLedger::default();
    cpu.start();
    let (flood_a, ticks) = raw_flood(&host, port, &msgs).await;
    cpu.account_apart("raw_flood", n, ticks);
    eprintln!("raw QoS 1 flood: {flood_a:.0}/s");
    let copy_url = database("copy");
    let _ = mqttcal_store::open(&copy_url).await.unwrap();
    // datad's decoding of a reading (the fast path), alone, on one core.
    let t_decode = Instant::now();
    let rows = rows_of(&msgs);
    let decode_us = t_decode.elapsed().as_secs_f64() * 1e6 / n as f64;
    eprintln!("decoding a reading: {decode_us:.2} µs");
    cpu.start();
    let copy = pg_copy(&copy_url, &rows).await;
    cpu.account("pg_copy", n);
    eprintln!("PostgreSQL COPY: {copy:.0}/s");
    let pg_store: Arc<dyn Store> = mqttcal_store::open(&database("datad")).await.unwrap();
    cpu.start();
    let (pg, ticks) = through_datad(&broker, pg_store, &msgs, "pg", batch, 1).await;
    cpu.account_apart("datad_postgres", n, ticks);
    eprintln!("datad -> PostgreSQL: {pg:.0}/s");
    let pg2_store: Arc<dyn Store> = mqttcal_store::open(&database("datad2")).await.unwrap();
    cpu.start();
    let (pg2, ticks) = through_datad(&broker, pg2_store, &msgs, "pg2", batch, 2).await;
    cpu.account_apart("datad_postgres_x2", n, ticks);
    eprintln!("two datads (shared subscription) -> PostgreSQL: {pg2:.0}/s");
    let dir = tempfile::tempdir().unwrap();
    let sqlite_target = format!("sqlite:{}", dir.path().join("bench.db").display());
    let sqlite_store: Arc<dyn Store> = mqttcal_store::open(&sqlite_target).await.unwrap();
    cpu.start();
    let (sqlite, ticks) = through_datad(&broker, sqlite_store, &msgs, "sqlite", batch, 1).await;
    cpu.account_apart("datad_sqlite", n, ticks);
    eprintln!("datad -> SQLite: {sqlite:.0}/s");
    cpu.start();
    let (flood_b, ticks) = raw_flood(&host, port, &msgs).await;
    cpu.account_apart("raw_flood_again", n, ticks);
    eprintln!("raw QoS 1 flood again: {flood_b:.0}/s");

    let flood = flood_a.max(flood_b);
    let ceiling = flood.min(copy);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{}",
        json!({
            "bench": "ingest",
            "n": n,
            "batch": batch,
            "message_bytes": size,
            "raw_flood_per_s": flood.round(),
            "pg_copy_per_s": copy.round(),
            "datad_postgres_per_s": pg.round(),
            "datad_sqlite_per_s": sqlite.round(),
            "datad_postgres_x2_per_s": pg2.round(),
            "ratio_postgres": r(pg / ceiling),
            "ratio_postgres_x2": r(pg2 / ceiling),
            "ratio_sqlite": r(sqlite / ceiling),
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
            "decode_us_per_reading": (decode_us * 100.0).round() / 100.0,
            "cpu_ms_per_1000": cpu.series,
        })
    );
}
