//! MQTT 5 through the Eclipse Paho C client (crate `paho-mqtt`, EPL-2.0), behind the
//! `paho` feature. It needs cmake and a C compiler (and OpenSSL's headers for TLS) to build.
//!
//! What differs from [`MqttTransport`](super::MqttTransport):
//! - Paho acknowledges every QoS 1 message on receipt and has no manual acknowledgement:
//!   a session that asks for [`SessionSpec::manual_acks`] (a durable intake, which
//!   acknowledges after its commit) is refused with [`TransportError::Config`], so such a
//!   node refuses to start instead of losing what it holds at a crash.
//! - [`SessionSpec::priority`] and [`SessionSpec::direct`] are ignored (every message comes
//!   as an event, in order); nothing waits in memory for a node that is behind but a
//!   bounded queue, after which Paho's thread waits, and TCP holds the rest at the broker.
//! - Paho reconnects by itself (100 ms to 5 s); after each reconnection the transport
//!   subscribes again and reports [`Event::Ready`] `{ reconnected: true }`.
//! - [`Publisher::confirmed`] fails with [`TransportError::Config`]: a Paho delivery token
//!   (paho-mqtt 0.14) completes alike whether the broker took a QoS 1 message or refused
//!   it with a PUBACK reason code (an ACL that denies the topic), so a node with an outbox
//!   ([`crate::outbox`]), which must not forget a refused message, refuses to start on
//!   Paho, saying why. (Paho's own file persistence is no substitute: it keeps messages
//!   only within a persistent session of one client id, which nodes' sessions are not.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use paho_mqtt as paho;
use tokio::sync::mpsc;

use super::{
    BoxFuture, Event, Events, Link, Outgoing, Publisher, QoS, SessionSpec, Transport,
    TransportError,
};
use crate::config::MqttConfig;

/// Events waiting for the node before Paho's thread waits.
const EVENTS: usize = 1024;

/// MQTT 5 through the Eclipse Paho C client. Available with the `paho` feature.
///
/// ```no_run
/// use mqttcal_core::config::MqttConfig;
/// use mqttcal_core::transport::PahoTransport;
/// let mut cfg = MqttConfig::default();
/// cfg.apply_url("mqtt://127.0.0.1:1883").unwrap();
/// let transport = PahoTransport::new(cfg);
/// ```
#[derive(Debug, Clone)]
pub struct PahoTransport {
    cfg: MqttConfig,
    connect_timeout: Duration,
}

impl PahoTransport {
    /// A transport for the broker in `cfg`.
    pub fn new(cfg: MqttConfig) -> Self {
        Self {
            cfg,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// How long the first connection may take before [`TransportError::Unreachable`].
    /// Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn config_error(problem: String, e: Option<paho::Error>) -> TransportError {
        TransportError::Config {
            problem,
            source: e.map(|e| Arc::new(e) as super::SharedError),
        }
    }

    fn options(&self, spec: &SessionSpec) -> Result<paho::ConnectOptions, TransportError> {
        let cfg = &self.cfg;
        let mut props = paho::Properties::new();
        let mut set = |code, value: u32| {
            props
                .push_u32(code, value)
                .map_err(|e| Self::config_error("MQTT 5 properties".into(), Some(e)))
        };
        if !spec.clean_session {
            set(paho::PropertyCode::SessionExpiryInterval, u32::MAX)?;
        }
        let max = cfg.max_message_size.saturating_add(65_536);
        set(
            paho::PropertyCode::MaximumPacketSize,
            u32::try_from(max).unwrap_or(u32::MAX),
        )?;
        let receive_maximum = spec.receive_maximum.unwrap_or(1000).max(1);
        props
            .push_u16(paho::PropertyCode::ReceiveMaximum, receive_maximum)
            .map_err(|e| Self::config_error("MQTT 5 properties".into(), Some(e)))?;
        let mut b = paho::ConnectOptionsBuilder::with_mqtt_version(paho::MQTT_VERSION_5);
        b.clean_start(spec.clean_session)
            .keep_alive_interval(Duration::from_secs(cfg.keepalive.max(5)))
            .connect_timeout(self.connect_timeout)
            .automatic_reconnect(Duration::from_millis(100), Duration::from_secs(5))
            .properties(props);
        let user = spec.login.clone().or_else(|| cfg.username.clone());
        if let Some(user) = user {
            b.user_name(user)
                .password(cfg.password.clone().unwrap_or_default());
        }
        if let Some(w) = &spec.will {
            b.will_message(
                paho::MessageBuilder::new()
                    .topic(&w.topic)
                    .payload(w.payload.to_vec())
                    .qos(qos(w.qos))
                    .retained(w.retain)
                    .finalize(),
            );
        }
        if cfg.uses_tls() {
            let mut ssl = paho::SslOptionsBuilder::new();
            if let Some(ca) = &cfg.ca_cert {
                ssl.trust_store(ca).map_err(|e| {
                    Self::config_error(format!("the CA certificate {}", ca.display()), Some(e))
                })?;
            }
            if let (Some(cert), Some(key)) = (&cfg.client_cert, &cfg.client_key) {
                ssl.key_store(cert).map_err(|e| {
                    Self::config_error(
                        format!("the client certificate {}", cert.display()),
                        Some(e),
                    )
                })?;
                ssl.private_key(key).map_err(|e| {
                    Self::config_error(format!("the client key {}", key.display()), Some(e))
                })?;
            }
            ssl.enable_server_cert_auth(true).verify(true);
            b.ssl_options(ssl.finalize());
        }
        Ok(b.finalize())
    }

    async fn open(&self, spec: SessionSpec) -> Result<Link, TransportError> {
        if spec.manual_acks {
            return Err(Self::config_error(
                format!(
                    "`{}` acknowledges messages only after committing them, and the paho transport cannot: Paho acknowledges each message on receipt, so what a node holds uncommitted would be lost at a crash. Run this node on the default transport",
                    spec.client_id
                ),
                None,
            ));
        }
        let url = self.cfg.url();
        let scheme = if self.cfg.uses_tls() { "ssl" } else { "tcp" };
        let create = paho::CreateOptionsBuilder::new()
            .server_uri(format!(
                "{scheme}://{}:{}",
                self.cfg.hostname, self.cfg.port
            ))
            .client_id(&spec.client_id)
            .mqtt_version(paho::MQTT_VERSION_5)
            .max_buffered_messages(100_000)
            .send_while_disconnected(true)
            .finalize();
        let client = paho::AsyncClient::new(create)
            .map_err(|e| Self::config_error("the Paho client".into(), Some(e)))?;
        let (tx, rx) = mpsc::channel(EVENTS);
        let topics: Vec<String> = spec
            .subscriptions
            .iter()
            .map(|s| s.filter.clone())
            .collect();
        let qoss: Vec<i32> = spec.subscriptions.iter().map(|s| qos(s.qos)).collect();
        let opts: Vec<paho::SubscribeOptions> = spec
            .subscriptions
            .iter()
            .map(|s| paho::SubscribeOptions::new(s.no_local, false, None))
            .collect();
        let messages = tx.clone();
        client.set_message_callback(move |_, msg| {
            if let Some(m) = msg {
                // Paho's own thread, not the runtime's: waiting here holds the socket
                // unread, and TCP holds the rest at the broker.
                let _ = messages.blocking_send(Event::Message {
                    topic: m.topic().to_owned(),
                    payload: Bytes::copy_from_slice(m.payload()),
                    ack: None,
                });
            }
        });
        let lost = tx.clone();
        client.set_connection_lost_callback(move |_| {
            let _ = lost.blocking_send(Event::Down {
                reason: "the connection to the broker was lost".into(),
            });
        });
        let first = Arc::new(Mutex::new(true));
        let again = tx.clone();
        let handle = tokio::runtime::Handle::current();
        let resubscribe = (topics.clone(), qoss.clone(), opts.clone());
        client.set_connected_callback(move |cli| {
            let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
            if std::mem::take(&mut *first) {
                return;
            }
            // Reconnected: subscribe again (a clean session kept nothing), then say so.
            let (topics, qoss, opts) = resubscribe.clone();
            let cli = cli.clone();
            let again = again.clone();
            handle.spawn(async move {
                if !topics.is_empty() {
                    let _ = cli
                        .subscribe_many_with_options(&topics, &qoss, &opts, None)
                        .await;
                }
                let _ = again.send(Event::Ready { reconnected: true }).await;
            });
        });
        let options = self.options(&spec)?;
        match tokio::time::timeout(self.connect_timeout, client.connect(options)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(connect_error(&url, e)),
            Err(_) => {
                return Err(TransportError::Unreachable {
                    url,
                    source: Arc::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no connection within the connect timeout",
                    )),
                })
            }
        }
        if !topics.is_empty() {
            client
                .subscribe_many_with_options(&topics, &qoss, &opts, None)
                .await
                .map_err(|e| {
                    Self::config_error("the subscriptions were refused".into(), Some(e))
                })?;
        }
        let _ = tx.send(Event::Ready { reconnected: false }).await;
        Ok(Link {
            publisher: Arc::new(PahoPublisher { client }),
            events: Events::new(rx),
        })
    }
}

/// What a failed first connection means.
fn connect_error(url: &str, e: paho::Error) -> TransportError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("user name or password") {
        TransportError::BadCredentials {
            url: url.to_owned(),
        }
    } else if lower.contains("not authorized") {
        TransportError::NotAuthorized {
            url: url.to_owned(),
        }
    } else if lower.contains("ssl") || lower.contains("tls") {
        TransportError::Tls {
            url: url.to_owned(),
            reason: text,
        }
    } else {
        TransportError::Unreachable {
            url: url.to_owned(),
            source: Arc::new(e),
        }
    }
}

impl Transport for PahoTransport {
    fn connect(&self, spec: SessionSpec) -> BoxFuture<'_, Result<Link, TransportError>> {
        Box::pin(self.open(spec))
    }

    fn describe(&self) -> String {
        format!("{} (paho)", self.cfg.url())
    }
}

/// Publishes through a Paho client; messages queue in Paho while it reconnects.
struct PahoPublisher {
    client: paho::AsyncClient,
}

impl std::fmt::Debug for PahoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PahoPublisher")
    }
}

impl PahoPublisher {
    fn send(&self, msg: Outgoing) -> Result<(), TransportError> {
        let m = paho::MessageBuilder::new()
            .topic(msg.topic)
            .payload(msg.payload.to_vec())
            .qos(qos(msg.qos))
            .retained(msg.retain)
            .finalize();
        // The token completes when the message is out (QoS 0) or acknowledged (QoS 1);
        // Paho keeps it meanwhile, across reconnections.
        self.client
            .try_publish(m)
            .map(drop)
            .map_err(|_| TransportError::Closed)
    }
}

impl Publisher for PahoPublisher {
    fn publish(&self, msg: Outgoing) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move { self.send(msg) })
    }

    fn try_publish(&self, msg: Outgoing) -> Result<(), super::TryPublishError> {
        self.send(msg).map_err(|_| super::TryPublishError::Closed)
    }

    fn confirmed(&self) -> BoxFuture<'_, Result<Vec<super::Refused>, TransportError>> {
        Box::pin(async {
            Err(TransportError::Config {
                problem: "the paho transport completes a message's delivery token alike whether the broker took it or refused it (a PUBACK reason code such as \"not authorized\"), so an outbox on it could forget refused messages: run this node on the default transport".into(),
                source: None,
            })
        })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let _ = self.client.disconnect(None).await;
            Ok(())
        })
    }
}

fn qos(q: QoS) -> i32 {
    match q {
        QoS::AtMostOnce => paho::QOS_0,
        QoS::AtLeastOnce => paho::QOS_1,
    }
}
