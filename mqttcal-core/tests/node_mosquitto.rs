//! The node runtime against a real Mosquitto started by the test.

mod common;

use std::time::{Duration, Instant};

use common::{client, test_node, transport};
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{config::MqttConfig, CallError, ErrorCode, Gather};
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::json;

#[tokio::test]
async fn ping_and_map_reply_with_the_callers_request_id() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = test_node("calc")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let replies = c
        .context()
        .request_envelopes(
            "calc",
            "map",
            Default::default(),
            Gather {
                timeout: Duration::from_secs(3),
                expect: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    let r = &replies[0];
    assert!(r.requestid.as_deref().unwrap().starts_with("tester-"));
    let ids: Vec<String> = r
        .reply
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["ping", "map", "stop", "add", "sleep", "fail"]);
    let pong = c
        .context()
        .request("calc", "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(
        pong["sdk"].as_str().unwrap().split(' ').next(),
        Some("mqttcal-rust")
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn typed_capability_replies_and_errors_carry_codes() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = test_node("calc")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let ctx = c.context();
    let v = ctx
        .request("calc", "add", json!({"a": 1.5, "b": 2}))
        .await
        .unwrap();
    assert_eq!(v, json!({"sum": 3.5}));

    let err = ctx
        .request("calc", "add", json!({"a": 1.5, "b": "two"}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::InvalidParams);
    assert!(error.message.contains("`b`"), "{}", error.message);

    let err = ctx
        .request("calc", "add", json!({"a": 1, "b": 2, "c": 3}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::InvalidParams);
    assert!(error.message.contains("`c`"), "{}", error.message);

    let err = ctx
        .request("calc", "multiply", json!({}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::UnknownCapability);

    let err = ctx.request("calc", "fail", json!({})).await.unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::Hardware);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_long_capability_does_not_delay_ping_or_map() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = test_node("slow")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let ctx = c.context().clone();
    let long = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            ctx.request_timeout("slow", "sleep", json!({"ms": 3000}), Duration::from_secs(6))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    ctx.request("slow", "ping", json!({})).await.unwrap();
    ctx.request("slow", "map", json!({})).await.unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "ping+map took {took:?} during a long call"
    );
    assert!(!long.is_finished());
    assert_eq!(long.await.unwrap().unwrap(), json!("slept"));
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_stop_during_a_long_call_cancels_it_and_says_bye() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = test_node("slow")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let ctx = c.context().clone();
    let long = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            ctx.request_timeout(
                "slow",
                "sleep",
                json!({"ms": 10000}),
                Duration::from_secs(10),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ctx.request("slow", "stop", json!({})).await.unwrap(),
        json!("stopping")
    );
    let err = long.await.unwrap().unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(error.code, ErrorCode::Cancelled);
    tokio::time::timeout(Duration::from_secs(5), node.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn broadcast_gathers_one_reply_per_node() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let a = test_node("a")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let b = test_node("b")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let replies = c
        .context()
        .gather(
            "ping",
            json!({}),
            Gather {
                timeout: Duration::from_secs(3),
                expect: Some(2),
            },
        )
        .await
        .unwrap();
    let mut from: Vec<&str> = replies.iter().map(|r| r.from.as_str()).collect();
    from.sort();
    assert_eq!(from, ["a", "b"]);
    // `add` to everyone: both have it; an unknown capability broadcast stays silent.
    let silent = c
        .context()
        .gather(
            "nope",
            json!({}),
            Gather {
                timeout: Duration::from_millis(300),
                expect: None,
            },
        )
        .await
        .unwrap();
    assert!(silent.is_empty());
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn dispatch_collects_partial_results_from_sub_nodes() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let sub = test_node("sub")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let collector = mqttcal_core::NodeBuilder::new("collector")
        .capability(
            "sum_all",
            "Ask sub-nodes to add",
            |p: common::Add, ctx| async move {
                let r = ctx
                    .dispatch(
                        &["sub", "missing"],
                        "add",
                        json!({"a": p.a, "b": p.b}),
                        Duration::from_millis(500),
                    )
                    .await?;
                Ok::<_, mqttcal_core::NodeError>(r)
            },
        )
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let v = c
        .context()
        .request("collector", "sum_all", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(v["sub"], json!({"sum": 3.0}));
    assert_eq!(v["missing"]["error"]["code"], "timeout");
    collector.stop().await.unwrap();
    sub.stop().await.unwrap();
}

#[tokio::test]
async fn nodes_reconnect_and_answer_after_a_broker_restart() {
    let mut broker = Mosquitto::start(BrokerKind::Stock);
    let node = test_node("survivor")
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    broker.restart();
    let t = Instant::now();
    let c = client(&broker.url(), "tester").await;
    loop {
        match c
            .context()
            .request_timeout("survivor", "ping", json!({}), Duration::from_millis(250))
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(
                t.elapsed() < Duration::from_secs(5),
                "no answer 5 s after restart: {e}"
            ),
        }
    }
    node.stop().await.unwrap();
}

fn tls_config(broker: &Mosquitto, password: &str, ca: std::path::PathBuf) -> MqttConfig {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(&broker.url()).unwrap();
    cfg.ca_cert = Some(ca);
    cfg.username = Some(Mosquitto::USER.into());
    cfg.password = Some(password.into());
    cfg
}

#[tokio::test]
async fn tls_with_password_connects_and_failures_say_which() {
    let broker = Mosquitto::start(BrokerKind::Tls);
    let good = MqttTransport::new(tls_config(&broker, Mosquitto::PASSWORD, broker.ca_cert()));
    let node = test_node("secure").start(&good).await.unwrap();
    let c = mqttcal_core::Client::connect(&good, "tester", "")
        .await
        .unwrap();
    assert_eq!(
        c.context()
            .request("secure", "add", json!({"a": 1, "b": 1}))
            .await
            .unwrap(),
        json!({"sum": 2.0})
    );

    let wrong_pw = MqttTransport::new(tls_config(&broker, "wrong", broker.ca_cert()));
    let err = test_node("x")
        .start(&wrong_pw)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("user name or password"), "{err}");

    let untrusted = MqttTransport::new(tls_config(
        &broker,
        Mosquitto::PASSWORD,
        broker.untrusted_ca(),
    ));
    let err = test_node("y")
        .start(&untrusted)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not trusted"), "{err}");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_is_reported_after_the_connect_timeout() {
    let port = mqttcal_testkit::free_port();
    let t = transport(&format!("mqtt://127.0.0.1:{port}"));
    let err = test_node("lonely").start(&t).await.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot reach the broker at mqtt://127.0.0.1:"),
        "{err}"
    );
}

/// A sink with a wide receive window, back to a session holding more messages than the
/// transport's event channel: the broker sends them before the SUBACK that completes the
/// connection, and the connection must still complete, with every message delivered.
#[tokio::test]
async fn a_large_stored_session_does_not_hold_up_the_reconnection() {
    use mqttcal_core::transport::{Event, Outgoing, QoS, SessionSpec, Subscription, Transport};
    let broker = Mosquitto::start(BrokerKind::Production);
    let t = transport(&broker.url());
    let sink_spec = SessionSpec {
        clean_session: false,
        manual_acks: true,
        receive_maximum: Some(4000),
        ..SessionSpec::new(
            "wide-sink",
            vec![Subscription::new("meas", QoS::AtLeastOnce)],
        )
    };
    let sink = t.connect(sink_spec.clone()).await.unwrap();
    sink.publisher.disconnect().await.unwrap();
    let source = t
        .connect(SessionSpec::new("wide-source", vec![]))
        .await
        .unwrap();
    let total = 3000;
    for i in 0..total {
        let msg = Outgoing {
            topic: "meas".into(),
            payload: i.to_string().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        };
        source.publisher.publish(msg).await.unwrap();
    }
    // Wait until the broker holds them all for the sink.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sink = tokio::time::timeout(Duration::from_secs(15), t.connect(sink_spec))
        .await
        .expect("the reconnection completes")
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < total {
        let ev = tokio::time::timeout(Duration::from_secs(5), sink.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {total} delivered", seen.len()))
            .unwrap();
        if let Event::Message { payload, ack, .. } = ev {
            seen.insert(String::from_utf8(payload.to_vec()).unwrap());
            ack.unwrap().ack();
        }
    }
    assert_eq!(seen.len(), total);
}

/// A node that stops while messages stream towards it must leave with `bye` alone: closing
/// the socket with unread data sends a TCP reset, which can make the broker drop the
/// DISCONNECT still in its buffer and publish the node's will ("lost") after the `bye`.
#[tokio::test]
async fn a_node_stopped_while_messages_arrive_is_never_reported_lost() {
    use mqttcal_core::transport::{Event, Outgoing, QoS, SessionSpec, Subscription, Transport};
    use mqttcal_core::NodeBuilder;
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let t = transport(&broker.url());
    let mut watcher = t
        .connect(SessionSpec::new(
            "watcher",
            vec![Subscription::new("announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    let source = t.connect(SessionSpec::new("source", vec![])).await.unwrap();
    let flood = tokio::spawn(async move {
        for i in 0u64.. {
            let msg = Outgoing {
                topic: "stream".into(),
                payload: format!("{{\"sender\":\"source\",\"n\":{i}}}").into(),
                qos: QoS::AtMostOnce,
                retain: false,
            };
            if source.publisher.publish(msg).await.is_err() {
                return;
            }
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let rounds = 100;
    for _ in 0..rounds {
        let node = NodeBuilder::new("listener")
            .on_topic("stream", |_, _| async {})
            .build()
            .start(&t)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        node.stop().await.unwrap();
    }
    flood.abort();
    // Every will the broker published would be on `announce` by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut byes, mut lost) = (0, 0);
    while let Ok(Event::Message { payload, .. }) = watcher.events.try_recv() {
        let text = String::from_utf8_lossy(&payload);
        if text.contains("\"lost\"") {
            lost += 1;
        } else if text.contains("\"bye\"") {
            byes += 1;
        }
    }
    assert_eq!(byes, rounds, "every stop says bye");
    assert_eq!(lost, 0, "{lost} of {rounds} stops were reported as lost");
}

/// A message sent with `publish_first` overtakes those already waiting in the queue: what
/// keeps `ping` fast while a node works through a flood of replies. Messages go straight
/// to the socket while nothing waits, so the flood first fills what the kernel holds for a
/// broker that does not read (here one paused: some 256 kB), which nothing can overtake;
/// the rest waits in the queue.
#[tokio::test(flavor = "current_thread")]
async fn a_message_sent_first_overtakes_the_queue() {
    use mqttcal_core::transport::{Event, Outgoing, QoS, SessionSpec, Subscription, Transport};
    let broker = Mosquitto::start(BrokerKind::Stock);
    let t = transport(&broker.url());
    let mut sink = t
        .connect(SessionSpec::new(
            "sink",
            vec![Subscription::new("lane", QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let source = t.connect(SessionSpec::new("source", vec![])).await.unwrap();
    let msg = |text: &str| Outgoing {
        topic: "lane".into(),
        payload: text.to_owned().into(),
        qos: QoS::AtMostOnce,
        retain: false,
    };
    // The broker reads nothing while the flood is queued, so the kernel holds what it can
    // and the rest waits in our queue.
    signal(&broker, "-STOP");
    // Queued without yielding, so the connection's task has sent none of them yet.
    const QUEUED: usize = 2000;
    const SIZE: usize = 1000;
    for i in 0..QUEUED {
        source
            .publisher
            .try_publish(msg(&format!("{i:0SIZE$}")))
            .unwrap();
    }
    source.publisher.publish_first(msg("first")).unwrap();
    signal(&broker, "-CONT");
    let mut order = Vec::new();
    while order.len() < QUEUED + 1 {
        let ev = tokio::time::timeout(Duration::from_secs(10), sink.events.recv())
            .await
            .expect("every message arrives")
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            order.push(String::from_utf8(payload.to_vec()).unwrap());
        }
    }
    let at = order.iter().position(|m| m == "first").unwrap();
    let in_kernel = 400 * 1024 / SIZE;
    assert!(
        at < in_kernel,
        "the message sent first arrives ahead of the queue, behind at most what the kernel held (it came {at}th of {})",
        order.len()
    );
    let queued: Vec<usize> = order
        .iter()
        .filter(|m| *m != "first")
        .map(|m| m.parse().unwrap())
        .collect();
    assert!(
        queued.windows(2).all(|w| w[0] < w[1]),
        "the queue keeps its order"
    );
}

/// A call whose request waits behind its own node's full outgoing queue (a flood of data
/// while the broker reads nothing) still ends by its timeout.
#[tokio::test]
async fn a_call_behind_a_full_queue_ends_by_its_timeout() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let node = test_node("calc").start(&transport(&url)).await.unwrap();
    let caller = test_node("caller").start(&transport(&url)).await.unwrap();
    signal(&broker, "-STOP");
    let ctx = caller.context().clone();
    let flood = tokio::spawn(async move {
        let pad = "y".repeat(4000);
        for _ in 0..8000 {
            if ctx.publish("meas", json!({ "pad": pad })).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = Instant::now();
    let call =
        caller
            .context()
            .request_timeout("calc", "ping", json!({}), Duration::from_millis(200));
    let result = tokio::time::timeout(Duration::from_secs(6), call).await;
    let took = start.elapsed();
    signal(&broker, "-CONT");
    flood.abort();
    assert!(
        matches!(result, Ok(Err(CallError::Timeout { .. }))),
        "a timeout, not {result:?}"
    );
    assert!(
        took < Duration::from_millis(700),
        "a 200 ms call took {took:?}"
    );
    node.stop().await.unwrap();
}

/// A timeout too long to add to the clock is taken as a very long one, not a panic.
#[tokio::test]
async fn a_huge_timeout_is_accepted() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let node = test_node("calc").start(&transport(&url)).await.unwrap();
    let c = client(&url, "huge").await;
    let pong = c
        .context()
        .request_timeout("calc", "ping", json!({}), Duration::from_secs(u64::MAX / 2))
        .await;
    assert!(pong.is_ok(), "{pong:?}");
    c.close().await;
    node.stop().await.unwrap();
}

/// Sends `sig` (`-STOP` pauses the broker: it reads nothing; `-CONT` resumes it).
fn signal(broker: &Mosquitto, sig: &str) {
    let pid = broker.pid().expect("the broker runs").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}
