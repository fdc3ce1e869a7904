//! The transport under the node runtime: MQTT, or an in-memory bus.
//!
//! A transport owns reconnection and resubscription: nodes only see [`Event`]s. A second
//! MQTT client library fits by implementing [`Transport`] and [`Publisher`].

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

mod memory;
mod mqtt;
#[cfg(feature = "paho")]
mod paho;
pub mod probe;
mod tls;
mod wire;

pub use memory::MemoryBus;
pub use mqtt::MqttTransport;
#[cfg(feature = "paho")]
pub use paho::PahoTransport;

/// A boxed future, so the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// MQTT quality of service levels used by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QoS {
    /// At most once: control traffic (`system`, `request`, `reply`).
    AtMostOnce,
    /// At least once: announcements and data.
    AtLeastOnce,
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Full topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// Quality of service.
    pub qos: QoS,
    /// Whether the broker keeps it for later subscribers.
    pub retain: bool,
}

/// One topic filter to subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// MQTT topic filter.
    pub filter: String,
    /// Highest QoS to receive at.
    pub qos: QoS,
    /// Do not receive this connection's own messages (MQTT 5 "no local").
    pub no_local: bool,
}

impl Subscription {
    /// A filter at `qos` that also receives this connection's own messages.
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        Self {
            filter: filter.into(),
            qos,
            no_local: false,
        }
    }

    /// Skips this connection's own messages.
    #[must_use]
    pub fn no_local(mut self) -> Self {
        self.no_local = true;
        self
    }
}

/// What a connection asks of the broker.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// MQTT client id.
    pub client_id: String,
    /// Topic filters to subscribe, all in one SUBSCRIBE.
    pub subscriptions: Vec<Subscription>,
    /// The last will, published by the broker if the connection is lost.
    pub will: Option<Outgoing>,
    /// Start without a stored session. `false` keeps the session (subscriptions and
    /// queued QoS 1 messages) on the broker while the client is away.
    pub clean_session: bool,
    /// Acknowledge QoS 1 messages only when [`Ack::ack`] is called (e.g. after a commit),
    /// instead of on receipt.
    pub manual_acks: bool,
    /// QoS 1 messages the broker may have in flight towards this connection (MQTT 5
    /// receive maximum); `None` for the transport's default (1,000). A sink that
    /// acknowledges after a commit needs room for what it holds unacknowledged: the batch
    /// being written and the one filling.
    pub receive_maximum: Option<u16>,
    /// Log in as this user instead of the configured one, with the configured password: in
    /// the addressed layout every connection logs in under the name its topics carry (a
    /// node's name; `<name>-<suffix>` for an intake's session).
    pub login: Option<String>,
    /// Messages that go to the node ahead of those waiting for it (a node's `ping`), so
    /// that a flood queued in front of them does not delay them. A transport that reads
    /// ahead of a node that is behind honours it; one that does not may ignore it.
    pub priority: Option<Priority>,
    /// Messages taken on the transport's own task as soon as they are read, instead of
    /// being queued for the node (the replies a caller waits for). A transport may ignore
    /// it: the messages then come as events.
    pub direct: Option<Direct>,
}

impl SessionSpec {
    /// A clean session for `client_id` with these subscriptions: no will, acknowledged on
    /// receipt, the transport's receive maximum. Change the rest with struct update syntax:
    ///
    /// ```
    /// use mqttcal_core::transport::{QoS, SessionSpec, Subscription};
    /// let sink = SessionSpec {
    ///     clean_session: false,
    ///     manual_acks: true,
    ///     ..SessionSpec::new("sink", vec![Subscription::new("meas", QoS::AtLeastOnce)])
    /// };
    /// assert!(sink.will.is_none());
    /// ```
    pub fn new(client_id: impl Into<String>, subscriptions: Vec<Subscription>) -> Self {
        Self {
            client_id: client_id.into(),
            subscriptions,
            will: None,
            clean_session: true,
            manual_acks: false,
            receive_maximum: None,
            login: None,
            priority: None,
            direct: None,
        }
    }
}

/// Picks the messages that overtake those waiting for the node: see
/// [`SessionSpec::priority`]. It runs on every message read, so it must be cheap.
///
/// ```
/// use mqttcal_core::transport::Priority;
/// let pings = Priority::new(|topic, payload| {
///     topic == "request" && payload.windows(6).any(|w| w == b"\"ping\"")
/// });
/// assert!(pings.matches("request", br#"{"request":"ping"}"#));
/// assert!(!pings.matches("meas", br#"{"request":"ping"}"#));
/// ```
#[derive(Clone)]
pub struct Priority(Arc<PriorityFn>);

/// The test of a [`Priority`]: topic and payload in, whether it goes first out.
type PriorityFn = dyn Fn(&str, &[u8]) -> bool + Send + Sync;

impl Priority {
    /// A priority for the messages for which `f(topic, payload)` is `true`.
    pub fn new(f: impl Fn(&str, &[u8]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Whether the message on `topic` goes first.
    pub fn matches(&self, topic: &str, payload: &[u8]) -> bool {
        (self.0)(topic, payload)
    }
}

impl std::fmt::Debug for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Priority")
    }
}

/// Takes messages as they are read: see [`SessionSpec::direct`]. The transport offers it a
/// message only while nothing waits for the node (so nothing is overtaken but what the node
/// has already been handed), and never one that the node must acknowledge itself
/// ([`SessionSpec::manual_acks`]). It runs on the connection's reading task: it must be
/// quick and must not block.
///
/// ```
/// use mqttcal_core::transport::Direct;
/// let replies = Direct::new(|topic, _payload| topic == "reply");
/// assert!(replies.take("reply", b"{}"));
/// assert!(!replies.take("request", b"{}"));
/// ```
#[derive(Clone)]
pub struct Direct(Arc<DirectFn>);

/// The body of a [`Direct`]: topic and payload in, whether it took the message out.
type DirectFn = dyn Fn(&str, &[u8]) -> bool + Send + Sync;

impl Direct {
    /// Takes the messages for which `f(topic, payload)` returns `true` (having handled
    /// them); the others go to the node as events.
    pub fn new(f: impl Fn(&str, &[u8]) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Offers a message; `true` if it was taken.
    pub fn take(&self, topic: &str, payload: &[u8]) -> bool {
        (self.0)(topic, payload)
    }
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct")
    }
}

/// The acknowledgement of one received QoS 1 message (with [`SessionSpec::manual_acks`]).
///
/// Acknowledge in the order the messages arrived. An `Ack` does not outlive its
/// connection: after a reconnection [`Ack::ack`] does nothing and returns `false`, and the
/// broker delivers the message again.
pub struct Ack(Box<dyn FnOnce() -> bool + Send>);

impl Ack {
    /// An acknowledgement that runs `f`.
    pub fn new(f: impl FnOnce() -> bool + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Acknowledges the message; `false` if its connection is gone.
    pub fn ack(self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// What a connection reports to its node.
#[derive(Debug)]
pub enum Event {
    /// Connected and subscribed (after the SUBACK). Sent again after every reconnection.
    Ready {
        /// `true` after a reconnection.
        reconnected: bool,
    },
    /// A message arrived.
    Message {
        /// Full topic name.
        topic: String,
        /// Payload bytes.
        payload: Bytes,
        /// With manual acknowledgements, the acknowledgement of a QoS 1 message.
        ack: Option<Ack>,
    },
    /// The connection was lost; the transport is reconnecting.
    Down {
        /// Why.
        reason: String,
    },
}

/// An open connection: a handle to publish, and the events.
#[derive(Debug)]
pub struct Link {
    /// Publishes messages; cheap to clone.
    pub publisher: Arc<dyn Publisher>,
    /// Messages and connection changes, in order (but for [`SessionSpec::priority`]).
    pub events: Events,
}

/// The events of a [`Link`]: in the order they happened, except that messages picked by
/// [`SessionSpec::priority`] overtake the others waiting. After one that overtook, one
/// that waited comes next, so a flood of priority messages cannot starve the rest.
#[derive(Debug)]
pub struct Events {
    ordered: mpsc::Receiver<Event>,
    first: Option<mpsc::Receiver<Event>>,
    took_first: bool,
    /// The bytes of the messages waiting in the channels, when the sender bounds them.
    budget: Option<Arc<Budget>>,
}

/// The bytes of the messages a transport has handed over and the node not yet taken: a
/// count bound alone would let a thousand messages of 16 MiB wait in memory.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    bytes: std::sync::atomic::AtomicUsize,
    room: tokio::sync::Notify,
}

impl Budget {
    /// Bytes waiting for the node at most (one larger message is let through alone).
    pub(crate) const LIMIT: usize = 8 << 20;

    /// Counts a message handed over.
    pub(crate) fn handed(&self, event: &Event) {
        self.bytes
            .fetch_add(event_size(event), std::sync::atomic::Ordering::AcqRel);
    }

    /// Counts a message the node took (or that was not handed over after all).
    pub(crate) fn taken(&self, event: &Event) {
        let size = event_size(event);
        let before = self
            .bytes
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |n| Some(n.saturating_sub(size)),
            )
            .unwrap_or(0);
        if before >= Self::LIMIT && before.saturating_sub(size) < Self::LIMIT {
            self.room.notify_waiters();
        }
    }

    /// Whether the node has its fill of bytes waiting.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes.load(std::sync::atomic::Ordering::Acquire) >= Self::LIMIT
    }

    /// Returns once the node has room for more bytes.
    pub(crate) async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }
}

/// What a message costs in memory while it waits: its topic, its payload and some 64
/// bytes of bookkeeping; other events nothing.
pub(crate) fn event_size(event: &Event) -> usize {
    match event {
        Event::Message { topic, payload, .. } => 64 + topic.len() + payload.len(),
        _ => 0,
    }
}

impl Events {
    /// Events from one channel, in order.
    pub fn new(ordered: mpsc::Receiver<Event>) -> Self {
        Self {
            ordered,
            first: None,
            took_first: false,
            budget: None,
        }
    }

    /// Events from `ordered`, with those of `first` ahead of them.
    pub fn with_first(ordered: mpsc::Receiver<Event>, first: mpsc::Receiver<Event>) -> Self {
        Self {
            ordered,
            first: Some(first),
            took_first: false,
            budget: None,
        }
    }

    /// These events, their bytes counted in `budget` by the sender.
    pub(crate) fn with_budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    fn took(&self, event: Option<Event>) -> Option<Event> {
        if let (Some(b), Some(e)) = (&self.budget, &event) {
            b.taken(e);
        }
        event
    }

    /// The next event; `None` once the connection's session has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.next().await;
        self.took(event)
    }

    async fn next(&mut self) -> Option<Event> {
        let Some(first) = self.first.as_mut() else {
            return self.ordered.recv().await;
        };
        if std::mem::take(&mut self.took_first) {
            if let Ok(ev) = self.ordered.try_recv() {
                return Some(ev);
            }
        }
        tokio::select! {
            biased;
            Some(ev) = first.recv() => {
                self.took_first = true;
                Some(ev)
            }
            ev = self.ordered.recv() => ev,
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        let event = self.try_next();
        if let (Some(b), Ok(e)) = (&self.budget, &event) {
            b.taken(e);
        }
        event
    }

    fn try_next(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        let Some(first) = self.first.as_mut() else {
            return self.ordered.try_recv();
        };
        if std::mem::take(&mut self.took_first) {
            if let Ok(ev) = self.ordered.try_recv() {
                return Ok(ev);
            }
        }
        if let Ok(ev) = first.try_recv() {
            self.took_first = true;
            return Ok(ev);
        }
        self.ordered.try_recv()
    }
}

/// Connects nodes to a message bus.
pub trait Transport: Send + Sync + Debug {
    /// Connects, subscribes, and resolves once the subscriptions are acknowledged.
    fn connect(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Link, TransportError>>;

    /// A short description of where this transport connects, for messages.
    fn describe(&self) -> String;
}

/// Publishes on an open connection.
pub trait Publisher: Send + Sync + Debug {
    /// Queues a message for sending.
    fn publish(&self, msg: Outgoing) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Queues a message for sending if that needs no waiting; gives it back otherwise. The
    /// default never queues: every message then takes [`Publisher::publish`]'s path.
    fn try_publish(&self, msg: Outgoing) -> Result<(), TryPublishError> {
        Err(TryPublishError::Full(msg))
    }

    /// Queues a message ahead of those waiting to be sent, if that needs no waiting: the
    /// replies to the built-ins (`ping`, `map`), which must not wait behind a flood of
    /// other replies. The default queues it like [`Publisher::try_publish`].
    fn publish_first(&self, msg: Outgoing) -> Result<(), TryPublishError> {
        self.try_publish(msg)
    }

    /// Resolves once the broker has acknowledged every QoS 1 message that this publisher
    /// queued before the call (across reconnections: messages a broken connection left
    /// unacknowledged go again), with those among them that it refused (a PUBACK reason
    /// code of 0x80 or above, e.g. an ACL that denies the topic) or that could not be sent
    /// at all (larger than the broker takes), each with the reason; messages taken with no
    /// subscriber to receive them count as taken. Fails if the connection closed for good
    /// first. Refused messages are kept for a confirmation from the first call on: call it
    /// once before publishing to hear of every refusal (before that they are only counted,
    /// see [`Publisher::refused`]). The default fails: a transport that cannot tell says so.
    ///
    /// A node gets this through its outbox ([`NodeBuilder::outbox`](crate::NodeBuilder::outbox),
    /// [`crate::outbox`]), which forgets what it kept only after it; call it directly when
    /// writing a client or a transport of your own.
    fn confirmed(&self) -> BoxFuture<'_, Result<Vec<Refused>, TransportError>> {
        Box::pin(async {
            Err(TransportError::Config {
                problem: "this transport cannot tell when the broker has taken a message, which an outbox needs".into(),
                source: None,
            })
        })
    }

    /// QoS 1 messages the broker refused, or that could not be sent at all, since the
    /// session started (each also logged at the first and then at each power of two). Until
    /// [`Publisher::confirmed`] is first called they are only counted, not kept. The
    /// default is 0: a transport that cannot tell.
    fn refused(&self) -> u64 {
        0
    }

    /// Sends what is queued, then disconnects cleanly (so the last will is not published).
    fn disconnect(&self) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// A QoS 1 message the broker did not take: see [`Publisher::confirmed`].
#[derive(Debug, Clone)]
pub struct Refused {
    /// The message.
    pub message: Outgoing,
    /// Why, e.g. "refused by the broker: not authorized (0x87)".
    pub reason: String,
}

/// Why [`Publisher::try_publish`] did not queue a message.
#[derive(Debug)]
pub enum TryPublishError {
    /// The queue is full (or the transport queues only by waiting): here is the message.
    Full(Outgoing),
    /// The connection is closed for good.
    Closed,
}

/// The cause of a transport failure; shared, so the error stays `Clone`.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A transport failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The broker refused the user name or password.
    #[error("the broker at {url} refused the connection: bad user name or password")]
    BadCredentials {
        /// The broker.
        url: String,
    },
    /// The broker refused the client.
    #[error(
        "the broker at {url} refused the connection: not authorized (wrong user name or password?)"
    )]
    NotAuthorized {
        /// The broker.
        url: String,
    },
    /// TLS failed, e.g. a certificate that is not trusted.
    #[error("TLS with the broker at {url} failed: {reason}")]
    Tls {
        /// The broker.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The broker could not be reached in time.
    #[error("cannot reach the broker at {url}")]
    Unreachable {
        /// The broker.
        url: String,
        /// The last error seen.
        #[source]
        source: SharedError,
    },
    /// A configuration problem (certificate files, options).
    #[error("bad connection settings: {problem}")]
    Config {
        /// What is wrong, e.g. which file could not be read.
        problem: String,
        /// Why, when something failed underneath (a file, a parser).
        #[source]
        source: Option<SharedError>,
    },
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Event {
        Event::Message {
            topic: "t".into(),
            payload: vec![n].into(),
            ack: None,
        }
    }

    fn number(ev: Option<Event>) -> u8 {
        match ev {
            Some(Event::Message { payload, .. }) => payload[0],
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn events_that_go_first_alternate_with_those_that_waited() {
        let (ordered_tx, ordered) = mpsc::channel(8);
        let (first_tx, first) = mpsc::channel(8);
        let mut events = Events::with_first(ordered, first);
        for n in [1, 2, 3] {
            ordered_tx.send(message(n)).await.unwrap();
        }
        for n in [11, 12] {
            first_tx.send(message(n)).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(number(events.recv().await));
        }
        got.push(number(events.try_recv().ok()));
        assert_eq!(got, [11, 1, 12, 2, 3]);
        drop(ordered_tx);
        first_tx.send(message(13)).await.unwrap();
        assert_eq!(
            number(events.recv().await),
            13,
            "one waiting first is not lost"
        );
        drop(first_tx);
        assert!(events.recv().await.is_none());
    }
}
