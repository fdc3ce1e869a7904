//! A durable outbox: a node's data messages kept on disk until the broker has them.
//!
//! A reading that a node has taken lives in its memory until the broker acknowledges it.
//! Killed in between (SIGKILL, a crash, the OOM killer), the node would lose it. With an
//! outbox ([`NodeBuilder::outbox`](crate::NodeBuilder::outbox)), every message that
//! [`Context::publish`](crate::Context::publish) sends is first appended to a file, and
//! forgotten only once the transport confirms that the broker acknowledged it
//! ([`Publisher::confirmed`]). At the next start
//! the node sends again, before its `hello`, whatever the file still keeps: the same bytes,
//! so with their first run's `epoch` and `seq`, which a receiver that stores exactly once
//! (datad) recognises. The outbox survives a killed process; with
//! [`OutboxConfig::sync`] it also survives a power cut, at one `fdatasync` per message.
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! use mqttcal_core::{outbox::OutboxConfig, NodeBuilder};
//! let node = NodeBuilder::new("labd")
//!     .outbox(OutboxConfig::new("/var/lib/mqttcal/labd.outbox"))
//!     .build()
//!     .start(transport)
//!     .await?;
//! node.context().publish("meas", serde_json::json!({"DC-measurement": 1.0000012})).await?;
//! // What the file still keeps (e.g. after a crash), without opening it for writing:
//! let state = mqttcal_core::outbox::inspect("/var/lib/mqttcal/labd.outbox".as_ref())?;
//! println!("{} messages not yet confirmed", state.kept.len());
//! # Ok(()) }
//! ```

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
}

impl Outbox {
    /// Opens the outbox of `cfg`; it, and what it kept from an earlier run.
    pub(crate) fn open(cfg: &OutboxConfig) -> std::io::Result<(Arc<Self>, Vec<Kept>)> {
        let (file, state) = OutboxFile::open(&cfg.path, cfg.sync)?;
        let kept = file.kept();
        let this = Arc::new(Self {
            file: Mutex::new(file),
            appended: Notify::new(),
            kept: AtomicUsize::new(kept),
        });
        Ok((this, state.kept))
    }

    /// Messages kept and not yet confirmed.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Acquire)
    }

    /// Keeps `msg`, then queues it: in the file's order, so that a confirmation covers
    /// exactly what was appended before it.
    pub(crate) async fn publish(
        &self,
        publisher: &dyn Publisher,
        msg: Outgoing,
    ) -> Result<(), CallError> {
        let mut file = self.file.lock().await;
        file.append(&msg).map_err(CallError::Outbox)?;
        self.kept.store(file.kept(), Ordering::Release);
        let sent = publisher.publish(msg).await;
        drop(file);
        self.appended.notify_one();
        sent.map_err(CallError::Transport)
    }

    /// Sends again what an earlier run kept (they stay kept until confirmed).
    pub(crate) async fn resend(
        &self,
        publisher: &dyn Publisher,
        kept: Vec<Kept>,
    ) -> Result<(), CallError> {
        if kept.is_empty() {
            return Ok(());
        }
        let _file = self.file.lock().await;
        let (n, first, last) = (kept.len(), kept[0].id, kept[kept.len() - 1].id);
        for k in kept {
            publisher
                .publish(k.message)
                .await
                .map_err(CallError::Transport)?;
        }
        tracing::info!(
            "sent again {n} messages that the outbox kept from an earlier run (ids {first} to {last})"
        );
        self.appended.notify_one();
        Ok(())
    }

    /// Confirms what was appended, batch after batch, until the connection closes for
    /// good (what is then kept goes again at the next start). A confirmation that fails
    /// (a transport that gave up on a message) sends everything kept again.
    pub(crate) async fn confirm_forever(self: Arc<Self>, publisher: Arc<dyn Publisher>) {
        loop {
            self.appended.notified().await;
            if self.confirm_once(&*publisher).await.is_ok() {
                continue;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let file = self.file.lock().await;
            let kept = file.kept_messages();
            tracing::warn!(
                "the transport could not confirm {} kept messages: sending them again",
                kept.len()
            );
            for msg in kept {
                if publisher.publish(msg).await.is_err() {
                    return;
                }
            }
            drop(file);
            self.appended.notify_one();
        }
    }

    /// Waits for the broker to confirm everything queued so far; forgets it.
    async fn confirm_once(&self, publisher: &dyn Publisher) -> Result<(), ()> {
        let upto = {
            let file = self.file.lock().await;
            if file.kept() == 0 {
                return Ok(());
            }
            file.last_id()
        };
        let Some(upto) = upto else { return Ok(()) };
        publisher.confirmed().await.map_err(drop)?;
        let mut file = self.file.lock().await;
        if let Err(e) = file.confirm(upto) {
            // Only more is sent again at the next start.
            tracing::warn!("cannot note confirmed messages in the outbox: {e}");
        }
        self.kept.store(file.kept(), Ordering::Release);
        Ok(())
    }

    /// At a stop: waits a while for the broker to confirm what is kept.
    pub(crate) async fn flush(&self, publisher: &dyn Publisher) {
        let n = self.kept();
        if n == 0 {
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
