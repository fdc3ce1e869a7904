//! The running intake: a receive loop that decodes and batches, and a writer that commits
//! each batch (one written while the next fills) and then acknowledges it in arrival order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Commit, CommitError, DecodeFn, Decoded, Intake, IntakeStats};
use crate::context::Context;
use crate::topics::Topics;
use crate::transport::{
    Ack, BoxFuture, Event, Link, QoS, SessionSpec, Subscription, Transport, TransportError,
};

/// Starts an intake of any item type once the node is connected.
pub(crate) trait Starter: Send {
    /// Connects the intake's session and starts its tasks, acting as the node of `ctx`.
    fn start<'a>(
        self: Box<Self>,
        transport: &'a dyn Transport,
        ctx: Context,
    ) -> BoxFuture<'a, Result<Running, TransportError>>;
}

/// A running intake.
#[derive(Debug)]
pub(crate) struct Running {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Commits and acknowledges what is received, then disconnects; what cannot be
    /// committed now stays with the broker for the next start.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// One received message (or injected item) waiting for its batch to commit.
struct Entry<T> {
    item: Option<T>,
    ack: Option<Ack>,
    /// The full topic, as it came.
    topic: String,
    payload: Bytes,
}

impl<T: Send + Sync + 'static> Starter for Intake<T> {
    fn start<'a>(
        self: Box<Self>,
        transport: &'a dyn Transport,
        ctx: Context,
    ) -> BoxFuture<'a, Result<Running, TransportError>> {
        Box::pin(async move {
            let topics = ctx.shared.topics.clone();
            if let Some(group) = &self.share {
                check_share_group(group)?;
            }
            let subscriptions = self
                .topics
                .iter()
                .flat_map(|t| topics.filters(t, ctx.name()))
                .map(|f| match &self.share {
                    Some(group) => format!("$share/{group}/{f}"),
                    None => f,
                })
                .map(|f| Subscription::new(f, QoS::AtLeastOnce))
                .collect();
            let client_id = format!("{}-{}", ctx.name(), self.suffix);
            let login =
                (topics.layout() == crate::topics::Layout::Addressed).then(|| client_id.clone());
            let link = transport
                .connect(SessionSpec {
                    clean_session: false,
                    manual_acks: true,
                    receive_maximum: Some(self.in_flight()),
                    login,
                    ..SessionSpec::new(client_id, subscriptions)
                })
                .await?;
            let Intake {
                batch,
                batch_wait,
                decode,
                commit,
                stats,
                injected: (_, injected),
                ..
            } = *self;
            let (stop, stop_rx) = watch::channel(false);
            let (to_writer, batches) = mpsc::channel(1);
            let writer_node = ctx.name().to_owned();
            let limit = ctx.shared.limit;
            let writer = Writer {
                topics: topics.clone(),
                commit,
                stats: stats.clone(),
                ctx,
                stop: stop_rx.clone(),
            };
            let writer_task = tokio::spawn(writer.run(batches));
            let receiver = Receiver {
                node: writer_node,
                limit,
                topics,
                decode,
                stats,
                pending: Vec::with_capacity(batch),
                batch,
                batch_wait,
                to_writer,
            };
            let task = tokio::spawn(async move {
                let link = receiver.run(link, injected, stop_rx).await;
                // The writer ends once it has committed (or given up on) what it was sent,
                // and acknowledged it: only then may the connection go.
                let _ = writer_task.await;
                let _ = link.publisher.disconnect().await;
            });
            Ok(Running { task, stop })
        })
    }
}

struct Receiver<T> {
    node: String,
    /// The node's largest message: a larger one is set aside before `decode` sees it.
    limit: usize,
    topics: Topics,
    decode: DecodeFn<T>,
    stats: Arc<IntakeStats>,
    pending: Vec<Entry<T>>,
    batch: usize,
    batch_wait: Duration,
    to_writer: mpsc::Sender<Vec<Entry<T>>>,
}

impl<T: Send + Sync + 'static> Receiver<T> {
    /// Runs until stopped or disconnected for good; returns the link once everything
    /// received is with the writer.
    async fn run(
        mut self,
        mut link: Link,
        mut injected: mpsc::Receiver<T>,
        mut stop: watch::Receiver<bool>,
    ) -> Link {
        let mut deadline = tokio::time::Instant::now() + self.batch_wait;
        loop {
            if self.pending.is_empty() {
                deadline = tokio::time::Instant::now() + self.batch_wait;
            }
            tokio::select! {
                ev = link.events.recv() => match ev {
                    Some(Event::Message { topic, payload, ack }) => self.receive(topic, payload, ack),
                    Some(_) => continue,
                    None => break,
                },
                Some(item) = injected.recv() => {
                    self.stats.add(&self.stats.received, 1);
                    self.pending.push(Entry { item: Some(item), ack: None, topic: String::new(), payload: Bytes::new() });
                }
                _ = tokio::time::sleep_until(deadline), if !self.pending.is_empty() => {
                    self.flush().await;
                    continue;
                }
                _ = stop.changed() => break,
            }
            if self.pending.len() >= self.batch || self.batch_wait.is_zero() {
                self.flush().await;
            }
        }
        self.flush().await;
        link
    }

    fn receive(&mut self, topic: String, payload: Bytes, ack: Option<Ack>) {
        self.stats.add(&self.stats.received, 1);
        let parsed = self.topics.parse(&topic);
        let name = parsed.map_or(topic.as_str(), |t| t.name);
        let decoded = if payload.len() > self.limit {
            Decoded::SetAside(format!(
                "message of {} bytes exceeds the limit of {} bytes",
                payload.len(),
                self.limit
            ))
        } else if let Some(why) = parsed
            .and_then(|t| t.from)
            .and_then(|f| spoofed(f, &payload))
        {
            Decoded::SetAside(why)
        } else {
            (self.decode)(name, &payload)
        };
        let item = match decoded {
            Decoded::Item(t) => Some(t),
            Decoded::Skip => {
                self.stats.add(&self.stats.skipped, 1);
                None
            }
            Decoded::SetAside(reason) => {
                self.stats.set_aside(&self.node, name, &payload, reason);
                None
            }
        };
        self.pending.push(Entry {
            item,
            ack,
            topic,
            payload,
        });
    }

    /// Hands the pending entries to the writer (waiting while it is one batch behind).
    async fn flush(&mut self) {
        if !self.pending.is_empty() {
            let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch));
            let _ = self.to_writer.send(batch).await;
        }
    }
}

struct Writer<T> {
    topics: Topics,
    commit: Box<dyn Commit<T>>,
    stats: Arc<IntakeStats>,
    ctx: Context,
    stop: watch::Receiver<bool>,
}

/// What became of a commit.
enum Outcome {
    Committed,
    Refused(String),
    Stopping,
}

impl<T: Send + Sync + 'static> Writer<T> {
    async fn run(mut self, mut batches: mpsc::Receiver<Vec<Entry<T>>>) {
        while let Some(batch) = batches.recv().await {
            if !self.write(batch).await {
                // Stopping without a commit: nothing more is acknowledged, the broker keeps
                // the messages for the next start.
                return;
            }
        }
    }

    /// Commits the batch's items, then acknowledges every entry in order; false when it
    /// gave up because the node is stopping.
    async fn write(&mut self, mut batch: Vec<Entry<T>>) -> bool {
        let mut slots: Vec<usize> = Vec::new();
        let mut items: Vec<T> = Vec::new();
        for (i, e) in batch.iter_mut().enumerate() {
            if let Some(t) = e.item.take() {
                slots.push(i);
                items.push(t);
            }
        }
        if !items.is_empty() {
            match self.commit_retrying(&items).await {
                Outcome::Committed => self.committed(items.len()),
                Outcome::Stopping => return false,
                Outcome::Refused(_) if items.len() > 1 => {
                    // Find the items that cannot be stored; commit the others one by one.
                    for (k, slot) in slots.iter().enumerate() {
                        match self.commit_retrying(&items[k..=k]).await {
                            Outcome::Committed => self.committed(1),
                            Outcome::Stopping => return false,
                            Outcome::Refused(why) => self.refused(&batch[*slot], why),
                        }
                    }
                }
                Outcome::Refused(why) => self.refused(&batch[slots[0]], why),
            }
        }
        for e in batch {
            if let Some(ack) = e.ack {
                // False when the connection broke since: the broker sends it again.
                ack.ack();
            }
        }
        true
    }

    fn committed(&self, n: usize) {
        self.stats.add(&self.stats.committed, n as u64);
        self.stats.add(&self.stats.batches, 1);
    }

    fn refused(&self, e: &Entry<T>, why: String) {
        let topic = if e.topic.is_empty() {
            "(injected)"
        } else {
            self.topics.strip(&e.topic).unwrap_or(&e.topic)
        };
        self.stats
            .set_aside(self.ctx.name(), topic, &e.payload, why);
    }

    /// Commits `items`, trying again while the failure is worth another try.
    async fn commit_retrying(&mut self, items: &[T]) -> Outcome {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.commit.commit(items, &self.ctx).await {
                Ok(()) => return Outcome::Committed,
                Err(CommitError::Refused(e)) => {
                    return Outcome::Refused(crate::error::error_chain(&*e))
                }
                Err(CommitError::Retry(e)) => {
                    tracing::warn!(
                        node = %self.ctx.name(),
                        "cannot commit {} items ({}); retrying in {backoff:?}",
                        items.len(),
                        crate::error::error_chain(&*e)
                    );
                    self.stats.add(&self.stats.retries, 1);
                    if *self.stop.borrow() {
                        return Outcome::Stopping;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.changed() => return Outcome::Stopping,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// In the addressed layout, why a message is not from the sender its topic names (the
/// broker's ACL vouches for the topic, not for the payload); `None` when it is. Reads only
/// `from`, skipping the rest.
fn spoofed(sender: &str, payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct From<'a> {
        #[serde(borrow)]
        from: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<From<'_>>(payload) {
        Ok(From { from: Some(f) }) if f == sender => None,
        Ok(From { from: Some(f) }) => Some(format!(
            "`from` is `{f}` but the topic's sender is `{sender}`"
        )),
        // Not a message at all: the decoder says why.
        _ => None,
    }
}

/// A shared subscription's group: a topic level (MQTT 5, 4.8.2), named as a node is.
fn check_share_group(group: &str) -> Result<(), TransportError> {
    if !crate::topics::is_valid_name(group) {
        return Err(TransportError::Config {
            problem: format!(
                "the shared subscription group `{}` must be a name of 1 to 256 bytes without `/`, `+`, `#`, `*` or control characters",
                group.escape_debug()
            ),
            source: None,
        });
    }
    Ok(())
}
