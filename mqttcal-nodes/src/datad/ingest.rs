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
use crate::store::{MeasurementRow, Store};

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
    /// Rows per second over the last batch interval.
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
                client_id: client_id.to_owned(),
                subscriptions: vec![
                    Subscription::new(t.topic(topics::MEAS), QoS::AtLeastOnce),
                    Subscription::new(t.topic(topics::ANNOUNCE), QoS::AtLeastOnce),
                ],
                will: None,
                clean_session: false,
                manual_acks: true,
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
        let census_task = tokio::spawn(run_census(census_client, census_tx, stop_rx.clone()));
        let lp = Loop {
            link,
            topics: t,
            store,
            stats: stats.clone(),
            gaps: GapTracker::default(),
            pending: Vec::with_capacity(batch),
            batch,
            batch_wait,
            stop: stop_rx,
            census,
        };
        let task = tokio::spawn(async move {
            lp.run().await;
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
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    gaps: GapTracker,
    pending: Vec<Pending>,
    batch: usize,
    batch_wait: Duration,
    stop: watch::Receiver<bool>,
    census: tokio::sync::mpsc::Receiver<(String, u64, u64)>,
}

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
    fn note_announced(&mut self, origin: &str, epoch: u64, last: u64) {
        let lost = self.gaps.announced(origin, epoch, last);
        if lost > 0 {
            tracing::warn!(
                origin,
                lost,
                "datad: readings announced but not received (yet)"
            );
        }
        let missing = self.gaps.missing().clone();
        self.stats.update(|s| s.missing = missing);
    }

    async fn run(mut self) {
        let mut deadline = tokio::time::Instant::now() + self.batch_wait;
        loop {
            tokio::select! {
                ev = self.link.events.recv() => match ev {
                    Some(Event::Message { topic, payload, ack }) => {
                        if self.pending.is_empty() {
                            deadline = tokio::time::Instant::now() + self.batch_wait;
                        }
                        self.receive(&topic, &payload, ack);
                        if self.pending.len() >= self.batch {
                            self.flush().await;
                        }
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline), if !self.pending.is_empty() => self.flush().await,
                Some((origin, epoch, last)) = self.census.recv() => {
                    // Count against what is committed: write what is pending first.
                    self.flush().await;
                    self.note_announced(&origin, epoch, last);
                }
                _ = self.stop.changed() => break,
            }
        }
        self.flush().await;
        let _ = self.link.publisher.disconnect().await;
    }

    fn receive(&mut self, topic: &str, payload: &[u8], ack: Option<Ack>) {
        let name = self.topics.strip(topic).unwrap_or(topic);
        let env = match Envelope::decode(payload, DEFAULT_MAX_MESSAGE_SIZE) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(
                    topic,
                    "datad: dropped a message that is not one: {}",
                    mqttcal_core::error_chain(&e)
                );
                self.stats.update(|s| s.rejected += 1);
                self.pending.push(Pending { row: None, ack });
                return;
            }
        };
        if name == topics::ANNOUNCE {
            let last = env
                .fields
                .get("seqs")
                .and_then(|s| s.get(topics::MEAS))
                .and_then(|v| v.as_u64());
            if let (Some(epoch), Some(last)) = (env.epoch, last) {
                self.note_announced(&env.from, epoch, last);
            }
            self.pending.push(Pending { row: None, ack });
            return;
        }
        match MeasurementRow::from_message(&env, payload) {
            Ok(row) => self.pending.push(Pending {
                row: Some(row),
                ack,
            }),
            Err(e) => {
                if env.cmd.is_some() {
                    self.stats.update(|s| s.ignored += 1);
                } else {
                    tracing::warn!(from = %env.from, "datad: {e}; acknowledged and not stored");
                    self.stats.update(|s| s.rejected += 1);
                }
                self.pending.push(Pending { row: None, ack });
            }
        }
    }

    /// Commits the pending rows (retrying while the database is down), then acknowledges
    /// every pending message in arrival order.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        let rows: Vec<MeasurementRow> = self.pending.iter().filter_map(|p| p.row.clone()).collect();
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
                        // Stopping without a commit: nothing is acknowledged, the broker
                        // keeps the readings for the next start.
                        self.pending.clear();
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        for r in &rows {
            if let (Some(epoch), Some(seq)) = (r.epoch, r.seq) {
                let lost = self.gaps.seen(&r.origin, epoch as u64, seq as u64);
                if lost > 0 {
                    tracing::warn!(origin = %r.origin, lost, "datad: gap in the readings");
                }
            }
        }
        for p in self.pending.drain(..) {
            if let Some(ack) = p.ack {
                ack.ack();
            }
        }
        let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
        let newest = rows.iter().map(|r| r.sent_at).fold(0.0, f64::max);
        let missing = self.gaps.missing().clone();
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        self.stats.update(|s| {
            s.stored += inserted;
            s.duplicates += rows.len() as u64 - inserted;
            s.batches += 1;
            s.missing = missing;
            s.rate_per_s = rows.len() as f64 / secs;
            if newest > 0.0 {
                s.lag_s = (now - newest).max(0.0);
            }
        });
    }
}
