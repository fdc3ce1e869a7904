//! Our MQTT 5 client: rumqttc's codec (`mqttbytes`) under our own I/O.
//!
//! Each connection has a reading task and a writing task, so neither ever waits for the
//! other:
//! - the writer sends everything that is ready in one write (one syscall for a batch of
//!   replies, not one per message), answers acknowledgements, and pings when idle;
//! - the reader hands messages to the node, but not while the node's outgoing queue is
//!   over a bound (unless the writer waits for acknowledgements, which only the reader can
//!   bring). Meanwhile it reads ahead into a bounded queue, from which the messages the
//!   node wants first (its `ping`) overtake the rest; once that queue is full it stops
//!   reading, and TCP leaves the flood queued at the broker instead of in the node's
//!   memory. The writer meanwhile keeps pinging, so the broker keeps the connection.
//!
//! A session outlives its connections: it reconnects with backoff, subscribes again and
//! sends again the QoS 1 messages the broker had not acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Filter;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    BoxFuture, Direct, Event, Outgoing, Priority, Publisher, TransportError, TryPublishError,
};

mod flight;
mod handshake;
mod held;
mod outlet;
mod reader;
mod writer;

pub(super) use handshake::{Hello, ATTEMPT};

/// Where the first connection's outcome goes; taken when it is known.
type ReadySlot = Arc<std::sync::Mutex<Option<oneshot::Sender<Result<(), TransportError>>>>>;

/// What the reader (and the application's acknowledgements) ask of the writer. Each
/// carries its connection's generation: what comes from a broken connection is ignored.
#[derive(Debug)]
enum Control {
    /// Acknowledge a received QoS 1 message (a manual acknowledgement).
    Ack { generation: u64, pkid: u16 },
    /// Acknowledge received QoS 1 messages (the reader's automatic acknowledgements, when
    /// it could not write them itself; counted as queued in the outlet).
    Acks { generation: u64, pkids: Vec<u16> },
    /// The broker acknowledged one of ours while the writer waits for room in the window.
    Room,
    /// The broker answered our PINGREQ.
    Pong { generation: u64 },
}

/// What the application queues for the writer, in order.
#[derive(Debug)]
enum Request {
    Publish(Outgoing),
    /// Fire once the broker has acknowledged every QoS 1 message queued before this (not
    /// counted as queued: it writes nothing).
    Confirm(oneshot::Sender<flight::Refusals>),
    /// Send what is queued before this, then DISCONNECT.
    Disconnect,
}

/// Messages that may wait in the ordinary queue.
const QUEUE: usize = 4096;
/// Over this many queued messages the reader stops reading (some 256 kB of replies)...
const HIGH: usize = QUEUE / 8;
/// ...until the writer has brought the queue down to this.
const LOW: usize = QUEUE / 32;
/// How many messages may wait to be sent first; past it they take the ordinary queue.
const FIRST_QUEUE: usize = 256;
/// Events waiting for the node.
const EVENTS: usize = 1024;
/// Events that go first (see `SessionSpec::priority`) waiting for the node.
const FIRST_EVENTS: usize = 64;

/// The writer's queue as the reader sees it, to stop reading while it is long.
#[derive(Debug, Default)]
struct Backlog {
    queued: AtomicUsize,
    /// The writer waits for the broker's acknowledgements: reading must go on.
    awaiting_acks: AtomicBool,
    /// The reader has stopped reading, because its held queue is full (so a missing ping
    /// answer proves nothing).
    paused: AtomicBool,
    /// Writes completed so far.
    writes: AtomicU64,
    room: Notify,
}

/// How long the reader stays paused while the writer completes no write at all.
const STUCK: Duration = Duration::from_millis(100);

impl Backlog {
    fn added(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    fn removed(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Wakes the reader when the queue is short again, or when the writer needs acks.
    fn wake_if_room(&self) {
        if self.queued.load(Ordering::Acquire) <= LOW || self.awaiting_acks.load(Ordering::Acquire)
        {
            self.room.notify_waiters();
        }
    }

    fn set_awaiting_acks(&self, waiting: bool) {
        if self.awaiting_acks.swap(waiting, Ordering::AcqRel) != waiting && waiting {
            self.room.notify_waiters();
        }
    }

    /// Whether the reader has stopped reading.
    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Whether the queue is too long for the node to be given more messages: over
    /// [`HIGH`], and the writer is not waiting for acknowledgements.
    fn is_over(&self) -> bool {
        self.queued.load(Ordering::Acquire) > HIGH && !self.awaiting_acks.load(Ordering::Acquire)
    }

    /// Counts a completed write.
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns once the node may be given messages again: the queue is short, the writer
    /// waits for acknowledgements, or the writer has not moved for [`STUCK`]. A broker that
    /// stops reading from us while its own writes to us wait (rumqttd serves a connection
    /// in one task) would otherwise wait for us as we wait for it.
    async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_over() {
                return;
            }
            let writes = self.writes.load(Ordering::Acquire);
            if tokio::time::timeout(STUCK, notified).await.is_err()
                && self.writes.load(Ordering::Acquire) == writes
            {
                return;
            }
        }
    }
}

/// Everything a session keeps across its connections.
struct Session {
    hello: Hello,
    filters: Vec<Filter>,
    keep_alive: Duration,
    manual_acks: bool,
    connect_timeout: Duration,
    events: mpsc::Sender<Event>,
    /// The messages that go to the node first, and their channel.
    priority: Option<(Priority, mpsc::Sender<Event>)>,
    /// The messages taken as soon as they are read.
    direct: Option<Direct>,
    /// Messages read and not yet taken by the node.
    held: held::SharedHeld,
    /// The bytes handed to the node and not yet taken.
    budget: Arc<super::Budget>,
    out: mpsc::Receiver<Request>,
    first: mpsc::Receiver<Outgoing>,
    control: mpsc::UnboundedReceiver<Control>,
    control_tx: mpsc::UnboundedSender<Control>,
    backlog: Arc<Backlog>,
    ready: ReadySlot,
    shutdown: watch::Receiver<bool>,
    /// The current connection's generation, also read by manual acknowledgements.
    current: Arc<AtomicU64>,
    generation: u64,
    /// What the writer shares with the publishers and the reader: the socket while the
    /// writer is idle, our QoS 1 messages in flight.
    outlet: Arc<outlet::Outlet>,
    /// QoS 1 messages taken from the queues while the in-flight window was full.
    blocked: VecDeque<Outgoing>,
    /// The application dropped its publisher: nothing more to send (reading goes on).
    out_closed: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Nothing more will be acknowledged: confirmations waiting fail.
        self.outlet.lock().flight.ended();
    }
}

/// How a connection ended.
enum Outcome {
    /// Our DISCONNECT is out.
    Disconnected,
    /// The application dropped its events: the session ends without DISCONNECT.
    Gone,
    /// The connection broke.
    Lost(reader::Ended),
}

/// Opens a session; resolves once the first connection is subscribed.
pub(super) async fn open(
    hello: Hello,
    filters: Vec<Filter>,
    keep_alive: Duration,
    manual_acks: bool,
    connect_timeout: Duration,
    priority: Option<Priority>,
    direct: Option<Direct>,
) -> Result<super::Link, TransportError> {
    let (events, events_rx) = mpsc::channel(EVENTS);
    let (priority, events_rx) = match priority {
        Some(p) => {
            let (tx, rx) = mpsc::channel(FIRST_EVENTS);
            (Some((p, tx)), super::Events::with_first(events_rx, rx))
        }
        None => (None, super::Events::new(events_rx)),
    };
    let budget = Arc::new(super::Budget::default());
    let events_rx = events_rx.with_budget(budget.clone());
    let (out_tx, out) = mpsc::channel(QUEUE);
    let (first_tx, first) = mpsc::channel(FIRST_QUEUE);
    let (control_tx, control) = mpsc::unbounded_channel();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (ready_tx, ready_rx) = oneshot::channel();
    let backlog = Arc::new(Backlog::default());
    let outlet = Arc::new(outlet::Outlet::default());
    let url = hello.url.clone();
    let session_attempt = hello.attempt;
    let session = Session {
        hello,
        filters,
        keep_alive,
        manual_acks,
        connect_timeout,
        events,
        priority,
        direct,
        held: Default::default(),
        budget,
        out,
        first,
        control,
        control_tx,
        backlog: backlog.clone(),
        ready: Arc::new(std::sync::Mutex::new(Some(ready_tx))),
        shutdown,
        current: Arc::new(AtomicU64::new(0)),
        generation: 0,
        outlet: outlet.clone(),
        blocked: VecDeque::new(),
        out_closed: false,
    };
    let task = tokio::spawn(session.run());
    // One attempt may begin just before the deadline; a broker that never acknowledges
    // the subscriptions must not hold `connect` for ever.
    let ready = tokio::time::timeout(connect_timeout + session_attempt, ready_rx).await;
    let Ok(ready) = ready else {
        task.abort();
        return Err(TransportError::Unreachable {
            url,
            source: Arc::new(std::io::Error::other(
                "the broker did not acknowledge the subscriptions in time",
            )),
        });
    };
    match ready {
        Ok(Ok(())) => Ok(super::Link {
            publisher: Arc::new(WirePublisher {
                out: out_tx,
                first: first_tx,
                backlog,
                outlet,
                shutdown: shutdown_tx,
                task: tokio::sync::Mutex::new(Some(task)),
            }),
            events: events_rx,
        }),
        Ok(Err(e)) => {
            task.abort();
            Err(e)
        }
        Err(_) => Err(TransportError::Closed),
    }
}

/// Resolves once [`Publisher::disconnect`] is called; never if the publisher is dropped
/// without it (a link may be kept for its events alone).
async fn asked_to_stop(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A connection the broker closes sooner than this after it opened counts as a flap...
const FLAP: Duration = Duration::from_secs(5);
/// ...and this many in a row as a client id shared with another session.
const FLAPS: u32 = 3;

/// How long a session taken over by another connection waits before it logs in again.
const TAKEN_OVER_PAUSE: Duration = Duration::from_secs(5);

/// How long a disconnect waits for what is queued to be sent before it sends DISCONNECT
/// anyway.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long a clean disconnect waits for the broker to close the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

impl Session {
    async fn run(mut self) {
        let deadline = Instant::now() + self.connect_timeout;
        let mut backoff = Duration::from_millis(50);
        // Connections in a row that the broker closed soon after they opened.
        let mut flaps = 0u32;
        loop {
            let opened = tokio::select! {
                r = handshake::open(&self.hello) => r,
                () = asked_to_stop(&mut self.shutdown) => return,
                () = self.events.closed() => return,
            };
            let outcome = match opened {
                Ok(opened) => {
                    let since = Instant::now();
                    match self.serve(opened).await {
                        Outcome::Disconnected | Outcome::Gone => return,
                        Outcome::Lost(ended) => {
                            // A connection that lived starts the backoff afresh; one the
                            // broker ends at once (a bad packet, an administrative
                            // DISCONNECT) lets it grow, so nothing reconnects in a loop.
                            let short = since.elapsed() < FLAP;
                            if !short {
                                backoff = Duration::from_millis(50);
                            }
                            let flapped = short && ended.by == reader::EndedBy::Broker;
                            flaps = if flapped { flaps + 1 } else { 0 };
                            Some(ended)
                        }
                    }
                }
                Err(failure) => {
                    // A broker that went away is not a rival session.
                    flaps = 0;
                    if let Some(ready) = self.take_ready() {
                        if failure.fatal || Instant::now() >= deadline {
                            let _ = ready.send(Err(failure.error));
                            return;
                        }
                        self.put_ready(ready);
                    } else if failure.fatal {
                        tracing::error!("{}; retrying", failure.error);
                    }
                    None
                }
            };
            if let Some(reader::Ended { mut reason, by }) = outcome {
                if by == reader::EndedBy::TakeOver || flaps >= FLAPS {
                    // Two sessions with one client id take it from each other in turn:
                    // say so loudly, and give the other one room.
                    if by != reader::EndedBy::TakeOver {
                        reason = format!("the broker closed {flaps} connections in a row soon after they opened: a second node of the same name is running? Stop one of them, or give one another name (`--name`)");
                    }
                    tracing::error!(broker = %self.hello.url, client = %self.hello.connect.client_id, "{reason}; retrying in {}s", TAKEN_OVER_PAUSE.as_secs());
                    backoff = TAKEN_OVER_PAUSE;
                    flaps = 0;
                }
                if self.is_ready_pending() {
                    if Instant::now() >= deadline {
                        if let Some(ready) = self.take_ready() {
                            let _ = ready.send(Err(TransportError::Unreachable {
                                url: self.hello.url.clone(),
                                source: Arc::new(std::io::Error::other(reason)),
                            }));
                        }
                        return;
                    }
                } else {
                    tracing::warn!(broker = %self.hello.url, "connection lost: {reason}");
                    if !self.hand_over_held().await {
                        return;
                    }
                    tokio::select! {
                        sent = self.events.send(Event::Down { reason }) => if sent.is_err() { return },
                        () = asked_to_stop(&mut self.shutdown) => return,
                    }
                }
            }
            let mut pause = backoff;
            if self.is_ready_pending() {
                // `connect` waits: never past its deadline.
                pause = pause.min(deadline.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                () = asked_to_stop(&mut self.shutdown) => return,
                () = self.events.closed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Hands the node what the lost connection had read for it; `false` if the session
    /// must end (the node is gone, or asked to stop). QoS 1 messages among them were not
    /// acknowledged: a stored session gets them again (at least once).
    async fn hand_over_held(&mut self) -> bool {
        loop {
            let Some((event, _)) = held::lock(&self.held).pop() else {
                return true;
            };
            self.budget.handed(&event);
            tokio::select! {
                sent = self.events.send(event) => if sent.is_err() { return false },
                () = asked_to_stop(&mut self.shutdown) => return false,
            }
        }
    }

    fn take_ready(&self) -> Option<oneshot::Sender<Result<(), TransportError>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put_ready(&self, ready: oneshot::Sender<Result<(), TransportError>>) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(ready);
    }

    fn is_ready_pending(&self) -> bool {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Serves one open connection until it ends.
    async fn serve(&mut self, opened: handshake::Opened) -> Outcome {
        self.generation += 1;
        self.current.store(self.generation, Ordering::Release);
        let (closing_tx, closing) = watch::channel(false);
        let reader = reader::Reader {
            read: opened.read,
            buf: opened.leftover,
            events: self.events.clone(),
            first: self.priority.clone(),
            direct: self.direct.clone(),
            held: self.held.clone(),
            budget: self.budget.clone(),
            control: self.control_tx.clone(),
            ready: self.ready.clone(),
            awaiting_suback: !self.filters.is_empty(),
            manual_acks: self.manual_acks,
            generation: self.generation,
            current: self.current.clone(),
            max_incoming: self.hello.max_incoming,
            early_max: reader::EARLY_MAX
                + usize::from(
                    self.hello
                        .connect
                        .properties
                        .as_ref()
                        .and_then(|p| p.receive_maximum)
                        .unwrap_or(u16::MAX),
                ),
            backlog: self.backlog.clone(),
            outlet: self.outlet.clone(),
            acks: Vec::new(),
            closing,
            url: self.hello.url.clone(),
        };
        let mut link = writer::Wire::new(opened.write, &opened.connack, self.keep_alive);
        self.outlet
            .opened(self.generation, link.tcp(), link.window, link.max_packet);
        let mut reader: JoinHandle<reader::Ended> = tokio::spawn(reader.run());
        let outcome = self.pump(&mut link, &mut reader).await;
        self.generation += 1;
        self.current.store(self.generation, Ordering::Release);
        // Whatever the broker had not acknowledged goes again on the next connection.
        self.outlet.closed(self.generation);
        self.backlog.set_awaiting_acks(false);
        match outcome {
            Outcome::Disconnected => {
                // Read (and drop) what the broker still sends until it closes: closing a
                // socket with unread data resets it, and a broker that has not read our
                // DISCONNECT yet then publishes our will.
                let _ = closing_tx.send(true);
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
                reader.abort();
            }
            _ => reader.abort(),
        }
        outcome
    }
}

/// One message counted as queued (in the backlog and the outlet) until [`Counted::keep`];
/// dropped, it is uncounted.
struct Counted<'a>(Option<(&'a Backlog, &'a outlet::Outlet)>);

impl<'a> Counted<'a> {
    /// Counts in the backlog a message the outlet already counted.
    fn new(backlog: &'a Backlog, outlet: &'a outlet::Outlet) -> Self {
        backlog.added();
        Self(Some((backlog, outlet)))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some((backlog, outlet)) = self.0 {
            backlog.removed();
            outlet.uncount();
        }
    }
}

/// The publishing side of a session.
#[derive(Debug)]
struct WirePublisher {
    out: mpsc::Sender<Request>,
    first: mpsc::Sender<Outgoing>,
    backlog: Arc<Backlog>,
    outlet: Arc<outlet::Outlet>,
    shutdown: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Publisher for WirePublisher {
    fn publish(&self, msg: Outgoing) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let Err(outlet::Queue(msg)) = self.outlet.send_or_count(msg, &self.backlog) else {
                return Ok(());
            };
            // Counted before it can be taken; uncounted if it never is (an error, or the
            // caller gave up waiting and dropped this future).
            let counted = Counted::new(&self.backlog, &self.outlet);
            self.out
                .send(Request::Publish(msg))
                .await
                .map_err(|_| TransportError::Closed)?;
            counted.keep();
            Ok(())
        })
    }

    fn try_publish(&self, msg: Outgoing) -> Result<(), TryPublishError> {
        let Err(outlet::Queue(msg)) = self.outlet.send_or_count(msg, &self.backlog) else {
            return Ok(());
        };
        self.backlog.added();
        self.out.try_send(Request::Publish(msg)).map_err(|e| {
            self.backlog.removed();
            self.outlet.uncount();
            match e {
                mpsc::error::TrySendError::Full(Request::Publish(msg)) => {
                    TryPublishError::Full(msg)
                }
                _ => TryPublishError::Closed,
            }
        })
    }

    fn publish_first(&self, msg: Outgoing) -> Result<(), TryPublishError> {
        let Err(outlet::Queue(msg)) = self.outlet.send_or_count(msg, &self.backlog) else {
            return Ok(());
        };
        self.first.try_send(msg).map_err(|e| {
            self.outlet.uncount();
            match e {
                mpsc::error::TrySendError::Full(msg) => TryPublishError::Full(msg),
                mpsc::error::TrySendError::Closed(_) => TryPublishError::Closed,
            }
        })
    }

    fn confirmed(&self) -> BoxFuture<'_, Result<Vec<super::Refused>, TransportError>> {
        self.outlet.keep_refused();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.out
                .send(Request::Confirm(tx))
                .await
                .map_err(|_| TransportError::Closed)?;
            rx.await.map_err(|_| TransportError::Closed)
        })
    }

    fn refused(&self) -> u64 {
        self.outlet.refused()
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            // While connected the session sends what is queued and then DISCONNECT, or
            // DISCONNECT alone once STOP_GRACE has passed (a broker that acknowledges
            // nothing, a queue that cannot drain); while not connected, it just ends.
            let _ = self.shutdown.send(true);
            self.outlet.count_disconnect();
            if self.out.try_send(Request::Disconnect).is_err() {
                self.outlet.uncount();
            }
            if let Some(mut task) = self.task.lock().await.take() {
                let wait = STOP_GRACE + CLOSE_GRACE + Duration::from_secs(1);
                if tokio::time::timeout(wait, &mut task).await.is_err() {
                    task.abort();
                    return Err(TransportError::Closed);
                }
            }
            Ok(())
        })
    }
}
