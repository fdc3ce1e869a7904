//! A durable outbox: a node's data messages kept on disk until the broker has them.
//!
//! A reading that a node has taken lives in its memory until the broker acknowledges it.
//! Killed in between (SIGKILL, a crash, the OOM killer), the node would lose it. With an
//! outbox ([`NodeBuilder::outbox`](crate::NodeBuilder::outbox)), every message that
//! [`Context::publish`](crate::Context::publish) sends is first appended to a file, and
//! forgotten only once the transport confirms that the broker acknowledged it
//! ([`Publisher::confirmed`]). At the next start
//! the node sends again, as soon as it is connected, whatever the file still keeps: the same bytes,
//! so with their first run's `epoch` and `seq`, which a receiver that stores exactly once
//! (datad) recognises. The outbox survives a killed process; with
//! [`OutboxConfig::sync`] it also survives a power cut, at one `fdatasync` per message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mqttcal_core::config::MqttConfig;
//! use mqttcal_core::transport::MqttTransport;
//! use mqttcal_core::{outbox::OutboxConfig, NodeBuilder};
//! let mut mqtt = MqttConfig::default();
//! mqtt.apply_url("mqtt://127.0.0.1:1883")?;
//! let transport = MqttTransport::new(mqtt);
//! let node = NodeBuilder::new("thermo-logger")
//!     .outbox(OutboxConfig::new("/var/lib/mqttcal/thermo-logger.outbox"))
//!     .build()
//!     .start(&transport)
//!     .await?;
//! node.context().publish("meas", serde_json::json!({"DC-measurement": 1.0000012})).await?;
//! // What the file still keeps (e.g. after a crash), without opening it for writing:
//! let state = mqttcal_core::outbox::inspect("/var/lib/mqttcal/thermo-logger.outbox".as_ref())?;
//! println!("{} messages not yet confirmed", state.kept.len());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};

use crate::call_error::CallError;
use crate::transport::{Outgoing, Publisher};

mod file;

use file::OutboxFile;
pub use file::{Kept, OutboxState};

/// Where a node keeps its outbox, and how durably.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The outbox file (its folder is created if missing). One node per file.
    pub path: PathBuf,
    /// `fdatasync` after every message, so that a power cut loses nothing either (a killed
    /// process loses nothing without it).
    #[serde(default)]
    pub sync: bool,
}

impl OutboxConfig {
    /// An outbox at `path`, durable against a killed process.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: false,
        }
    }

    /// Also durable against a power cut (one `fdatasync` per message).
    #[must_use]
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }
}

/// Reads what the outbox file at `path` keeps, without changing it: the messages not yet
/// confirmed and the last id given (a tool's or a test's view; the node reads it itself
/// at start).
pub fn inspect(path: &Path) -> std::io::Result<OutboxState> {
    let mut file = std::fs::File::open(path)?;
    file::read_records(&mut file).map(|(state, _)| state)
}

/// Where the messages the broker refused are set aside: `<outbox>.refused`, one JSON
/// object per line (`utc`, `topic`, `reason`, `payload`).
pub fn refused_path(outbox: &Path) -> PathBuf {
    let mut name = outbox.as_os_str().to_owned();
    name.push(".refused");
    PathBuf::from(name)
}

/// How long a stopping node waits for the broker to confirm what its outbox keeps.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A node's open outbox.
#[derive(Debug)]
pub(crate) struct Outbox {
    file: Mutex<OutboxFile>,
    /// Something was appended: the confirming task has work.
    appended: Notify,
    /// Messages kept, for `ping`.
    kept: AtomicUsize,
    /// Ids of kept messages not handed to the transport in this run, oldest first: what
    /// an earlier run left, and messages whose publishing was cancelled or failed. They are
    /// sent before any confirmation, which would otherwise cover them.
    unsent: std::sync::Mutex<VecDeque<u64>>,
    /// Messages the broker refused, set aside in [`Outbox::refused_path`].
    refused: std::sync::atomic::AtomicU64,
    refused_path: PathBuf,
    /// Limits the log lines about refused messages.
    warnings: crate::Throttle,
}

/// Notes a kept message as unsent unless it was handed to the transport: a `publish`
/// future dropped while waiting for room must not leave a message that a confirmation of
/// later ones would forget.
struct Unsent<'a> {
    outbox: &'a Outbox,
    id: Option<u64>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.outbox.unsent().push_back(id);
            self.outbox.appended.notify_one();
        }
    }
}

impl Outbox {
    /// Opens the outbox of `cfg`; what an earlier run kept waits to be sent again. Also
    /// the last message an earlier run appended, if any (where that run ended).
    pub(crate) fn open(cfg: &OutboxConfig) -> std::io::Result<(Arc<Self>, Option<Outgoing>)> {
        let (file, state) = OutboxFile::open(&cfg.path, cfg.sync)?;
        if let (Some(first), Some(last)) = (state.kept.first(), state.kept.last()) {
            tracing::info!(
                outbox = %cfg.path.display(),
                "sending again {} messages an earlier run kept (ids {} to {})",
                state.kept.len(),
                first.id,
                last.id
            );
        }
        let this = Arc::new(Self {
            kept: AtomicUsize::new(file.kept()),
            file: Mutex::new(file),
            appended: Notify::new(),
            unsent: std::sync::Mutex::new(state.kept.iter().map(|k| k.id).collect()),
            refused: std::sync::atomic::AtomicU64::new(0),
            refused_path: refused_path(&cfg.path),
            warnings: crate::Throttle::new(std::time::Duration::from_secs(10)),
        });
        this.appended.notify_one();
        // After a torn tail (a machine that stopped mid-write) the earlier run's end is not
        // known for sure: no `bye` for it, so a receiver shows its tail as cut.
        let last = state.last_message.filter(|_| state.torn_bytes == 0);
        Ok((this, last))
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        self.unsent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Messages kept and not yet confirmed.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Acquire)
    }

    /// Messages the broker refused since the node started.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }

    /// Sets aside messages the broker refused (resending the same bytes would not change
    /// its mind): each is counted, logged, and appended to the `.refused` file beside the
    /// outbox, so that nothing goes silently.
    fn set_aside(&self, refused: Vec<crate::transport::Refused>) {
        if refused.is_empty() {
            return;
        }
        let total = self
            .refused
            .fetch_add(refused.len() as u64, Ordering::AcqRel)
            + refused.len() as u64;
        // One line per 10 s at most: a broker refusing a stream would flood the log.
        if self.warnings.hit("refused").is_some() {
            tracing::error!(
                topic = %refused[0].message.topic,
                "the broker refused {} message(s) ({}); {total} since the start, set aside in {} (this line at most every 10 s)",
                refused.len(),
                refused[0].reason,
                self.refused_path.display()
            );
        }
        let lines: String = refused
            .iter()
            .map(|r| {
                let line = serde_json::json!({
                    "utc": crate::clock::Timestamp::now().as_secs_f64(),
                    "topic": r.message.topic,
                    "reason": r.reason,
                    "payload": String::from_utf8_lossy(&r.message.payload),
                });
                format!("{line}\n")
            })
            .collect();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.refused_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()));
        if let Err(e) = written {
            tracing::error!(
                "cannot set refused messages aside in {}: {e}",
                self.refused_path.display()
            );
        }
    }

    /// Keeps `msg`, then queues it: in the file's order, so that a confirmation covers
    /// exactly what was appended before it.
    pub(crate) async fn publish(
        &self,
        publisher: &dyn Publisher,
        msg: Outgoing,
    ) -> Result<(), CallError> {
        let mut file = self.file.lock().await;
        let id = file.append(&msg).map_err(CallError::Outbox)?;
        self.kept.store(file.kept(), Ordering::Release);
        let mut unsent = Unsent {
            outbox: self,
            id: Some(id),
        };
        let sent = publisher.publish(msg).await;
        if sent.is_ok() {
            unsent.id = None;
        }
        drop(unsent);
        drop(file);
        self.appended.notify_one();
        sent.map_err(CallError::Transport)
    }

    /// Hands the transport the kept messages not handed to it yet, one at a time, each
    /// forgotten as unsent only once queued (so that a cancellation loses none).
    async fn send_unsent(&self, publisher: &dyn Publisher) -> Result<(), ()> {
        let file = self.file.lock().await;
        loop {
            let Some(id) = self.unsent().front().copied() else {
                return Ok(());
            };
            if let Some(msg) = file.message(id) {
                publisher.publish(msg).await.map_err(drop)?;
            }
            let mut unsent = self.unsent();
            if unsent.front() == Some(&id) {
                unsent.pop_front();
            }
        }
    }

    /// Confirms what is kept, batch after batch, until the connection closes for good
    /// (what is then kept goes again at the next start). It runs beside the node, so that
    /// the node reads its messages (and the broker's acknowledgements come in) while a
    /// backlog goes out. A confirmation that fails (a transport that gave up on a
    /// message) sends everything kept again.
    ///
    /// `farewell` (the end of an earlier run, announced for it) goes once what that run
    /// left has been handed to the transport.
    pub(crate) async fn run(
        self: Arc<Self>,
        publisher: Arc<dyn Publisher>,
        farewell: Option<Outgoing>,
    ) {
        if let Some(bye) = farewell {
            if self.send_unsent(&*publisher).await.is_err() || publisher.publish(bye).await.is_err()
            {
                return;
            }
        }
        loop {
            self.appended.notified().await;
            if self.confirm_once(&*publisher).await.is_ok() {
                continue;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let file = self.file.lock().await;
            let ids: Vec<u64> = file.kept_ids();
            tracing::warn!(
                "the transport could not confirm {} kept messages: sending them again",
                ids.len()
            );
            let mut unsent = self.unsent();
            for id in ids {
                if !unsent.contains(&id) {
                    unsent.push_back(id);
                }
            }
            drop(unsent);
            drop(file);
            self.appended.notify_one();
        }
    }

    /// Sends what is unsent, then waits for the broker to confirm everything queued so
    /// far; forgets it.
    async fn confirm_once(&self, publisher: &dyn Publisher) -> Result<(), ()> {
        self.send_unsent(publisher).await?;
        let upto = {
            let file = self.file.lock().await;
            if file.kept() == 0 || !self.unsent().is_empty() {
                // Nothing to confirm; or a publishing cancelled meanwhile, whose note
                // wakes this task again.
                return Ok(());
            }
            file.last_id()
        };
        let Some(upto) = upto else { return Ok(()) };
        let refused = publisher.confirmed().await.map_err(drop)?;
        self.set_aside(refused);
        let mut file = self.file.lock().await;
        if let Err(e) = file.confirm(upto) {
            // Only more is sent again at the next start.
            tracing::warn!("cannot note confirmed messages in the outbox: {e}");
        }
        self.kept.store(file.kept(), Ordering::Release);
        Ok(())
    }

    /// At a clean stop, once the node's `bye` is published: if the broker confirms it, and
    /// nothing is kept, notes that this run ended, so the next one sends no `bye` for it.
    pub(crate) async fn ended(&self, publisher: &dyn Publisher) {
        if self.kept() != 0 {
            return;
        }
        match tokio::time::timeout(STOP_GRACE, publisher.confirmed()).await {
            Ok(Ok(refused)) if refused.is_empty() => {
                if let Err(e) = self.file.lock().await.ended() {
                    tracing::warn!("cannot note the clean stop in the outbox: {e}");
                }
            }
            Ok(Ok(refused)) => self.set_aside(refused),
            // Unconfirmed: the next run closes this one, as after a kill.
            _ => {}
        }
    }

    /// At a stop: waits a while for the broker to confirm what is kept.
    pub(crate) async fn flush(&self, publisher: &dyn Publisher) {
        if self.kept() == 0 {
            return;
        }
        if tokio::time::timeout(STOP_GRACE, self.confirm_once(publisher))
            .await
            .is_err()
        {
            tracing::warn!(
                "{} messages were not confirmed by the broker in time: the outbox keeps them for the next start",
                self.kept()
            );
        }
    }
}

#[cfg(test)]
mod tests;
