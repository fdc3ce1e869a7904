//! Durable intake: topics subscribed on a persistent session, where a message is
//! acknowledged to the broker only once a handler has committed it.
//!
//! A sink that must not lose data (a data logger, a logbook) needs the same loop every
//! time: a persistent session, QoS 1, manual acknowledgements sent in arrival order after
//! the commit, batching, a receive maximum large enough for what is held unacknowledged,
//! retries while the database is down, and no way for one bad message to stall the rest.
//! [`Intake`] is that loop; a node adds one with [`NodeBuilder::intake`](crate::NodeBuilder::intake), and it starts and
//! stops with the node.
//!
//! Each message goes through two steps:
//! 1. `decode` (cheap, in arrival order; a message larger than the node's
//!    [`max_message_size`](crate::NodeBuilder::max_message_size) is set aside before it, so
//!    `decode` may pass `usize::MAX` as the limit of [`Envelope::decode`](crate::envelope::Envelope::decode)): [`Decoded::Item`] goes on to be committed,
//!    [`Decoded::Skip`] needs nothing (it is acknowledged in its turn), and
//!    [`Decoded::SetAside`] can never be stored: it is logged with its reason, counted,
//!    kept among the recently set aside, and acknowledged, so it never comes back.
//! 2. [`Commit::commit`] (a batch of items, in order): `Ok` acknowledges the batch;
//!    [`CommitError::Retry`] tries the same batch again (backoff 100 ms to 2 s) until it
//!    succeeds or the node stops, in which case nothing more is acknowledged and the broker
//!    delivers the messages again at the next start; [`CommitError::Refused`] means an item
//!    can never be stored: the batch is committed again one item at a time, and the items
//!    refused alone are set aside.
//!
//! The broker delivers a message again after a reconnection when its acknowledgement had
//! not gone out: a commit must be idempotent (datad keys each reading, logd remembers the
//! source of each entry).
//!
//! ```no_run
//! use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake};
//! use mqttcal_core::{Context, NodeBuilder};
//! use mqttcal_core::transport::BoxFuture;
//!
//! /// Appends each line to a file; a stand-in for a database.
//! struct Lines(std::path::PathBuf);
//!
//! impl Commit<String> for Lines {
//!     fn commit<'a>(&'a mut self, items: &'a [String], _ctx: &'a Context)
//!         -> BoxFuture<'a, Result<(), CommitError>> {
//!         Box::pin(async move {
//!             let text: String = items.iter().map(|l| format!("{l}\n")).collect();
//!             let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.0)
//!                 .map_err(CommitError::retry)?;
//!             std::io::Write::write_all(&mut f, text.as_bytes()).map_err(CommitError::retry)
//!         })
//!     }
//! }
//!
//! let intake = Intake::new(
//!     |_topic: &str, payload: &[u8]| match std::str::from_utf8(payload) {
//!         Ok(text) => Decoded::Item(text.to_owned()),
//!         Err(_) => Decoded::SetAside("not UTF-8".into()),
//!     },
//!     Lines("meas.log".into()),
//! )
//! .subscribe("meas")
//! .batch(100, std::time::Duration::from_millis(20));
//! let node = NodeBuilder::new("logger").intake(intake).build();
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::context::Context;
use crate::transport::BoxFuture;

mod pipeline;

pub(crate) use pipeline::{Running, Starter};

/// The cause of a failed commit.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What one message is, for the intake.
#[derive(Debug)]
pub enum Decoded<T> {
    /// Commit it, in arrival order.
    Item(T),
    /// Nothing to commit (e.g. a command meant for another node): acknowledged in its turn.
    Skip,
    /// It can never be committed: set aside with this reason, logged and acknowledged.
    SetAside(String),
}

/// Why a batch was not committed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommitError {
    /// Worth another try (the database is unreachable): the same batch is retried.
    Retry(BoxError),
    /// An item can never be committed: the batch is tried one item at a time, and the
    /// items refused alone are set aside.
    Refused(BoxError),
}

impl CommitError {
    /// [`CommitError::Retry`] with cause `e`.
    pub fn retry(e: impl Into<BoxError>) -> Self {
        Self::Retry(e.into())
    }

    /// [`CommitError::Refused`] with cause `e`.
    pub fn refused(e: impl Into<BoxError>) -> Self {
        Self::Refused(e.into())
    }
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(e) => write!(
                f,
                "not committed, will retry: {}",
                crate::error::error_chain(&**e)
            ),
            Self::Refused(e) => write!(f, "refused: {}", crate::error::error_chain(&**e)),
        }
    }
}

/// Commits batches of decoded items, in arrival order.
pub trait Commit<T>: Send + 'static {
    /// Stores `items` (all or nothing); `ctx` acts as the node (e.g. to report to the
    /// logbook).
    fn commit<'a>(
        &'a mut self,
        items: &'a [T],
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), CommitError>>;
}

/// The decoding step: topic name (without the prefix) and payload.
pub(crate) type DecodeFn<T> = Box<dyn Fn(&str, &[u8]) -> Decoded<T> + Send + Sync>;

/// A message that was set aside, as remembered.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SetAside {
    /// Its topic, without the prefix.
    pub topic: String,
    /// Why it can never be committed.
    pub reason: String,
    /// Its first 512 bytes, as text (lossy).
    pub excerpt: String,
}

/// How many set-aside messages are remembered.
const REMEMBERED: usize = 100;

/// Counters of an intake, shared with the node (e.g. for a `stats` capability).
#[derive(Debug, Default)]
pub struct IntakeStats {
    received: AtomicU64,
    committed: AtomicU64,
    skipped: AtomicU64,
    set_aside: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    recent: Mutex<VecDeque<SetAside>>,
}

/// A copy of an intake's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IntakeCounters {
    /// Messages received (redeliveries included) and items injected.
    pub received: u64,
    /// Items committed.
    pub committed: u64,
    /// Messages that needed nothing.
    pub skipped: u64,
    /// Messages set aside: they can never be committed.
    pub set_aside: u64,
    /// Failed commits that were tried again.
    pub retries: u64,
    /// Batches committed.
    pub batches: u64,
}

impl IntakeStats {
    /// The counters now.
    pub fn counters(&self) -> IntakeCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IntakeCounters {
            received: get(&self.received),
            committed: get(&self.committed),
            skipped: get(&self.skipped),
            set_aside: get(&self.set_aside),
            retries: get(&self.retries),
            batches: get(&self.batches),
        }
    }

    /// The last messages set aside (at most 100), oldest first.
    pub fn recently_set_aside(&self) -> Vec<SetAside> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn set_aside(&self, node: &str, topic: &str, payload: &[u8], reason: String) {
        tracing::warn!(
            node,
            topic,
            "set aside a message that can never be stored: {reason}"
        );
        self.add(&self.set_aside, 1);
        let end = payload.len().min(512);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == REMEMBERED {
            recent.pop_front();
        }
        recent.push_back(SetAside {
            topic: topic.to_owned(),
            reason,
            excerpt: String::from_utf8_lossy(&payload[..end]).into_owned(),
        });
    }
}

/// Puts items into an intake's stream from elsewhere in the node (e.g. a periodic census),
/// in order with the messages received; they are committed but never acknowledged.
#[derive(Debug)]
pub struct Injector<T>(mpsc::Sender<T>);

impl<T> Clone for Injector<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Send> Injector<T> {
    /// Adds `item` after what was received so far; `false` once the intake has stopped.
    pub async fn inject(&self, item: T) -> bool {
        self.0.send(item).await.is_ok()
    }
}

/// A durable intake, to add to a node with [`NodeBuilder::intake`](crate::NodeBuilder::intake).
#[must_use]
pub struct Intake<T> {
    pub(crate) topics: Vec<String>,
    pub(crate) suffix: String,
    pub(crate) share: Option<String>,
    pub(crate) batch: usize,
    pub(crate) batch_wait: Duration,
    pub(crate) receive_maximum: Option<u16>,
    pub(crate) decode: DecodeFn<T>,
    pub(crate) commit: Box<dyn Commit<T>>,
    pub(crate) stats: Arc<IntakeStats>,
    pub(crate) injected: (mpsc::Sender<T>, mpsc::Receiver<T>),
}

impl<T> std::fmt::Debug for Intake<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("topics", &self.topics)
            .field("suffix", &self.suffix)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Intake<T> {
    /// An intake that decodes each message with `decode` and commits with `commit`; one
    /// message per batch until [`Intake::batch`] says otherwise.
    pub fn new<D, C>(decode: D, commit: C) -> Self
    where
        D: Fn(&str, &[u8]) -> Decoded<T> + Send + Sync + 'static,
        C: Commit<T>,
    {
        Self {
            topics: Vec::new(),
            suffix: "intake".into(),
            share: None,
            batch: 1,
            batch_wait: Duration::ZERO,
            receive_maximum: None,
            decode: Box::new(decode),
            commit: Box::new(commit),
            stats: Arc::default(),
            injected: mpsc::channel(64),
        }
    }

    /// Subscribes `topic` (a name under the node's prefix, or a filter) at QoS 1.
    pub fn subscribe(mut self, topic: &str) -> Self {
        self.topics.push(topic.to_owned());
        self
    }

    /// The session's client id is `<node>-<suffix>` (default `intake`). It names the
    /// session the broker keeps: change it and the messages queued for the old one stay
    /// there.
    pub fn client_suffix(mut self, suffix: &str) -> Self {
        self.suffix = suffix.to_owned();
        self
    }

    /// Shares the intake's topics with the other intakes of the same `group` (an MQTT 5
    /// shared subscription, `$share/<group>/<filter>`): the broker hands each message to
    /// one of them, so several instances of a node divide one stream between them. Each
    /// instance keeps its own session (its own name): the broker goes on queueing a share
    /// for an instance that is away, which gets it when it comes back. The group is named
    /// as a node is ([`is_valid_name`](crate::topics::is_valid_name)); another name makes
    /// the intake refuse to start.
    ///
    /// The commit must then be idempotent across instances too (datad keys each reading),
    /// and what one instance counts (gaps in a sender's `seq`, say) covers only its share:
    /// count from what is stored. In the module's example, two `logger` processes named
    /// `logger-1` and `logger-2` split `meas` with `.subscribe("meas").shared("loggers")`.
    pub fn shared(mut self, group: &str) -> Self {
        self.share = Some(group.to_owned());
        self
    }

    /// Commits up to `max` items at once, waiting at most `wait` for a batch to fill.
    pub fn batch(mut self, max: usize, wait: Duration) -> Self {
        self.batch = max.max(1);
        self.batch_wait = wait;
        self
    }

    /// QoS 1 messages the broker may have in flight towards the intake. The default holds
    /// four batches and at least 1,000: a batch being committed, one waiting, one filling,
    /// and as much again, so the broker never waits for acknowledgements during a commit.
    pub fn receive_maximum(mut self, n: u16) -> Self {
        self.receive_maximum = Some(n);
        self
    }

    /// The intake's counters, to read while it runs.
    pub fn stats(&self) -> Arc<IntakeStats> {
        self.stats.clone()
    }

    /// A handle that puts items into the stream from elsewhere in the node.
    pub fn injector(&self) -> Injector<T> {
        Injector(self.injected.0.clone())
    }

    /// The receive maximum the session asks for.
    pub(crate) fn in_flight(&self) -> u16 {
        self.receive_maximum.unwrap_or_else(|| {
            u16::try_from(self.batch.saturating_mul(4).max(1000)).unwrap_or(u16::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl Commit<u8> for Nothing {
        fn commit<'a>(
            &'a mut self,
            _: &'a [u8],
            _: &'a Context,
        ) -> BoxFuture<'a, Result<(), CommitError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn the_in_flight_window_covers_four_batches() {
        let intake =
            |n| Intake::new(|_: &str, _: &[u8]| Decoded::Skip, Nothing).batch(n, Duration::ZERO);
        assert_eq!(intake(10).in_flight(), 1000);
        assert_eq!(intake(1000).in_flight(), 4000);
        assert_eq!(intake(100_000).in_flight(), u16::MAX);
        assert_eq!(intake(10).receive_maximum(20).in_flight(), 20);
    }

    #[test]
    fn set_aside_messages_are_counted_and_the_last_hundred_kept() {
        let stats = IntakeStats::default();
        for i in 0..(REMEMBERED + 5) {
            stats.set_aside("n", "meas", format!("{i}").as_bytes(), "bad".into());
        }
        assert_eq!(stats.counters().set_aside, (REMEMBERED + 5) as u64);
        let recent = stats.recently_set_aside();
        assert_eq!(recent.len(), REMEMBERED);
        assert_eq!(recent[0].excerpt, "5");
    }
}
