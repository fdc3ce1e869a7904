//! What a hostile or careless peer cannot do to a node, against a real Mosquitto: stall it,
//! leave a request unanswered, get error replies reflected by a broadcast, or feed a node
//! its own output.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, transport};
use mqttcal_core::transport::{Event, Link, Outgoing, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::{CallError, ErrorCode, NoParams, NodeBuilder, NodeError};
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::{json, Value};

/// A plain MQTT connection that publishes raw payloads and reads `reply`.
async fn raw(url: &str, id: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            id,
            vec![Subscription::new("reply", QoS::AtMostOnce)],
        ))
        .await
        .unwrap()
}

async fn publish(link: &Link, topic: &str, payload: &str, qos: QoS) {
    link.publisher
        .publish(Outgoing {
            topic: topic.into(),
            payload: payload.to_owned().into(),
            qos,
            retain: false,
        })
        .await
        .unwrap();
}

/// The next reply on `link` within `wait`, as JSON.
async fn next_reply(link: &mut Link, wait: Duration) -> Option<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, link.events.recv()).await {
            Ok(Some(Event::Message { payload, .. })) => {
                return Some(serde_json::from_slice(&payload).unwrap())
            }
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

fn sleeper(name: &str) -> NodeBuilder {
    NodeBuilder::new(name)
        .capability("sleep", "Sleep for `ms` milliseconds", |p: common::Sleep, _ctx| async move {
            tokio::time::sleep(Duration::from_millis(p.ms)).await;
            Ok::<_, NodeError>("slept")
        })
        .concurrency("sleep", 1)
        .capability("fail", "Always fails", |_: NoParams, _ctx| async {
            Err::<(), _>(NodeError::hardware("no instrument"))
        })
        .capability("big", "A reply of `ms` kibibytes", |p: common::Sleep, _ctx| async move {
            Ok::<_, NodeError>("x".repeat(p.ms as usize * 1024))
        })
        .max_message_size(64 * 1024)
}

#[tokio::test]
async fn a_second_call_of_a_one_at_a_time_capability_is_busy_and_names_the_first() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = sleeper("dmm")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let first = {
        let ctx = c.context().clone();
        tokio::spawn(async move { ctx.request("dmm", "sleep", json!({"ms": 1500})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let err = c
        .context()
        .request("dmm", "sleep", json!({"ms": 10}))
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "busy is answered at once"
    );
    let CallError::Remote { error, .. } = err else {
        panic!("expected busy, got {err}")
    };
    assert_eq!(error.code, ErrorCode::Busy);
    assert!(error.message.contains("from tester"), "{}", error.message);
    let running = &error.details.as_ref().unwrap()["running"];
    assert!(running[0]["requestid"]
        .as_str()
        .unwrap()
        .starts_with("tester-"));
    // Other capabilities and the built-ins are not held up.
    let pong = c.context().request("dmm", "ping", json!({})).await.unwrap();
    assert_eq!(pong["running"], 1);
    assert_eq!(pong["losses"]["busy"], 1);
    assert_eq!(first.await.unwrap().unwrap(), json!("slept"));
    assert_eq!(
        c.context()
            .request("dmm", "sleep", json!({"ms": 1}))
            .await
            .unwrap(),
        json!("slept"),
        "free again once the first call ended"
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn the_node_limit_refuses_calls_beyond_it_and_keeps_room_for_other_capabilities() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let nap = |p: common::Sleep, _ctx| async move {
        tokio::time::sleep(Duration::from_millis(p.ms)).await;
        Ok::<_, NodeError>(())
    };
    let node = NodeBuilder::new("n")
        .capability("sleep", "Sleep", nap)
        .capability("nap", "Sleep too", nap)
        .max_calls(4)
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    let call = |cap: &'static str| {
        let ctx = c.context().clone();
        tokio::spawn(async move { ctx.request("n", cap, json!({"ms": 3000})).await })
    };
    let running = |n: u64| {
        let ctx = c.context().clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let pong = ctx.request("n", "ping", json!({})).await.unwrap();
                if pong["running"] == n {
                    return;
                }
                assert!(Instant::now() < deadline, "{pong}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // A flood of one capability takes three of the four calls, not the fourth...
    let sleeps: Vec<_> = (0..6).map(|_| call("sleep")).collect();
    running(3).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeps.iter().filter(|s| s.is_finished()).count() < 3 {
        assert!(
            Instant::now() < deadline,
            "three sleeps are refused at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...which another capability still gets...
    let nap = call("nap");
    running(4).await;
    // ...and past the node's limit every capability is busy.
    let over = c
        .context()
        .request("n", "nap", json!({"ms": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&over, CallError::Remote { error, .. } if error.code == ErrorCode::Busy && error.message.contains("the node runs 4 calls")),
        "{over}"
    );
    let mut ok = 0;
    let mut kept = 0;
    for sleep in sleeps {
        match sleep.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CallError::Remote { error, .. })
                if error.code == ErrorCode::Busy
                    && error.message.contains("kept for its other capabilities") =>
            {
                kept += 1
            }
            Err(e) => panic!("every call is answered: {e}"),
        }
    }
    assert_eq!((ok, kept), (3, 3));
    nap.await.unwrap().expect("the other capability ran");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_request_that_names_its_sender_and_id_is_answered() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = sleeper("dmm")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let mut link = raw(&broker.url(), "raw").await;
    // A number as request id: answered, the id echoed as it came.
    publish(
        &link,
        "request",
        r#"{"from":"raw","to":"dmm","request":"sleep","requestid":42,"ms":1}"#,
        QoS::AtMostOnce,
    )
    .await;
    let r = next_reply(&mut link, Duration::from_secs(3))
        .await
        .expect("a reply");
    assert_eq!(r["requestid"], json!(42));
    assert_eq!(r["to"], "raw");
    assert_eq!(r["error"]["code"], "invalid_request");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requestid"),
        "{r}"
    );
    // A repeated name: refused, and said so.
    publish(
        &link,
        "request",
        r#"{"from":"raw","to":"dmm","request":"sleep","requestid":"r-1","ms":1,"ms":2}"#,
        QoS::AtMostOnce,
    )
    .await;
    let r = next_reply(&mut link, Duration::from_secs(3))
        .await
        .expect("a reply");
    assert_eq!(r["requestid"], "r-1");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("twice"),
        "{r}"
    );
    // Nested deeper than the parser goes: its sender and id are still read, and answered.
    let deep = format!(
        r#"{{"from":"raw","to":"dmm","request":"sleep","body":{}{},"requestid":"r-2"}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    publish(&link, "request", &deep, QoS::AtMostOnce).await;
    let r = next_reply(&mut link, Duration::from_secs(3))
        .await
        .expect("a reply to a deeply nested request");
    assert_eq!(r["requestid"], "r-2");
    assert_eq!(r["error"]["code"], "invalid_request", "{r}");
    // To `*`, or with no sender: nobody to answer, nothing sent.
    publish(
        &link,
        "request",
        r#"{"from":"raw","to":"*","request":"sleep","requestid":43}"#,
        QoS::AtMostOnce,
    )
    .await;
    publish(
        &link,
        "request",
        r#"{"to":"dmm","requestid":44}"#,
        QoS::AtMostOnce,
    )
    .await;
    assert_eq!(
        next_reply(&mut link, Duration::from_millis(700)).await,
        None
    );
    let c = client(&broker.url(), "tester").await;
    let pong = c.context().request("dmm", "ping", json!({})).await.unwrap();
    assert_eq!(pong["losses"]["malformed"], 2, "{pong}");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_reply_too_large_to_send_becomes_a_too_large_error() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let node = sleeper("dmm")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let c = client(&broker.url(), "tester").await;
    assert_eq!(
        c.context()
            .request("dmm", "big", json!({"ms": 1}))
            .await
            .unwrap()
            .as_str()
            .map(str::len),
        Some(1024)
    );
    let t0 = Instant::now();
    let err = c
        .context()
        .request("dmm", "big", json!({"ms": 100}))
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "not a timeout");
    let CallError::Remote { error, .. } = err else {
        panic!("expected too_large, got {err}")
    };
    assert_eq!(error.code, ErrorCode::TooLarge);
    assert_eq!(error.details.as_ref().unwrap()["limit"], 64 * 1024);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_broadcast_never_gets_error_replies() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let a = sleeper("a")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let b = sleeper("b")
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let mut victim = raw(&broker.url(), "victim").await;
    let spoof = raw(&broker.url(), "attacker").await;
    // Spoofed as the victim, to every node: a failing call and a bad one.
    for (i, body) in [
        r#""request":"fail""#,
        r#""request":"sleep","bad":1"#,
        r#""request":"nosuch""#,
    ]
    .iter()
    .enumerate()
    {
        let msg = format!(r#"{{"from":"victim","to":"*",{body},"requestid":"v-{i}"}}"#);
        publish(&spoof, "request", &msg, QoS::AtMostOnce).await;
    }
    assert_eq!(
        next_reply(&mut victim, Duration::from_millis(800)).await,
        None
    );
    // A success still answers a broadcast.
    publish(
        &spoof,
        "request",
        r#"{"from":"victim","to":"*","request":"sleep","requestid":"v-ok","ms":1}"#,
        QoS::AtMostOnce,
    )
    .await;
    let r = next_reply(&mut victim, Duration::from_secs(3))
        .await
        .expect("a reply");
    assert_eq!(r["reply"], "slept");
    let c = client(&broker.url(), "tester").await;
    let pong = c.context().request("a", "ping", json!({})).await.unwrap();
    assert_eq!(pong["losses"]["withheld"], 2, "{pong}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_flooded_topic_handler_sheds_and_the_node_still_answers() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let heard = Arc::new(AtomicU64::new(0));
    let seen = heard.clone();
    let node = NodeBuilder::new("slow")
        .on_topic("meas", move |_env, _ctx| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                // A handler stuck on its first message.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        })
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let flood = raw(&broker.url(), "flood").await;
    let c = client(&broker.url(), "tester").await;
    let sender = tokio::spawn(async move {
        for i in 0..5000 {
            let msg = format!(r#"{{"from":"flood","to":"*","seq":{i},"v":1}}"#);
            publish(&flood, "meas", &msg, QoS::AtLeastOnce).await;
        }
        flood
    });
    let mut worst = Duration::ZERO;
    while !sender.is_finished() {
        let t0 = Instant::now();
        c.context()
            .request("slow", "ping", json!({}))
            .await
            .unwrap();
        worst = worst.max(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _flood = sender.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pong = c
        .context()
        .request("slow", "ping", json!({}))
        .await
        .unwrap();
    let shed = pong["losses"]["shed"].as_u64().unwrap_or(0);
    assert_eq!(heard.load(Ordering::Relaxed), 1);
    assert!(shed >= 5000 - 1 - 1024 - 1024, "shed {shed}: {pong}");
    assert!(
        worst < Duration::from_secs(1),
        "ping took {worst:?} during the flood"
    );
    tokio::time::timeout(Duration::from_secs(2), node.stop())
        .await
        .expect("stops at once, the stuck handler cancelled")
        .unwrap();
}

#[tokio::test]
async fn a_node_does_not_hear_its_own_publications_unless_it_asks() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let count = |hear_own: bool| {
        let heard = Arc::new(AtomicU64::new(0));
        let seen = heard.clone();
        let mut b = NodeBuilder::new(if hear_own { "echoer" } else { "plain" }).on_topic(
            "meas",
            move |_env, _ctx| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
        if hear_own {
            b = b.hear_own("meas");
        }
        (b.build(), heard)
    };
    let (plain, plain_heard) = count(false);
    let (echoer, echo_heard) = count(true);
    let t = transport(&broker.url());
    let plain = plain.start(&t).await.unwrap();
    let echoer = echoer.start(&t).await.unwrap();
    plain
        .context()
        .publish("meas", json!({"v": 1}))
        .await
        .unwrap();
    echoer
        .context()
        .publish("meas", json!({"v": 2}))
        .await
        .unwrap();
    // Another connection speaking in `plain`'s name is filtered by the runtime too, so a
    // broker that ignores "no local" cannot feed a node its own output.
    let spoof = raw(&broker.url(), "spoof").await;
    publish(
        &spoof,
        "meas",
        r#"{"from":"plain","to":"*","v":3}"#,
        QoS::AtLeastOnce,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        plain_heard.load(Ordering::Relaxed),
        1,
        "only echoer's reading"
    );
    assert_eq!(
        echo_heard.load(Ordering::Relaxed),
        3,
        "its own, plain's and the spoof"
    );
    plain.stop().await.unwrap();
    echoer.stop().await.unwrap();
}
