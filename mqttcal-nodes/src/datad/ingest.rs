//! The ingest loop: receive, batch, commit, then acknowledge in arrival order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqttcal_core::topics::{self, Topics};
use mqttcal_core::transport::{
    Ack, Event, Link, QoS, SessionSpec, Subscription, Transport, TransportError,
};
use mqttcal_core::{envelope::DEFAULT_MAX_MESSAGE_SIZE, Client, Envelope, Gather};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::gaps::GapTracker;
use mqttcal_messages::{LabMessage, LogEntry};
use mqttcal_store::{MeasurementRow, Store};

/// The topic of logbook entries.
pub(super) const LOG_TOPIC: &str = match LogEntry::TOPIC {
    Some(t) => t,
    None => "log",
};

/// Counters of the ingest loop.
#[derive(Debug, Default, Clone, Serialize, schemars::JsonSchema)]
pub struct StatsSnapshot {
    /// Rows committed.
    pub stored: u64,
    /// Redelivered readings that were stored already.
    pub duplicates: u64,
    /// Messages on `meas` that are not measurements and carry no `cmd` (logged, acknowledged).
    pub rejected: u64,
    /// Commands on `meas` (triggers for other nodes), ignored.
    pub ignored: u64,
    /// Readings missing per sender, from gaps in `seq` and announced tails.
    pub missing: HashMap<String, u64>,
    /// Transactions committed.
    pub batches: u64,
    /// Failed attempts to write a batch (database unreachable), retried.
    pub retries: u64,
    /// Rows committed per second, over the last second or more of ingest.
    pub rate_per_s: f64,
    /// Seconds from the newest reading's send time to its commit, last batch.
    pub lag_s: f64,
}

/// Shared ingest statistics.
#[derive(Debug, Default)]
pub struct IngestStats {
    inner: Mutex<StatsSnapshot>,
}

impl IngestStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A running ingest loop.
#[derive(Debug)]
pub struct Ingestor {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    stats: Arc<IngestStats>,
}

/// One received message waiting for its batch to commit.
struct Pending {
    row: Option<MeasurementRow>,
    ack: Option<Ack>,
    skipped: Option<Skipped>,
}

/// Why a message is acknowledged without a row.
#[derive(Clone, Copy)]
enum Skipped {
    /// Not a measurement (logged).
    Rejected,
    /// A command on `meas`, for another node.
    Ignored,
    /// An announcement.
    Control,
}

impl Pending {
    fn skip(ack: Option<Ack>, why: Skipped) -> Self {
        Self {
            row: None,
            ack,
            skipped: Some(why),
        }
    }
}

impl Ingestor {
    /// Connects as `client_id` with a persistent session and manual acknowledgements,
    /// subscribes `meas` and `announce` under `prefix`, and starts the loop.
    pub async fn start(
        client_id: &str,
        prefix: &str,
        store: Arc<dyn Store>,
        transport: &dyn Transport,
        batch: usize,
        batch_wait: Duration,
    ) -> Result<Self, TransportError> {
        let t = Topics::new(prefix);
        let link = transport
            .connect(SessionSpec {
                clean_session: false,
                manual_acks: true,
                receive_maximum: Some(in_flight_for(batch)),
                ..SessionSpec::new(
                    client_id,
                    vec![
                        Subscription::new(t.topic(topics::MEAS), QoS::AtLeastOnce),
                        Subscription::new(t.topic(topics::ANNOUNCE), QoS::AtLeastOnce),
                    ],
                )
            })
            .await?;
        let (stop, stop_rx) = watch::channel(false);
        let stats = Arc::new(IngestStats::default());
        let (census_tx, census) = tokio::sync::mpsc::channel(64);
        let census_client = Client::connect(transport, &format!("{client_id}-census"), prefix)
            .await
            .map_err(|e| match e {
                mqttcal_core::RunError::Connect(t) => t,
                _ => TransportError::Closed,
            })?;
        let logbook = census_client.context().clone();
        let census_task = tokio::spawn(run_census(census_client, census_tx, stop_rx.clone()));
        // Take up each sender's stream where the stored readings end, so readings stored by
        // an earlier run are not counted missing.
        let mut gaps = GapTracker::default();
        match store.stream_heads(RESUME_DAYS).await {
            Ok(heads) => {
                for h in heads {
                    gaps.resume(&h.origin, h.epoch, h.seq);
                }
            }
            Err(e) => tracing::warn!("datad: cannot read where the streams end ({e}); gaps are counted from the first reading received"),
        }
        // One batch written while the next one fills.
        let (writer_tx, jobs) = tokio::sync::mpsc::channel(1);
        let writer = Writer {
            logbook,
            store,
            stats: stats.clone(),
            gaps,
            stop: stop_rx.clone(),
            window: (Instant::now(), 0),
        };
        let writer_task = tokio::spawn(writer.run(jobs));
        let lp = Loop {
            link,
            topics: t,
            pending: Vec::with_capacity(batch),
            batch,
            batch_wait,
            stop: stop_rx,
            census,
            writer: writer_tx,
        };
        let task = tokio::spawn(async move {
            let link = lp.run().await;
            // The writer ends once it has written (or given up on) what it was sent, and
            // acknowledged it: only then may the connection go.
            let _ = writer_task.await;
            let _ = link.publisher.disconnect().await;
            let _ = census_task.await;
        });
        Ok(Self { task, stop, stats })
    }

    /// The counters.
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// Writes what is pending, acknowledges it, and disconnects.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

struct Loop {
    link: Link,
    topics: Topics,
    pending: Vec<Pending>,
    batch: usize,
    batch_wait: Duration,
    stop: watch::Receiver<bool>,
    census: tokio::sync::mpsc::Receiver<(String, u64, u64)>,
    writer: tokio::sync::mpsc::Sender<Job>,
}

/// Work for the writer, in arrival order.
enum Job {
    /// Commit these rows, then acknowledge these messages.
    Batch(Vec<Pending>),
    /// A sender's last `seq` on `meas`, from `bye`, a heartbeat or the census.
    Announced(String, u64, u64),
}

/// The QoS 1 messages datad lets the broker have in flight towards it for batches of
/// `batch`: a batch being written, one waiting, one filling, and as much again, so the broker
/// never waits for acknowledgements while datad commits (at least the transport's default,
/// at most MQTT's limit).
fn in_flight_for(batch: usize) -> u16 {
    u16::try_from(batch.saturating_mul(4).max(1000)).unwrap_or(u16::MAX)
}

/// How far back a starting datad looks for the streams it takes up.
const RESUME_DAYS: f64 = 7.0;

/// How often datad asks every node for its last `seq`s.
const CENSUS_EVERY: Duration = Duration::from_secs(10);

/// Asks every node (`ping` to `*`) for its epoch and last `seq` on `meas`, soon after the
/// start and then every [`CENSUS_EVERY`]: a loss at the tail of a burst shows even when
/// the sender's `bye` was itself dropped.
async fn run_census(
    client: Client,
    tx: tokio::sync::mpsc::Sender<(String, u64, u64)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        wait = CENSUS_EVERY;
        let gather = Gather {
            timeout: Duration::from_secs(1),
            expect: None,
        };
        let Ok(replies) = client
            .context()
            .gather("ping", serde_json::json!({}), gather)
            .await
        else {
            continue;
        };
        for r in replies {
            let reply = r.reply.unwrap_or_default();
            let epoch = reply.get("epoch").and_then(serde_json::Value::as_u64);
            let last = reply
                .get("seqs")
                .and_then(|s| s.get(topics::MEAS))
                .and_then(serde_json::Value::as_u64);
            if let (Some(epoch), Some(last)) = (epoch, last) {
                let _ = tx.send((r.from, epoch, last)).await;
            }
        }
    }
    client.close().await;
}

impl Loop {
    /// Runs until stopped; returns the link once everything is handed to the writer.
    async fn run(mut self) -> Link {
        let mut deadline = tokio::time::Instant::now() + self.batch_wait;
        loop {
            tokio::select! {
                ev = self.link.events.recv() => match ev {
                    Some(Event::Message { topic, payload, ack }) => {
                        if self.pending.is_empty() {
                            deadline = tokio::time::Instant::now() + self.batch_wait;
                        }
                        if let Some(announced) = self.receive(&topic, &payload, ack) {
                            // Counted against what arrived before it: that goes first.
                            self.flush().await;
                            let _ = self.writer.send(announced).await;
                        }
                        if self.pending.len() >= self.batch {
                            self.flush().await;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline), if !self.pending.is_empty() => self.flush().await,
                Some((origin, epoch, last)) = self.census.recv() => {
                    self.flush().await;
                    let _ = self.writer.send(Job::Announced(origin, epoch, last)).await;
                }
                _ = self.stop.changed() => break,
            }
        }
        self.flush().await;
        self.link
    }

    /// Hands the pending messages to the writer (waiting while it is one batch behind).
    async fn flush(&mut self) {
        if !self.pending.is_empty() {
            let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch));
            let _ = self.writer.send(Job::Batch(batch)).await;
        }
    }

    /// Decodes one message into the pending batch; an announcement of a sender's last
    /// `seq` is returned for the writer.
    fn receive(&mut self, topic: &str, payload: &[u8], ack: Option<Ack>) -> Option<Job> {
        let name = self.topics.strip(topic).unwrap_or(topic);
        // The usual reading in one pass; the size limit holds on both paths.
        if name == topics::MEAS && payload.len() <= DEFAULT_MAX_MESSAGE_SIZE {
            if let Some(row) = super::decode_fast::parse_common(payload) {
                self.pending.push(Pending {
                    row: Some(row),
                    ack,
                    skipped: None,
                });
                return None;
            }
        }
        let env = match Envelope::decode(payload, DEFAULT_MAX_MESSAGE_SIZE) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(
                    topic,
                    "datad: dropped a message that is not one: {}",
                    mqttcal_core::error_chain(&e)
                );
                self.pending.push(Pending::skip(ack, Skipped::Rejected));
                return None;
            }
        };
        if name == topics::ANNOUNCE {
            self.pending.push(Pending::skip(ack, Skipped::Control));
            let last = env
                .fields
                .get("seqs")
                .and_then(|s| s.get(topics::MEAS))
                .and_then(|v| v.as_u64());
            return match (env.epoch, last) {
                (Some(epoch), Some(last)) => Some(Job::Announced(env.from, epoch, last)),
                _ => None,
            };
        }
        match super::decode::measurement_row(&env, payload) {
            Ok(row) => self.pending.push(Pending {
                row: Some(row),
                ack,
                skipped: None,
            }),
            Err(e) => {
                let why = if env.cmd.is_some() {
                    Skipped::Ignored
                } else {
                    tracing::warn!(from = %env.from, "datad: {e}; acknowledged and not stored");
                    Skipped::Rejected
                };
                self.pending.push(Pending::skip(ack, why));
            }
        }
        None
    }
}

/// Writes batches in order: commit (retrying while the database is down), count gaps, then
/// acknowledge every message of the batch in arrival order.
struct Writer {
    /// Sends gap reports to the logbook (logd, topic `log`).
    logbook: mqttcal_core::Context,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    gaps: GapTracker,
    stop: watch::Receiver<bool>,
    window: (Instant, u64),
}

impl Writer {
    async fn run(mut self, mut jobs: tokio::sync::mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Batch(batch) => {
                    if !self.write(batch).await {
                        // Stopping without a commit: nothing more is acknowledged, the
                        // broker keeps the readings for the next start.
                        return;
                    }
                }
                Job::Announced(origin, epoch, last) => {
                    self.note_announced(&origin, epoch, last).await;
                }
            }
        }
    }

    /// A gap report for the logbook; never waits long (the logbook is best effort here,
    /// `stats` keeps the count).
    async fn log_gap(&self, origin: &str, lost: u64, how: &str) {
        let entry = LogEntry {
            tags: vec!["datad".into(), "gap".into()],
            ..LogEntry::new(
                "gap",
                format!("{lost} readings from {origin} missing ({how})"),
            )
        };
        let send = self.logbook.send(LOG_TOPIC, "*", &entry);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), send).await {
            tracing::warn!("datad: cannot report a gap to the logbook: {e}");
        }
    }

    async fn note_announced(&mut self, origin: &str, epoch: u64, last: u64) {
        let lost = self.gaps.announced(origin, epoch, last);
        if lost > 0 {
            tracing::warn!(
                origin,
                lost,
                "datad: readings announced but not received (yet)"
            );
            self.log_gap(origin, lost, "announced as sent, not received")
                .await;
        }
        let missing = self.gaps.missing().clone();
        self.stats.update(|s| s.missing = missing);
    }

    /// Returns false when it gave up because datad is stopping.
    async fn write(&mut self, mut batch: Vec<Pending>) -> bool {
        let rows: Vec<MeasurementRow> = batch.iter_mut().filter_map(|p| p.row.take()).collect();
        let mut backoff = Duration::from_millis(100);
        let inserted = loop {
            if rows.is_empty() {
                break 0;
            }
            match self.store.insert_measurements(&rows).await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(
                        "datad: cannot write {} rows ({e}); retrying in {backoff:?}",
                        rows.len()
                    );
                    self.stats.update(|s| s.retries += 1);
                    if *self.stop.borrow() {
                        return false;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        let mut gaps: HashMap<&str, u64> = HashMap::new();
        for r in &rows {
            if let (Some(epoch), Some(seq)) = (r.epoch, r.seq) {
                let lost = self.gaps.seen(&r.origin, epoch as u64, seq as u64);
                if lost > 0 {
                    tracing::warn!(origin = %r.origin, lost, "datad: gap in the readings");
                    *gaps.entry(&r.origin).or_default() += lost;
                }
            }
        }
        for (origin, lost) in gaps {
            self.log_gap(origin, lost, "a jump in seq").await;
        }
        let (mut rejected, mut ignored) = (0, 0);
        for p in batch {
            match p.skipped {
                Some(Skipped::Rejected) => rejected += 1,
                Some(Skipped::Ignored) => ignored += 1,
                _ => {}
            }
            if let Some(ack) = p.ack {
                // False when the connection broke since: the broker sends it again.
                ack.ack();
            }
        }
        let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
        let newest = rows.iter().map(|r| r.sent_at).fold(0.0, f64::max);
        let missing = self.gaps.missing().clone();
        self.window.1 += rows.len() as u64;
        let elapsed = self.window.0.elapsed().as_secs_f64();
        let rate = (elapsed >= 1.0).then(|| self.window.1 as f64 / elapsed);
        if rate.is_some() {
            self.window = (Instant::now(), 0);
        }
        self.stats.update(|s| {
            s.stored += inserted;
            s.duplicates += rows.len() as u64 - inserted;
            s.rejected += rejected;
            s.ignored += ignored;
            s.batches += u64::from(!rows.is_empty());
            s.missing = missing;
            if let Some(rate) = rate {
                s.rate_per_s = rate;
            }
            if newest > 0.0 {
                s.lag_s = (now - newest).max(0.0);
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_flight_window_covers_the_batches_datad_holds() {
        assert_eq!(super::in_flight_for(10), 1000);
        assert_eq!(super::in_flight_for(1000), 4000);
        assert_eq!(super::in_flight_for(100_000), u16::MAX);
    }
}
