//! The runtime on the in-memory bus: macro-registered nodes, stop, wills, data topics.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{
    Event, MemoryBus, Outgoing, QoS, SessionSpec, Subscription, Transport,
};
use mqttcal_core::{node, Client, Context, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Offset {
    kelvin: f64,
}

struct Thermometer {
    offset: f64,
}

#[node]
impl Thermometer {
    /// Read the temperature, in degrees Celsius.
    #[capability]
    async fn read(&self, _ctx: &Context) -> Result<f64, NodeError> {
        Ok(20.0 + self.offset)
    }

    /// Set the calibration offset, in kelvin.
    #[capability(id = "set-offset")]
    async fn set_offset(&mut self, p: Offset) -> Result<(), NodeError> {
        self.offset = p.kelvin;
        Ok(())
    }
}

#[tokio::test]
async fn a_macro_node_serves_its_methods_and_keeps_state() {
    let bus = MemoryBus::new();
    let node = NodeBuilder::new("thermo")
        .register(Thermometer { offset: 0.0 })
        .build()
        .start(&bus)
        .await
        .unwrap();
    let c = Client::connect(&bus, "t", "").await.unwrap();
    let ctx = c.context();
    assert_eq!(
        ctx.request("thermo", "read", json!({})).await.unwrap(),
        json!(20.0)
    );
    assert_eq!(
        ctx.request("thermo", "set-offset", json!({"kelvin": 0.5}))
            .await
            .unwrap(),
        json!(null)
    );
    assert_eq!(
        ctx.request("thermo", "read", json!({})).await.unwrap(),
        json!(20.5)
    );
    let map = ctx.request("thermo", "map", json!({})).await.unwrap();
    assert_eq!(
        map[4]["description"],
        "Set the calibration offset, in kelvin."
    );
    assert_eq!(map[4]["params"]["required"], json!(["kelvin"]));
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_stop_command_on_system_ends_the_node() {
    let bus = MemoryBus::new();
    let node = common::test_node("n").start(&bus).await.unwrap();
    let c = Client::connect(&bus, "ctl", "").await.unwrap();
    c.context()
        .send("system", "n", json!({"cmd": "stop"}))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), node.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_stop_for_another_node_is_ignored() {
    let bus = MemoryBus::new();
    let node = common::test_node("n").start(&bus).await.unwrap();
    let c = Client::connect(&bus, "ctl", "").await.unwrap();
    c.context()
        .send("system", "other", json!({"cmd": "stop"}))
        .await
        .unwrap();
    assert!(c.context().request("n", "ping", json!({})).await.is_ok());
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_dropped_connection_publishes_its_will() {
    let bus = MemoryBus::new();
    let spec = |id: &str, will: Option<Outgoing>| SessionSpec {
        will,
        ..SessionSpec::new(id, vec![Subscription::new("announce", QoS::AtLeastOnce)])
    };
    let mut watcher = bus.connect(spec("w", None)).await.unwrap();
    let will = Outgoing {
        topic: "announce".into(),
        payload: "lost".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    let dying = bus.connect(spec("d", Some(will))).await.unwrap();
    drop(dying);
    match watcher.events.recv().await {
        Some(Event::Message { payload, .. }) => assert_eq!(&payload[..], b"lost"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn data_messages_carry_seq_and_reach_topic_handlers_in_order() {
    let bus = MemoryBus::new();
    let seen: Arc<Mutex<Vec<Envelope>>> = Arc::default();
    let sink = NodeBuilder::new("sink")
        .on_topic("meas", {
            let seen = seen.clone();
            move |env, _ctx| {
                let seen = seen.clone();
                async move { seen.lock().await.push(env) }
            }
        })
        .build()
        .start(&bus)
        .await
        .unwrap();
    let source = NodeBuilder::new("source")
        .build()
        .start(&bus)
        .await
        .unwrap();
    for i in 0..100 {
        let seq = source
            .context()
            .publish("meas", json!({"DC-measurement": i}))
            .await
            .unwrap();
        assert_eq!(seq, i);
    }
    let reserved = source
        .context()
        .publish("meas", json!({"seq": 1}))
        .await
        .unwrap_err();
    assert_eq!(
        reserved.to_string(),
        "`seq` is a reserved name and cannot be a parameter or data field"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = seen.lock().await;
    assert_eq!(seen.len(), 100);
    for (i, env) in seen.iter().enumerate() {
        assert_eq!(env.seq, Some(i as u64));
        assert_eq!(env.epoch, Some(source.context().epoch()));
        assert_eq!(env.fields["DC-measurement"], json!(i));
    }
    drop(seen);
    source.stop().await.unwrap();
    sink.stop().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_request_id_is_answered_once() {
    let bus = MemoryBus::new();
    let node = common::test_node("n").start(&bus).await.unwrap();
    let spec = SessionSpec::new("raw", vec![Subscription::new("reply", QoS::AtMostOnce)]);
    let mut raw = bus.connect(spec).await.unwrap();
    let req = br#"{"from":"raw","to":"n","request":"ping","requestid":"raw-1.5","timestamp":1.5}"#;
    for _ in 0..2 {
        raw.publisher
            .publish(Outgoing {
                topic: "request".into(),
                payload: req.to_vec().into(),
                qos: QoS::AtMostOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(1), raw.events.recv())
        .await
        .unwrap();
    assert!(matches!(first, Some(Event::Message { .. })));
    let second = tokio::time::timeout(Duration::from_millis(300), raw.events.recv()).await;
    assert!(second.is_err(), "the duplicate was answered too");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_gathering_from_everyone_hears_itself_once() {
    let bus = MemoryBus::new();
    let other = common::test_node("other").start(&bus).await.unwrap();
    let me = common::test_node("me").start(&bus).await.unwrap();
    let replies = me
        .context()
        .gather(
            "ping",
            json!({}),
            mqttcal_core::Gather {
                timeout: Duration::from_millis(300),
                expect: None,
            },
        )
        .await
        .unwrap();
    let mut from: Vec<&str> = replies.iter().map(|r| r.from.as_str()).collect();
    from.sort();
    assert_eq!(from, ["me", "other"]);
    assert_eq!(
        me.context()
            .request("me", "add", json!({"a": 1, "b": 2}))
            .await
            .unwrap(),
        json!({"sum": 3.0})
    );
    me.stop().await.unwrap();
    other.stop().await.unwrap();
}

#[tokio::test]
async fn a_shared_subscription_hands_each_message_to_one_member() {
    let bus = MemoryBus::new();
    let member = |id: &str| {
        SessionSpec::new(
            id,
            vec![Subscription::new("$share/g/meas", QoS::AtLeastOnce)],
        )
    };
    let mut a = bus.connect(member("a")).await.unwrap();
    let mut b = bus.connect(member("b")).await.unwrap();
    let mut everyone = bus
        .connect(SessionSpec::new(
            "c",
            vec![Subscription::new("meas", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    let p = bus.connect(SessionSpec::new("p", vec![])).await.unwrap();
    for i in 0..10 {
        p.publisher
            .publish(Outgoing {
                topic: "meas".into(),
                payload: format!("{i}").into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    let drain = |link: &mut mqttcal_core::transport::Link| {
        let mut n = 0;
        while let Ok(Event::Message { .. }) = link.events.try_recv() {
            n += 1;
        }
        n
    };
    let (na, nb, nc) = (drain(&mut a), drain(&mut b), drain(&mut everyone));
    assert_eq!((na + nb, nc), (10, 10), "a {na}, b {nb}, everyone {nc}");
    assert_eq!((na, nb), (5, 5), "in turn");
}

/// A `stop` request to every node is refused with the reason (a lab's bridge passes
/// requests, so a broadcast one would stop other labs' nodes); the node runs on.
#[tokio::test]
async fn a_stop_request_to_every_node_is_refused() {
    let bus = MemoryBus::new();
    let node = common::test_node("n").start(&bus).await.unwrap();
    let c = Client::connect(&bus, "ctl", "").await.unwrap();
    let replies = c
        .context()
        .gather(
            "stop",
            json!({}),
            mqttcal_core::Gather {
                timeout: Duration::from_secs(1),
                expect: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    let err = mqttcal_core::reply_result(replies[0].clone()).unwrap_err();
    assert!(err.to_string().contains("must name its node"), "{err}");
    assert!(c.context().request("n", "ping", json!({})).await.is_ok());
    node.stop().await.unwrap();
}
