//! MQTT 5 through rumqttc: TCP_NODELAY on, TLS, last will, "no local" subscriptions,
//! reconnection with resubscription.
//!
//! MQTT 5 matters here: a node subscribes to `reply` and also publishes its replies there.
//! Under MQTT 3.1.1 the broker echoes each reply back to its sender, an unanswered segment
//! that, on a broker without TCP_NODELAY, holds the next request for a delayed ACK (40 ms).
//! "No local" removes the echo. The maximum packet size we announce lets the broker drop an
//! oversized message for us instead of sending it and forcing a disconnect.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Filter, LastWill, Packet, Publish};
use rumqttc::v5::mqttbytes::{self, v5::SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, ConnectionError, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, TlsConfiguration};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    Ack, BoxFuture, Event, Link, Outgoing, Publisher, QoS, SessionSpec, Transport, TransportError,
};
use crate::config::MqttConfig;

/// Room for the topic and properties around the largest payload.
const PACKET_OVERHEAD: usize = 65_536;

/// MQTT 5 through rumqttc (pure Rust), the default transport.
///
/// ```no_run
/// use mqttcal_core::config::MqttConfig;
/// use mqttcal_core::transport::MqttTransport;
/// let mut cfg = MqttConfig::default();
/// cfg.apply_url("mqtt://127.0.0.1:1883").unwrap();
/// let transport = MqttTransport::new(cfg);
/// ```
#[derive(Debug, Clone)]
pub struct MqttTransport {
    cfg: MqttConfig,
    connect_timeout: Duration,
}

impl MqttTransport {
    /// A transport for the broker in `cfg`.
    pub fn new(cfg: MqttConfig) -> Self {
        Self {
            cfg,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// How long the first connection may take before [`TransportError::Unreachable`];
    /// later losses are retried for ever. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn options(&self, spec: &SessionSpec) -> Result<MqttOptions, TransportError> {
        let cfg = &self.cfg;
        let mut o = MqttOptions::new(spec.client_id.clone(), cfg.hostname.clone(), cfg.port);
        o.set_keep_alive(Duration::from_secs(cfg.keepalive.max(5)));
        o.set_clean_start(spec.clean_session);
        if !spec.clean_session {
            // Keep the session while the client is away (a restart, a broker outage).
            o.set_session_expiry_interval(Some(u32::MAX));
        }
        o.set_manual_acks(spec.manual_acks);
        // At most this many QoS 1 messages in flight towards us. Without it the broker may
        // send everything it has (MQTT 5 default 65,535) and Mosquitto's cost per PUBACK
        // grows with the messages in flight: a sink 30,000 behind was acknowledged at
        // 250 messages/s. The rest waits in the broker's queue for the session.
        o.set_receive_maximum(Some(spec.receive_maximum.unwrap_or(RECEIVE_MAXIMUM).max(1)));
        // And at most this many from us (the broker may ask for fewer). rumqttc keeps a
        // slot per packet id up to this limit: its default, 65,535, costs 14 MB a
        // connection.
        o.set_outgoing_inflight_upper_limit(SEND_MAXIMUM);
        let max = cfg.max_message_size.saturating_add(PACKET_OVERHEAD);
        o.set_max_packet_size(Some(u32::try_from(max).unwrap_or(u32::MAX)));
        o.set_request_channel_capacity(4096);
        o.set_connection_timeout(5);
        match (&spec.login, &cfg.username) {
            (Some(login), Some(user))
                if login != user && !login.starts_with(&format!("{user}-")) =>
            {
                return Err(TransportError::Config {
                    problem: format!(
                        "in the addressed layout a connection logs in under the name its topics carry (`{login}`), but the configured user is `{user}`: give the node its login's name"
                    ),
                    source: None,
                });
            }
            (Some(login), _) => {
                o.set_credentials(login.clone(), cfg.password.clone().unwrap_or_default());
            }
            (None, Some(user)) => {
                o.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
            }
            (None, None) => {}
        }
        if let Some(w) = &spec.will {
            o.set_last_will(LastWill::new(
                w.topic.clone(),
                w.payload.to_vec(),
                qos(w.qos),
                w.retain,
                None,
            ));
        }
        if cfg.uses_tls() {
            let tls = super::tls::client_config(cfg)?;
            o.set_transport(rumqttc::Transport::Tls(TlsConfiguration::Rustls(Arc::new(
                tls,
            ))));
        }
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        Ok(o)
    }

    async fn open(&self, spec: SessionSpec) -> Result<Link, TransportError> {
        let options = self.options(&spec)?;
        let (client, eventloop) = AsyncClient::new(options, 4096);
        let (events, rx) = mpsc::channel(1024);
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = mpsc::channel(FIRST_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver {
            client: client.clone(),
            filters: spec
                .subscriptions
                .iter()
                .map(|s| {
                    let mut f = Filter::new(s.filter.clone(), qos(s.qos));
                    f.nolocal = s.no_local;
                    f
                })
                .collect(),
            events,
            ready: Some(ready_tx),
            url: self.cfg.url(),
            deadline: Instant::now() + self.connect_timeout,
            manual_acks: spec.manual_acks,
            generation: Arc::new(AtomicU64::new(0)),
            acks_tx,
            acks_rx,
            first: first_rx,
            early: Vec::new(),
        };
        let task = tokio::spawn(driver.run(eventloop));
        match ready_rx.await {
            Ok(Ok(())) => Ok(Link {
                publisher: Arc::new(MqttPublisher {
                    client,
                    first: first_tx,
                    task: Mutex::new(Some(task)),
                }),
                events: rx,
            }),
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            Err(_) => Err(TransportError::Closed),
        }
    }
}

impl Transport for MqttTransport {
    fn connect(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Link, TransportError>> {
        Box::pin(self.open(spec))
    }

    fn describe(&self) -> String {
        self.cfg.url()
    }
}

fn qos(q: QoS) -> mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
    }
}

struct Driver {
    client: AsyncClient,
    filters: Vec<Filter>,
    events: mpsc::Sender<Event>,
    ready: Option<oneshot::Sender<Result<(), TransportError>>>,
    url: String,
    deadline: Instant,
    manual_acks: bool,
    /// Incremented at every connection, so an `Ack` from an earlier one does nothing.
    generation: Arc<AtomicU64>,
    /// Acknowledgements from the application: (connection generation, message).
    acks_tx: mpsc::UnboundedSender<(u64, Publish)>,
    acks_rx: mpsc::UnboundedReceiver<(u64, Publish)>,
    /// Messages to send ahead of rumqttc's request queue ([`Publisher::publish_first`]).
    first: mpsc::Receiver<Outgoing>,
    /// Messages that arrived before the connection was complete (at most the receive
    /// maximum of QoS 1 ones), handed over once it is.
    early: Vec<Event>,
}

/// How many messages may wait to be sent first; past it they take the ordinary queue.
const FIRST_QUEUE: usize = 256;

/// Puts `msg` at the front of what the event loop sends next: rumqttc sends its pending
/// requests before those of its request channel.
fn send_first(eventloop: &mut EventLoop, msg: Outgoing) {
    let mut publish = Publish::new(msg.topic, qos(msg.qos), msg.payload, None);
    publish.retain = msg.retain;
    eventloop
        .pending
        .push_back(rumqttc::v5::Request::Publish(publish));
}

/// QoS 1 messages the broker may have in flight towards one connection, by default.
const RECEIVE_MAXIMUM: u16 = 1000;

/// QoS 1 messages a connection keeps in flight towards the broker at most: the production
/// configuration's `max_inflight_messages`.
const SEND_MAXIMUM: u16 = 1000;

impl Driver {
    fn ack_for(&self, publish: &Publish) -> Option<Ack> {
        if !self.manual_acks || publish.qos == mqttbytes::QoS::AtMostOnce {
            return None;
        }
        let acks = self.acks_tx.clone();
        let generation = self.generation.clone();
        let mine = generation.load(Ordering::Acquire);
        let publish = publish.clone();
        Some(Ack::new(move || {
            generation.load(Ordering::Acquire) == mine && acks.send((mine, publish)).is_ok()
        }))
    }

    /// Moves queued acknowledgements of the current connection into rumqttc's request
    /// channel, as many as it takes; the rest waits for the next turn.
    fn feed_acks(&self, queued: &mut VecDeque<(u64, Publish)>) {
        let current = self.generation.load(Ordering::Acquire);
        while let Some((generation, publish)) = queued.pop_front() {
            if generation != current {
                continue; // from a broken connection: the broker sends the message again
            }
            if self.client.try_ack(&publish).is_err() {
                queued.push_front((generation, publish));
                return;
            }
        }
    }

    async fn run(mut self, mut eventloop: EventLoop) {
        let mut connected = false;
        let mut backoff = Duration::from_millis(50);
        // QoS 1 messages not yet acknowledged by the broker when the connection broke.
        let mut outbox: Vec<rumqttc::v5::Request> = Vec::new();
        // Acknowledgements waiting for room in rumqttc's request channel: a sink that
        // acknowledges a whole batch at once must never lose one to a full channel (the
        // broker would wait for it for ever).
        let mut queued_acks: VecDeque<(u64, Publish)> = VecDeque::new();
        loop {
            while let Ok(ack) = self.acks_rx.try_recv() {
                queued_acks.push_back(ack);
            }
            if connected {
                self.feed_acks(&mut queued_acks);
            }
            let polled = if connected {
                tokio::select! {
                    p = eventloop.poll() => p,
                    Some(ack) = self.acks_rx.recv() => {
                        queued_acks.push_back(ack);
                        continue;
                    }
                    Some(msg) = self.first.recv() => {
                        send_first(&mut eventloop, msg);
                        continue;
                    }
                }
            } else {
                eventloop.poll().await
            };
            match polled {
                Ok(rumqttc::v5::Event::Incoming(Packet::ConnAck(_))) => {
                    // rumqttc drops them when the broker has no session for us (it restarted
                    // without persistence, or we connect with a clean session): send them
                    // again, first. A receiver may see one twice (at least once), never none.
                    eventloop.pending.extend(outbox.drain(..));
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    connected = true;
                    backoff = Duration::from_millis(50);
                    if self.filters.is_empty() {
                        self.signal_ready().await;
                    } else if self
                        .client
                        .try_subscribe_many(self.filters.clone())
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(rumqttc::v5::Event::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        tracing::warn!(broker = %self.url, codes = ?ack.return_codes, "the broker refused a subscription");
                    }
                    self.signal_ready().await;
                }
                Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                    let ack = self.ack_for(&p);
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let event = Event::Message {
                        topic,
                        payload: p.payload,
                        ack,
                    };
                    if self.ready.is_some() {
                        // A stored session's messages come before the SUBACK that completes
                        // the connection, and nobody reads `events` yet: keep them here,
                        // or a full channel would hold up that SUBACK for ever.
                        self.early.push(event);
                    } else if !self.hand_over(event, &mut eventloop).await {
                        return;
                    }
                }
                Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                    return read_until_closed(eventloop).await;
                }
                Ok(_) => {}
                Err(e) => {
                    outbox.extend(eventloop.pending.drain(..).filter(|r| match r {
                        rumqttc::v5::Request::Publish(p) => p.qos != mqttbytes::QoS::AtMostOnce,
                        rumqttc::v5::Request::Disconnect => true,
                        _ => false,
                    }));
                    let e = Arc::new(e);
                    let (err, fatal) = classify(&e, &self.url);
                    if connected {
                        connected = false;
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        tracing::warn!(broker = %self.url, "connection lost: {e}");
                        let down = Event::Down {
                            reason: e.to_string(),
                        };
                        if self.events.send(down).await.is_err() {
                            return;
                        }
                    }
                    if let Some(ready) = self.ready.take() {
                        if fatal || Instant::now() >= self.deadline {
                            let _ = ready.send(Err(err));
                            return;
                        }
                        self.ready = Some(ready);
                    } else if fatal {
                        tracing::error!("{err}; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Hands a message to the node; `false` when the node is gone. When the node is behind
    /// this waits, and the connection with it: the broker then holds the messages (its
    /// queue limits apply). The node's event loop never waits for the connection, so this
    /// wait always ends. Meanwhile what is to be sent first is queued, to go out as soon
    /// as the connection moves again.
    async fn hand_over(&mut self, event: Event, eventloop: &mut EventLoop) -> bool {
        let Self { events, first, .. } = self;
        let send = events.send(event);
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => return sent.is_ok(),
                Some(msg) = first.recv() => send_first(eventloop, msg),
            }
        }
    }

    async fn signal_ready(&mut self) {
        match self.ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
                for event in std::mem::take(&mut self.early) {
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                }
            }
            None => {
                let _ = self.events.send(Event::Ready { reconnected: true }).await;
            }
        }
    }
}

/// After our DISCONNECT, reads (and drops) what the broker still sends until it closes the
/// connection. Closing a socket with unread data sends a TCP reset, and a broker that has
/// not yet read the DISCONNECT then loses it and publishes our will: a clean stop reported
/// as a lost node.
async fn read_until_closed(mut eventloop: EventLoop) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}

/// How long a clean disconnect waits for the broker to close the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Maps a rumqttc error to ours; `true` when retrying cannot help.
fn classify(e: &Arc<ConnectionError>, url: &str) -> (TransportError, bool) {
    let url = url.to_owned();
    match &**e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => {
            (TransportError::BadCredentials { url }, true)
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            (TransportError::NotAuthorized { url }, true)
        }
        ConnectionError::Tls(t) => match super::tls::describe_failure(t) {
            Some(reason) => (TransportError::Tls { url, reason }, true),
            None => (
                TransportError::Unreachable {
                    url,
                    source: e.clone(),
                },
                false,
            ),
        },
        _ => (
            TransportError::Unreachable {
                url,
                source: e.clone(),
            },
            false,
        ),
    }
}

#[derive(Debug)]
struct MqttPublisher {
    client: AsyncClient,
    first: mpsc::Sender<Outgoing>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Publisher for MqttPublisher {
    fn publish(&self, msg: Outgoing) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.client
                .publish_bytes(msg.topic, qos(msg.qos), msg.retain, msg.payload)
                .await
                .map_err(|_| TransportError::Closed)
        })
    }

    fn try_publish(&self, msg: Outgoing) -> Result<(), super::TryPublishError> {
        match self.client.try_publish(
            msg.topic.clone(),
            qos(msg.qos),
            msg.retain,
            msg.payload.clone(),
        ) {
            Ok(()) => Ok(()),
            Err(rumqttc::v5::ClientError::TryRequest(_)) => Err(super::TryPublishError::Full(msg)),
            Err(rumqttc::v5::ClientError::Request(_)) => Err(super::TryPublishError::Closed),
        }
    }

    fn publish_first(&self, msg: Outgoing) -> Result<(), super::TryPublishError> {
        self.first.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(msg) => super::TryPublishError::Full(msg),
            mpsc::error::TrySendError::Closed(_) => super::TryPublishError::Closed,
        })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let _ = self.client.disconnect().await;
            if let Some(task) = self.task.lock().await.take() {
                if tokio::time::timeout(Duration::from_secs(3), task)
                    .await
                    .is_err()
                {
                    return Err(TransportError::Closed);
                }
            }
            Ok(())
        })
    }
}
