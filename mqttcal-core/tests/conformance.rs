//! One suite of what a transport must do, run over each transport: our MQTT client and
//! (feature `paho`) the Paho client, each on a Mosquitto of the test's own, and the
//! in-memory bus. A new transport joins by adding a rig and one line per case at the
//! bottom.
//!
//! Every transport: request and reply, broadcast, the last will of a connection lost
//! without a DISCONNECT, messages over the size limit dropped and counted while the node
//! goes on. A broker's transports also: a persistent session that keeps what came while
//! away and gives back what was not acknowledged after the commit, reconnection after a
//! broker restart, TLS with a password. Paho cannot acknowledge after a commit: there a
//! durable intake must refuse to start, and says why.

mod common;

use std::time::Duration;

use common::test_node;
use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{
    Event, Link, MemoryBus, MqttTransport, Outgoing, QoS, SessionSpec, Subscription, Transport,
};
use mqttcal_core::{Client, ErrorCode, Gather, NodeBuilder};
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A transport under test, and what it stands on.
enum Rig {
    /// Our MQTT client and a Mosquitto of the test's own.
    Mqtt(Mosquitto),
    /// The in-memory bus (no broker: no sessions to keep, nothing to restart).
    Memory(MemoryBus),
    /// The Paho client and a Mosquitto of the test's own.
    #[cfg(feature = "paho")]
    Paho(Mosquitto),
}

impl Rig {
    fn mqtt() -> Self {
        Self::Mqtt(Mosquitto::start(BrokerKind::Stock))
    }

    fn memory() -> Self {
        Self::Memory(MemoryBus::new())
    }

    #[cfg(feature = "paho")]
    fn paho() -> Self {
        Self::Paho(Mosquitto::start(BrokerKind::Stock))
    }

    fn transport(&self) -> Box<dyn Transport> {
        match self {
            Self::Mqtt(b) => Box::new(mqtt(&b.url(), None)),
            Self::Memory(bus) => Box::new(bus.clone()),
            #[cfg(feature = "paho")]
            Self::Paho(b) => Box::new(paho(&b.url())),
        }
    }

    /// The broker, where there is one.
    fn broker(&mut self) -> Option<&mut Mosquitto> {
        match self {
            Self::Mqtt(b) => Some(b),
            Self::Memory(_) => None,
            #[cfg(feature = "paho")]
            Self::Paho(b) => Some(b),
        }
    }

    /// A transport whose connections can be cut as a network would (no DISCONNECT), with
    /// the handle that cuts them.
    async fn cuttable(&self) -> (Box<dyn Transport>, Cut) {
        match self {
            Self::Mqtt(b) => {
                let (port, cut) = proxy(b.port()).await;
                let url = format!("mqtt://127.0.0.1:{port}");
                (Box::new(mqtt(&url, None)), cut)
            }
            Self::Memory(bus) => (Box::new(bus.clone()), Cut(None)),
            #[cfg(feature = "paho")]
            Self::Paho(b) => {
                let (port, cut) = proxy(b.port()).await;
                (Box::new(paho(&format!("mqtt://127.0.0.1:{port}"))), cut)
            }
        }
    }
}

#[cfg(feature = "paho")]
fn paho(url: &str) -> mqttcal_core::transport::PahoTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    mqttcal_core::transport::PahoTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

fn mqtt(url: &str, max: Option<usize>) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    if let Some(max) = max {
        cfg.max_message_size = max;
    }
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

/// Cuts the connections through a [`proxy`]; `None` where connections end by being dropped.
struct Cut(Option<tokio::sync::watch::Sender<bool>>);

/// A TCP relay to the broker's `port`: what [`Cut`] ends, the broker sees end without a
/// DISCONNECT, as when a node's machine dies.
async fn proxy(port: u16) -> (u16, Cut) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inside, _)) = listener.accept().await {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let Ok(mut outside) = TcpStream::connect(("127.0.0.1", port)).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inside, &mut outside) => {}
                    _ = async { let _ = rx.wait_for(|cut| *cut).await; } => {
                        let _ = outside.shutdown().await;
                    }
                }
            });
        }
    });
    (local, Cut(Some(tx)))
}

async fn client(t: &dyn Transport, name: &str) -> Client {
    Client::connect(t, name, "").await.unwrap()
}

async fn watch(t: &dyn Transport, id: &str, topic: &str) -> Link {
    t.connect(SessionSpec::new(
        id,
        vec![Subscription::new(topic, QoS::AtLeastOnce)],
    ))
    .await
    .unwrap()
}

async fn next_message(link: &mut Link, within: Duration) -> Option<(String, Vec<u8>)> {
    let end = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, link.events.recv()).await {
            Ok(Some(Event::Message { topic, payload, .. })) => {
                return Some((topic, payload.to_vec()))
            }
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

// The cases.

fn data(n: u32) -> Outgoing {
    Outgoing {
        topic: "data".into(),
        payload: n.to_string().into_bytes().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    }
}

/// `confirmed` resolves once the broker has every QoS 1 message sent before it (what a
/// node's outbox waits for before forgetting them), and not while the broker is away.
async fn confirmation_waits_for_the_broker(mut rig: Rig) {
    let t = rig.transport();
    let mut seen = watch(&*t, "confirm-watch", "data").await;
    let link = t
        .connect(SessionSpec::new("confirm-pub", vec![]))
        .await
        .unwrap();
    for n in 0..200 {
        link.publisher.publish(data(n)).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), link.publisher.confirmed())
        .await
        .expect("confirmed in time")
        .expect("confirmed");
    for n in 0..200 {
        let (_, payload) = next_message(&mut seen, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("message {n} reached the watcher"));
        assert_eq!(payload, n.to_string().as_bytes());
    }
    drop(t);
    let Some(broker) = rig.broker() else {
        return;
    };
    broker.stop();
    for n in 200..210 {
        link.publisher.publish(data(n)).await.unwrap();
    }
    let early = tokio::time::timeout(Duration::from_millis(800), link.publisher.confirmed()).await;
    assert!(
        early.is_err(),
        "confirmed while the broker was away: {early:?}"
    );
    broker.start_again();
    tokio::time::timeout(Duration::from_secs(20), link.publisher.confirmed())
        .await
        .expect("confirmed once the broker is back")
        .expect("confirmed");
}

async fn request_and_reply(rig: Rig) {
    let t = rig.transport();
    let node = test_node("calc").start(&*t).await.unwrap();
    let c = client(&*t, "tester").await;
    let sum = c
        .context()
        .request("calc", "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(sum["sum"], 3.0);
    let err = c
        .context()
        .request("calc", "fail", json!({}))
        .await
        .unwrap_err();
    assert_eq!(mqttcal_core::NodeError::from(err).code, ErrorCode::Hardware);
    node.stop().await.unwrap();
}

async fn broadcast(rig: Rig) {
    let t = rig.transport();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(test_node(name).start(&*t).await.unwrap());
    }
    let c = client(&*t, "tester").await;
    let replies = c
        .context()
        .request_envelopes(
            "*",
            "ping",
            Default::default(),
            Gather {
                timeout: Duration::from_secs(3),
                expect: Some(3),
            },
        )
        .await
        .unwrap();
    let mut from: Vec<String> = replies.into_iter().map(|r| r.from).collect();
    from.sort();
    assert_eq!(from, ["a", "b", "c"]);
    for node in nodes {
        node.stop().await.unwrap();
    }
}

async fn last_will(rig: Rig) {
    let t = rig.transport();
    let mut watcher = watch(&*t, "watcher", "announce").await;
    let (cuttable, cut) = rig.cuttable().await;
    let will = Outgoing {
        topic: "announce".into(),
        payload: br#"{"from":"dying","to":"*","message":"bye","reason":"lost"}"#
            .to_vec()
            .into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    let dying = cuttable
        .connect(SessionSpec {
            will: Some(will),
            ..SessionSpec::new("dying", vec![])
        })
        .await
        .unwrap();
    match cut.0 {
        Some(cut) => {
            cut.send_replace(true);
            // The relay is gone; the connection's own end goes with the test.
            std::mem::forget(dying);
        }
        None => drop(dying),
    }
    let (topic, payload) = next_message(&mut watcher, Duration::from_secs(10))
        .await
        .expect("the will is published");
    assert_eq!(topic, "announce");
    let env = Envelope::decode(&payload, usize::MAX).unwrap();
    assert_eq!(
        (env.from.as_str(), env.message.as_deref()),
        ("dying", Some("bye"))
    );
}

async fn oversized_messages_are_dropped_and_counted(rig: Rig) {
    let t = rig.transport();
    let node = NodeBuilder::new("small")
        .max_message_size(4096)
        .build()
        .start(&*t)
        .await
        .unwrap();
    let c = client(&*t, "tester").await;
    let source = t.connect(SessionSpec::new("source", vec![])).await.unwrap();
    // Over the limit and no request id to answer: dropped and counted. (A request with
    // an id is answered `invalid_request` instead.)
    let mut big = Envelope::new("tester", "small");
    big.cmd = Some("noise".into());
    big.fields.insert("pad".into(), json!("x".repeat(10_000)));
    source
        .publisher
        .publish(Outgoing {
            topic: "request".into(),
            payload: big.encode(usize::MAX).unwrap().into(),
            qos: QoS::AtMostOnce,
            retain: false,
        })
        .await
        .unwrap();
    // The node goes on, and says what it dropped.
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pong = c
            .context()
            .request("small", "ping", json!({}))
            .await
            .unwrap();
        if pong["losses"]["malformed"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "not counted: {pong}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await.unwrap();
}

async fn a_persistent_session_keeps_what_came_while_away(rig: Rig) {
    let t = rig.transport();
    let spec = SessionSpec {
        clean_session: false,
        manual_acks: true,
        ..SessionSpec::new("sink", vec![Subscription::new("meas", QoS::AtLeastOnce)])
    };
    let sink = t.connect(spec.clone()).await.unwrap();
    sink.publisher.disconnect().await.unwrap();
    let source = t.connect(SessionSpec::new("source", vec![])).await.unwrap();
    for i in 0..10 {
        source
            .publisher
            .publish(Outgoing {
                topic: "meas".into(),
                payload: i.to_string().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    // Back: what came while away; the first five committed and acknowledged.
    let mut sink = t.connect(spec.clone()).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        let ev = tokio::time::timeout(Duration::from_secs(5), sink.events.recv())
            .await
            .expect("what came while away")
            .unwrap();
        if let Event::Message { payload, ack, .. } = ev {
            got.push((String::from_utf8(payload.to_vec()).unwrap(), ack.unwrap()));
        }
    }
    let mut rest = got.split_off(5);
    for (_, ack) in got {
        assert!(ack.ack());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sink.publisher.disconnect().await.unwrap();
    // The connection is gone: a late acknowledgement does nothing.
    assert!(!rest.remove(0).1.ack());
    // Back again: what was not acknowledged comes again, in order.
    let mut sink = t.connect(spec).await.unwrap();
    let mut again = Vec::new();
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(1500), sink.events.recv()).await
    {
        if let Event::Message { payload, ack, .. } = ev {
            again.push(String::from_utf8(payload.to_vec()).unwrap());
            ack.unwrap().ack();
        }
    }
    assert_eq!(again, ["5", "6", "7", "8", "9"]);
}

async fn nodes_answer_again_after_a_broker_restart(mut broker: Mosquitto, t: &dyn Transport) {
    let node = test_node("calc").start(t).await.unwrap();
    let c = client(t, "tester").await;
    c.context()
        .request("calc", "ping", json!({}))
        .await
        .unwrap();
    broker.restart();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .context()
            .request_timeout("calc", "ping", json!({}), Duration::from_millis(500))
            .await;
        if r.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no answer after the restart: {r:?}"
        );
    }
    node.stop().await.unwrap();
}

/// A client configuration for `broker` (production mode) with TLS, logged in as `labd`.
fn secured_as_labd(broker: &Mosquitto) -> MqttConfig {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&broker.url()).unwrap();
    cfg.ca_cert = Some(broker.ca_cert());
    cfg.username = Some("labd".into());
    cfg.password = Some(Mosquitto::PASSWORD.into());
    cfg
}

async fn tls_with_a_password(make: fn(MqttConfig) -> Box<dyn Transport>) {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let mut cfg = secured_as_labd(&broker);
    let t = make(cfg.clone());
    let link = t
        .connect(SessionSpec::new("labd", vec![]))
        .await
        .expect("TLS and the right password");
    link.publisher.disconnect().await.unwrap();
    cfg.password = Some("wrong".into());
    let refused = make(cfg).connect(SessionSpec::new("labd", vec![])).await;
    assert!(refused.is_err(), "a wrong password is refused");
}

/// A message the broker refuses (the shipped ACL denies `labd` another node's `meas`) is
/// reported by the next confirmation, with the reason; those it took are not.
async fn a_refused_message_is_reported(make: fn(MqttConfig) -> Box<dyn Transport>) {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let cfg = secured_as_labd(&broker);
    let link = make(cfg)
        .connect(SessionSpec::new("labd", vec![]))
        .await
        .unwrap();
    // Asked once first: refusals are kept for confirmations from then on.
    assert!(link.publisher.confirmed().await.unwrap().is_empty());
    for topic in ["meas/labd", "meas/datad", "meas/labd"] {
        link.publisher
            .publish(Outgoing {
                topic: topic.into(),
                ..data(1)
            })
            .await
            .unwrap();
    }
    let refused = tokio::time::timeout(Duration::from_secs(10), link.publisher.confirmed())
        .await
        .expect("confirmed in time")
        .expect("confirmed");
    let topics: Vec<&str> = refused.iter().map(|r| r.message.topic.as_str()).collect();
    assert_eq!(topics, ["meas/datad"], "{refused:?}");
    assert!(
        refused[0].reason.to_lowercase().contains("not authorized"),
        "{}",
        refused[0].reason
    );
    let again = link.publisher.confirmed().await.unwrap();
    assert!(again.is_empty(), "reported once: {again:?}");
    assert_eq!(link.publisher.refused(), 1);
}

/// A publisher that never asks for confirmations keeps nothing of what the broker refuses
/// (it once kept every refused message for ever): each is counted, none kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_counts_refusals_without_keeping_them() {
    let broker = Mosquitto::start_with(BrokerKind::Stock, "message_size_limit 300\n");
    let link = mqtt(&broker.url(), None)
        .connect(SessionSpec::new("labd", vec![]))
        .await
        .unwrap();
    for i in 0..200 {
        link.publisher
            .publish(Outgoing {
                payload: vec![b'x'; 1000].into(),
                ..data(i)
            })
            .await
            .unwrap();
    }
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while link.publisher.refused() < 200 {
        assert!(
            tokio::time::Instant::now() < end,
            "{} counted",
            link.publisher.refused()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let confirmed = link.publisher.confirmed().await.unwrap();
    assert!(confirmed.is_empty(), "kept: {}", confirmed.len());
}

/// A message over the broker's `message_size_limit` is refused with a reason code MQTT 5
/// lists for DISCONNECT only (0x95, packet too large): reported as refused, once, and the
/// connection goes on (it once broke on it and sent the message again without end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_reports_a_message_too_large_for_the_broker() {
    let broker = Mosquitto::start_with(BrokerKind::Stock, "message_size_limit 300\n");
    let link = mqtt(&broker.url(), None)
        .connect(SessionSpec::new("labd", vec![]))
        .await
        .unwrap();
    assert!(link.publisher.confirmed().await.unwrap().is_empty());
    let big = Outgoing {
        payload: vec![b'x'; 1000].into(),
        ..data(0)
    };
    for m in [data(1), big, data(2)] {
        link.publisher.publish(m).await.unwrap();
    }
    let refused = tokio::time::timeout(Duration::from_secs(10), link.publisher.confirmed())
        .await
        .expect("confirmed in time")
        .expect("confirmed");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].message.payload.len(), 1000);
    assert!(
        refused[0].reason.contains("packet too large (0x95)"),
        "{}",
        refused[0].reason
    );
    link.publisher.publish(data(3)).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), link.publisher.confirmed())
        .await
        .expect("the connection goes on")
        .unwrap();
    assert!(again.is_empty(), "reported once: {again:?}");
}

/// A stored session holding more than fits before the SUBACK in a small window (the
/// broker sends up to the receive maximum of them first) is taken up whole: an intake with
/// a window of 8,000 once failed every reconnection here with over 4,096 queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_takes_up_a_stored_session_larger_than_4096() {
    const QUEUED: u32 = 6000;
    let broker = Mosquitto::start(BrokerKind::Production);
    let t = mqtt(&broker.url(), None);
    let spec = SessionSpec {
        clean_session: false,
        manual_acks: true,
        receive_maximum: Some(8000),
        ..SessionSpec::new("sink", vec![Subscription::new("data", QoS::AtLeastOnce)])
    };
    let sink = t.connect(spec.clone()).await.unwrap();
    sink.publisher.disconnect().await.unwrap();
    let source = t.connect(SessionSpec::new("source", vec![])).await.unwrap();
    for i in 0..QUEUED {
        source.publisher.publish(data(i)).await.unwrap();
    }
    source.publisher.confirmed().await.unwrap();
    let mut sink = t.connect(spec).await.unwrap();
    let mut got = 0;
    while got < QUEUED {
        let ev = tokio::time::timeout(Duration::from_secs(10), sink.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{got} of {QUEUED} queued messages came back"))
            .expect("the connection stays up");
        if let Event::Message { ack, .. } = ev {
            assert!(ack.expect("manual").ack());
            got += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_reports_a_refused_message() {
    a_refused_message_is_reported(|cfg| Box::new(MqttTransport::new(cfg))).await;
}

/// One test per transport and case.
macro_rules! cases {
    ($rig:ident: $($case:ident),* $(,)?) => {
        mod $rig {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Rig::$rig()).await;
                }
            )*
        }
    };
}

cases!(mqtt: request_and_reply, broadcast, last_will, oversized_messages_are_dropped_and_counted, confirmation_waits_for_the_broker, a_persistent_session_keeps_what_came_while_away);
cases!(memory: request_and_reply, broadcast, last_will, oversized_messages_are_dropped_and_counted, confirmation_waits_for_the_broker);
#[cfg(feature = "paho")]
cases!(paho: request_and_reply, broadcast, last_will, oversized_messages_are_dropped_and_counted, a_durable_intake_is_refused, an_outbox_is_refused);

/// A transport that cannot acknowledge after a commit refuses the session a durable intake
/// asks for, and the node with it refuses to start, saying why.
#[cfg(feature = "paho")]
async fn a_durable_intake_is_refused(rig: Rig) {
    use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake};
    struct Nothing;
    impl Commit<usize> for Nothing {
        fn commit<'a>(
            &'a mut self,
            _: &'a [usize],
            _: &'a mqttcal_core::Context,
        ) -> mqttcal_core::transport::BoxFuture<'a, Result<(), CommitError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let intake = Intake::new(|_: &str, p: &[u8]| Decoded::Item(p.len()), Nothing).subscribe("meas");
    refuses_to_start(&rig, NodeBuilder::new("sink").intake(intake), "sink-intake").await;
}

/// The node of `builder` does not start on the rig's transport, and says why, naming
/// `what` and the transport to use instead.
#[cfg(feature = "paho")]
async fn refuses_to_start(rig: &Rig, builder: NodeBuilder, what: &str) {
    let t = rig.transport();
    let err = builder
        .build()
        .start(&*t)
        .await
        .expect_err("refused on this transport");
    let text = err.to_string();
    assert!(
        text.contains(what) && text.contains("default transport"),
        "{text}"
    );
}

/// A transport that cannot tell a refused message from a taken one refuses the node an
/// outbox, which must not forget a refused message, and the node does not start.
#[cfg(feature = "paho")]
async fn an_outbox_is_refused(rig: Rig) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = mqttcal_core::outbox::OutboxConfig::new(dir.path().join("labd.outbox"));
    refuses_to_start(&rig, NodeBuilder::new("labd").outbox(outbox), "labd.outbox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_reconnects_after_a_broker_restart() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let t = mqtt(&broker.url(), None);
    nodes_answer_again_after_a_broker_restart(broker, &t).await;
}

#[cfg(feature = "paho")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_reconnects_after_a_broker_restart() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let t = paho(&broker.url());
    nodes_answer_again_after_a_broker_restart(broker, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_tls_with_a_password() {
    tls_with_a_password(|cfg| {
        Box::new(MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3)))
    })
    .await;
}

#[cfg(feature = "paho")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_tls_with_a_password() {
    tls_with_a_password(|cfg| {
        Box::new(
            mqttcal_core::transport::PahoTransport::new(cfg)
                .connect_timeout(Duration::from_secs(3)),
        )
    })
    .await;
}
