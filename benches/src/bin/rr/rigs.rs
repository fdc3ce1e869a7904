//! The two sides of the bench: a raw MQTT echo and a mqttcal node with a client.
//!
//! The raw series' code (`raw_client`, `drive`, `raw_series` and the echo task) is the
//! baseline: it must not change, or figures stop being comparable from one version to the
//! next. The stamped echo of `--path` runs beside it, never in its place.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::{MqttTransport, QoS};
use mqttcal_core::{Client, Context, NodeBuilder, NodeError, NodeHandle};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// When the echo last received a request (`--path` only).
pub(crate) type Stamp = Arc<Mutex<Option<Instant>>>;

/// The payload of every round trip.
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn raw_client(host: &str, port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    let (c, mut el) = AsyncClient::new(o, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    (c, el)
}

/// Drives an event loop, forwarding publishes on `tx`; signals the first SUBACK on `ready`.
fn drive(
    mut el: rumqttc::EventLoop,
    tx: mpsc::UnboundedSender<Bytes>,
    ready: mpsc::UnboundedSender<()>,
) {
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Packet::Publish(p)) if tx.send(p.payload.clone()).is_err() => {
                    return
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    let _ = ready.send(());
                }
                _ => {}
            }
        }
    });
}

/// `count` raw round trips, one after the other: each one's time, and the whole.
async fn raw_series(
    ping: &AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<Bytes>,
    qos: rumqttc::QoS,
    count: usize,
) -> (Vec<Duration>, Duration) {
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let payload = Bytes::from_static(PAYLOAD.as_bytes());
        ping.publish_bytes("rr/req", qos, false, payload)
            .await
            .unwrap();
        replies.recv().await.unwrap();
        samples.push(t.elapsed());
    }
    (samples, start.elapsed())
}

/// The raw echo: two plain clients, ready for [`raw_series`].
pub(crate) struct RawRig {
    ping: AsyncClient,
    echo: AsyncClient,
    replies: mpsc::UnboundedReceiver<Bytes>,
    qos: rumqttc::QoS,
}

impl RawRig {
    /// Connects both clients; with `stamp`, the echo notes when each request arrives.
    pub(crate) async fn start(
        host: &str,
        port: u16,
        qos: rumqttc::QoS,
        stamp: Option<Stamp>,
    ) -> Self {
        let tag = format!("{}-{:?}", std::process::id(), qos);
        let (echo, el) = raw_client(host, port, &format!("rr-echo-{tag}"));
        let (etx, mut erx) = mpsc::unbounded_channel();
        let (rtx, mut ready) = mpsc::unbounded_channel();
        drive(el, etx, rtx.clone());
        echo.subscribe("rr/req", qos).await.unwrap();
        ready.recv().await;
        let echo2 = echo.clone();
        match stamp {
            None => {
                tokio::spawn(async move {
                    while let Some(p) = erx.recv().await {
                        if echo2.publish_bytes("rr/rep", qos, false, p).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Some(stamp) => {
                tokio::spawn(async move {
                    while let Some(p) = erx.recv().await {
                        *stamp.lock().unwrap() = Some(Instant::now());
                        if echo2.publish_bytes("rr/rep", qos, false, p).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        let (ping, el) = raw_client(host, port, &format!("rr-ping-{tag}"));
        let (ptx, replies) = mpsc::unbounded_channel();
        drive(el, ptx, rtx);
        ping.subscribe("rr/rep", qos).await.unwrap();
        ready.recv().await;
        Self {
            ping,
            echo,
            replies,
            qos,
        }
    }

    /// `count` round trips: each one's time, and the whole.
    pub(crate) async fn series(&mut self, count: usize) -> (Vec<Duration>, Duration) {
        raw_series(&self.ping, &mut self.replies, self.qos, count).await
    }

    /// One round trip: the time from the request to the echo's receipt, and to the reply.
    pub(crate) async fn legs(&mut self) -> (Instant, Instant) {
        let start = Instant::now();
        self.series(1).await;
        (start, Instant::now())
    }

    /// Disconnects both clients.
    pub(crate) async fn stop(self) {
        let _ = self.ping.disconnect().await;
        let _ = self.echo.disconnect().await;
    }
}

/// A node with an `echo` capability and a client calling it.
pub(crate) struct OursRig {
    node: NodeHandle,
    client: Client,
    ctx: Context,
    node_name: String,
    params: Value,
}

impl OursRig {
    /// Starts the node and connects the client; with `stamp`, the capability notes when
    /// each request reaches it.
    pub(crate) async fn start(url: &str, qos: QoS, stamp: Option<Stamp>) -> Self {
        let mut cfg = MqttConfig::default();
        cfg.apply_url(url).unwrap();
        Self::start_on(&MqttTransport::new(cfg), "", qos, stamp).await
    }

    /// The same on the Paho client (feature `paho`): node and client both.
    #[cfg(feature = "paho")]
    pub(crate) async fn start_paho(url: &str, qos: QoS) -> Self {
        let mut cfg = MqttConfig::default();
        cfg.apply_url(url).unwrap();
        let transport = mqttcal_core::transport::PahoTransport::new(cfg);
        Self::start_on(&transport, "-paho", qos, None).await
    }

    async fn start_on(
        transport: &dyn mqttcal_core::transport::Transport,
        suffix: &str,
        qos: QoS,
        stamp: Option<Stamp>,
    ) -> Self {
        let tag = format!("{}-{:?}{suffix}", std::process::id(), qos);
        let node_name = format!("rr-node-{tag}");
        let node = NodeBuilder::new(node_name.clone())
            .control_qos(qos)
            .capability(
                "echo",
                "Return the parameters",
                move |p: Map<String, Value>, _ctx| {
                    if let Some(stamp) = &stamp {
                        *stamp.lock().unwrap() = Some(Instant::now());
                    }
                    async move { Ok::<_, NodeError>(Value::Object(p)) }
                },
            )
            .build()
            .start(transport)
            .await
            .unwrap();
        let client = Client::connect_as(
            transport,
            NodeBuilder::new(format!("rr-client-{tag}")).control_qos(qos),
        )
        .await
        .unwrap();
        let ctx = client.context().clone();
        Self {
            node,
            client,
            ctx,
            node_name,
            params: json!({ "payload": PAYLOAD }),
        }
    }

    /// `count` calls: each one's time, and the whole.
    pub(crate) async fn series(&mut self, count: usize) -> (Vec<Duration>, Duration) {
        let mut samples = Vec::with_capacity(count);
        let start = Instant::now();
        for _ in 0..count {
            let t = Instant::now();
            self.ctx
                .request(&self.node_name, "echo", &self.params)
                .await
                .unwrap();
            samples.push(t.elapsed());
        }
        (samples, start.elapsed())
    }

    /// One call: when it began and when it returned.
    pub(crate) async fn legs(&mut self) -> (Instant, Instant) {
        let start = Instant::now();
        self.series(1).await;
        (start, Instant::now())
    }

    /// Stops the client and the node.
    pub(crate) async fn stop(self) {
        self.client.close().await;
        self.node.stop().await.unwrap();
    }
}
