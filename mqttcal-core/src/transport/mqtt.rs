//! MQTT 5 with our own I/O loop (see `wire`) on rumqttc's codec: TCP_NODELAY on, TLS, last
//! will, "no local" subscriptions, reconnection with resubscription.
//!
//! MQTT 5 matters here: a node subscribes to `reply` and also publishes its replies there.
//! Under MQTT 3.1.1 the broker echoes each reply back to its sender, an unanswered segment
//! that, on a broker without TCP_NODELAY, holds the next request for a delayed ACK (40 ms).
//! "No local" removes the echo. The maximum packet size we announce lets the broker drop an
//! oversized message for us instead of sending it and forcing a disconnect.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes;
use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, Filter, LastWill, Login};

use super::wire::Hello;
use super::{BoxFuture, Link, QoS, SessionSpec, Transport, TransportError};
use crate::config::MqttConfig;

/// Room for the topic and properties around the largest payload.
const PACKET_OVERHEAD: usize = 65_536;

/// MQTT 5 (pure Rust), the default transport.
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
    attempt_timeout: Duration,
}

impl MqttTransport {
    /// A transport for the broker in `cfg`.
    pub fn new(cfg: MqttConfig) -> Self {
        Self {
            cfg,
            connect_timeout: Duration::from_secs(10),
            attempt_timeout: super::wire::ATTEMPT,
        }
    }

    /// How long one attempt to connect (TCP, TLS and the broker's CONNACK) may take.
    /// Default 5 s. A command that should fail fast at a wrong address sets this and a
    /// zero [`MqttTransport::connect_timeout`] (one attempt), then asks
    /// [`probe`](super::probe::probe) what listens there.
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long the first connection may take before [`TransportError::Unreachable`];
    /// later losses are retried for ever. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn hello(&self, spec: &SessionSpec) -> Result<Hello, TransportError> {
        let cfg = &self.cfg;
        let mut props = ConnectProperties::new();
        if !spec.clean_session {
            // Keep the session while the client is away (a restart, a broker outage).
            props.session_expiry_interval = Some(u32::MAX);
        }
        // At most this many QoS 1 messages in flight towards us. Without it the broker may
        // send everything it has (MQTT 5 default 65,535) and Mosquitto's cost per PUBACK
        // grows with the messages in flight: a sink 30,000 behind was acknowledged at
        // 250 messages/s. The rest waits in the broker's queue for the session.
        props.receive_maximum = Some(spec.receive_maximum.unwrap_or(RECEIVE_MAXIMUM).max(1));
        let max = cfg.max_message_size.saturating_add(PACKET_OVERHEAD);
        let max_incoming = u32::try_from(max).unwrap_or(u32::MAX);
        props.max_packet_size = Some(max_incoming);
        let keep_alive = u16::try_from(cfg.keepalive.max(5)).unwrap_or(u16::MAX);
        let connect = Connect {
            keep_alive,
            client_id: spec.client_id.clone(),
            clean_start: spec.clean_session,
            properties: Some(props),
        };
        let login = match (&spec.login, &cfg.username) {
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
            (Some(login), _) => Some(Login::new(
                login.clone(),
                cfg.password.clone().unwrap_or_default(),
            )),
            (None, Some(user)) => Some(Login::new(
                user.clone(),
                cfg.password.clone().unwrap_or_default(),
            )),
            (None, None) => None,
        };
        let will = spec.will.as_ref().map(|w| {
            LastWill::new(
                w.topic.clone(),
                w.payload.to_vec(),
                qos(w.qos),
                w.retain,
                None,
            )
        });
        let tls = if cfg.uses_tls() {
            Some(Arc::new(super::tls::client_config(cfg)?))
        } else {
            None
        };
        Ok(Hello {
            host: cfg.hostname.clone(),
            port: cfg.port,
            url: cfg.url(),
            tls,
            connect,
            will,
            login,
            max_incoming,
            attempt: self.attempt_timeout,
        })
    }

    async fn open(&self, spec: SessionSpec) -> Result<Link, TransportError> {
        let hello = self.hello(&spec)?;
        let filters = spec
            .subscriptions
            .iter()
            .map(|s| {
                let mut f = Filter::new(s.filter.clone(), qos(s.qos));
                f.nolocal = s.no_local;
                f
            })
            .collect();
        let keep_alive = Duration::from_secs(u64::from(hello.connect.keep_alive));
        super::wire::open(
            hello,
            filters,
            keep_alive,
            spec.manual_acks,
            self.connect_timeout,
            spec.priority,
            spec.direct,
        )
        .await
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

/// QoS 1 messages the broker may have in flight towards one connection, by default.
const RECEIVE_MAXIMUM: u16 = 1000;
