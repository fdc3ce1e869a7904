//! The embedded MQTT broker (rumqttd), so a lab runs with nothing installed.
//!
//! It listens for MQTT 5 (our nodes) on one port and MQTT 3.1.1 (e.g. nodes written to the
//! report with paho) on another; both share one router. Production uses Mosquitto: rumqttd
//! delivers at the subscription's QoS, has no shutdown API (it lives as long as the
//! process) and drops a bad login without a reason.
//!
//! Available with the `broker` feature.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Why the embedded broker did not start. Available with the `broker` feature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No port could be had.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The broker did not accept connections in time.
    #[error("the embedded broker did not start listening on {0}")]
    NotListening(SocketAddr),
}

/// A running embedded broker. Available with the `broker` feature.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// The MQTT 5 listener, for mqttcal nodes.
    pub v5: SocketAddr,
    /// The MQTT 3.1.1 listener, for report-style peers.
    pub v4: SocketAddr,
    /// Whether the requested MQTT 5 port was taken and another one chosen.
    pub moved: bool,
}

/// Binds `port` on 127.0.0.1, or, if it is taken, the first free one of the ten after it
/// (the same from one start to the next), else any free port; `true` when it moved.
fn pick(port: u16) -> Result<(SocketAddr, bool), BrokerError> {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    if let Ok(l) = TcpListener::bind(wanted) {
        return Ok((l.local_addr().unwrap_or(wanted), false));
    }
    let next = (1..=10)
        .filter_map(|i| port.checked_add(i))
        .filter(|_| port != 0);
    for p in next {
        let addr = SocketAddr::from(([127, 0, 0, 1], p));
        if TcpListener::bind(addr).is_ok() {
            return Ok((addr, true));
        }
    }
    match TcpListener::bind(wanted) {
        Ok(l) => Ok((l.local_addr().unwrap_or(wanted), false)),
        Err(_) => {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let l =
                TcpListener::bind(any).map_err(|source| BrokerError::Bind { addr: any, source })?;
            let addr = l
                .local_addr()
                .map_err(|source| BrokerError::Bind { addr: any, source })?;
            Ok((addr, port != 0))
        }
    }
}

fn server(name: &str, listen: SocketAddr, max_payload: usize) -> ServerSettings {
    ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

impl EmbeddedBroker {
    /// Starts the broker with MQTT 5 on `port` (or a free port if it is taken; 0 for any)
    /// and MQTT 3.1.1 on `v4_port` (likewise), and waits until both accept connections.
    pub fn start(port: u16, v4_port: u16, max_payload: usize) -> Result<Self, BrokerError> {
        let (v5, moved) = pick(port)?;
        let (v4, _) = pick(v4_port)?;
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 10_000,
                max_outgoing_packet_count: 200,
                max_segment_size: 100 * 1024 * 1024,
                max_segment_count: 10,
                ..Default::default()
            },
            v4: Some(HashMap::from([(
                "1".to_owned(),
                server("v4", v4, max_payload),
            )])),
            v5: Some(HashMap::from([(
                "1".to_owned(),
                server("v5", v5, max_payload),
            )])),
            ..Default::default()
        };
        std::thread::Builder::new()
            .name("mqttcal-broker".into())
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!("embedded broker stopped: {e}");
                }
            })
            .map_err(|source| BrokerError::Bind { addr: v5, source })?;
        for addr in [v5, v4] {
            let end = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect(addr).is_err() {
                if Instant::now() > end {
                    return Err(BrokerError::NotListening(addr));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(Self { v5, v4, moved })
    }

    /// The URL our nodes use (`mqtt://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.v5)
    }

    /// The URL MQTT 3.1.1 clients use.
    pub fn v4_url(&self) -> String {
        format!("mqtt://{}", self.v4)
    }
}
