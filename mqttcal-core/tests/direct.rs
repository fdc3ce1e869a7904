//! One request wakes one node: in the shared layout mqttcal peers send each other their
//! requests and replies on `request/<to>/<from>` and `reply/<to>/<from>` once they know
//! the peer reads there, while report-style peers keep the shared topics. Checked on a
//! real Mosquitto by a spy that reads every request and reply topic.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, test_node, transport};
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, Link, Outgoing, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::{CallError, Gather};
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::json;

/// A plain connection that reads every request and reply, on any topic.
async fn spy(url: &str) -> Link {
    let filters = ["request", "reply", "request/+/+", "reply/+/+"];
    transport(url)
        .connect(SessionSpec::new(
            "spy",
            filters
                .iter()
                .map(|f| Subscription::new(*f, QoS::AtMostOnce))
                .collect(),
        ))
        .await
        .unwrap()
}

/// What the spy read since last asked: messages per topic.
async fn seen(spy: &mut Link) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    while let Ok(Some(ev)) =
        tokio::time::timeout(Duration::from_millis(300), spy.events.recv()).await
    {
        if let Event::Message { topic, .. } = ev {
            *out.entry(topic).or_default() += 1;
        }
    }
    out
}

fn count(seen: &BTreeMap<String, usize>, topic: &str) -> usize {
    seen.get(topic).copied().unwrap_or(0)
}

/// A report-style peer: it reads `reply` only and never says `direct`.
async fn report_peer(url: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            "report-peer",
            vec![Subscription::new("reply", QoS::AtMostOnce)],
        ))
        .await
        .unwrap()
}

/// A request from the report-style peer to `to`, with `id` and `params`.
fn peer_request(to: &str, capability: &str, id: &str, params: serde_json::Value) -> Envelope {
    let mut env = Envelope::new("report-peer", to);
    env.request = Some(capability.into());
    env.requestid = Some(id.into());
    if let serde_json::Value::Object(fields) = params {
        env.fields = fields;
    }
    env
}

/// Publishes `env` on the shared `request` topic.
async fn ask(peer: &Link, env: &Envelope) {
    peer.publisher
        .publish(Outgoing {
            topic: "request".into(),
            payload: env.encode(usize::MAX).unwrap().into(),
            qos: QoS::AtMostOnce,
            retain: false,
        })
        .await
        .unwrap();
}

/// The reply to request `id` on the peer's `reply`, within 3 s.
async fn reply_to(peer: &mut Link, id: &str) -> Envelope {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(3), peer.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply to {id} on `reply`"))
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            let env = Envelope::decode(&payload, usize::MAX).unwrap();
            if env.requestid.as_deref() == Some(id) {
                return env;
            }
        }
    }
}

#[tokio::test]
async fn requests_and_replies_reach_only_their_addressee_once_the_peer_is_known() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut nodes = Vec::new();
    for i in 1..=4 {
        let node = test_node(&format!("calc-{i}"))
            .start(&transport(&url))
            .await
            .unwrap();
        nodes.push(node);
    }
    let mut spy = spy(&url).await;
    let c = client(&url, "tester").await;
    for _ in 0..3 {
        let sum = c
            .context()
            .request("calc-3", "add", json!({"a": 1, "b": 2}))
            .await
            .unwrap();
        assert_eq!(sum["sum"], 3.0);
    }
    let s = seen(&mut spy).await;
    // The first request goes to everyone (the client knew nothing of calc-3); its reply,
    // and everything after, to one reader alone.
    assert_eq!(count(&s, "request"), 1, "{s:?}");
    assert_eq!(count(&s, "request/calc-3/tester"), 2, "{s:?}");
    assert_eq!(count(&s, "reply"), 0, "{s:?}");
    assert_eq!(count(&s, "reply/tester/calc-3"), 3, "{s:?}");

    // A broadcast stays a broadcast; each answer goes to the caller alone.
    let replies = c
        .context()
        .request_envelopes(
            "*",
            "ping",
            Default::default(),
            Gather {
                timeout: Duration::from_secs(3),
                expect: Some(4),
            },
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 4);
    let s = seen(&mut spy).await;
    assert_eq!(count(&s, "request"), 1, "{s:?}");
    assert_eq!(count(&s, "reply"), 0, "{s:?}");
    for i in 1..=4 {
        assert_eq!(count(&s, &format!("reply/tester/calc-{i}")), 1, "{s:?}");
    }

    // A report-style peer (no `direct`) asks on the shared topic and is answered there.
    let mut peer = report_peer(&url).await;
    ask(
        &peer,
        &peer_request("calc-1", "add", "report-peer-1", json!({"a": 2, "b": 2})),
    )
    .await;
    let reply = reply_to(&mut peer, "report-peer-1").await;
    assert_eq!(reply.reply.unwrap()["sum"], 4.0);
    assert!(reply.direct, "the answer says calc-1 reads its own topic");
    for node in nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_name_taken_over_by_a_report_style_peer_is_asked_on_the_shared_topic_again() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let node = test_node("calc").start(&transport(&url)).await.unwrap();
    let c = client(&url, "tester").await;
    c.context()
        .request("calc", "ping", json!({}))
        .await
        .unwrap();
    node.stop().await.unwrap();

    // A report-style program now answers as `calc`, on the shared topics only.
    let peer = transport(&url)
        .connect(SessionSpec::new(
            "calc",
            vec![Subscription::new("request", QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let mut events = peer.events;
    let publisher = peer.publisher.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Event::Message { payload, .. } = ev else {
                continue;
            };
            let Ok(req) = Envelope::decode(&payload, usize::MAX) else {
                continue;
            };
            if req.to != "calc" {
                continue;
            }
            let mut reply = Envelope::new("calc", req.from.as_str());
            reply.requestid = req.requestid;
            reply.reply = Some(json!("pong"));
            let _ = publisher
                .publish(Outgoing {
                    topic: "reply".into(),
                    payload: reply.encode(usize::MAX).unwrap().into(),
                    qos: QoS::AtMostOnce,
                    retain: false,
                })
                .await;
        }
    });
    // The first call goes to calc's own topic, which nobody reads now: it times out...
    let first = c
        .context()
        .request_timeout("calc", "ping", json!({}), Duration::from_millis(500))
        .await;
    assert!(matches!(first, Err(CallError::Timeout { .. })), "{first:?}");
    // ...and the next goes to the shared topic, where the peer answers.
    let second = c
        .context()
        .request_timeout("calc", "ping", json!({}), Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(second, json!("pong"));
}

#[tokio::test]
async fn a_reply_goes_where_its_request_asked_whatever_was_said_meanwhile() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let node = test_node("calc").start(&transport(&url)).await.unwrap();
    // A report-style peer asks for something slow, on the shared topics.
    let mut peer = report_peer(&url).await;
    ask(
        &peer,
        &peer_request("calc", "sleep", "report-peer-1", json!({"ms": 300})),
    )
    .await;
    // Meanwhile someone claims, in the peer's name, that it reads its own topic.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut spoof = peer_request("calc", "ping", "report-peer-2", json!({}));
    spoof.direct = true;
    ask(&peer, &spoof).await;
    // The slow call is answered on `reply`, as its request asked.
    let reply = reply_to(&mut peer, "report-peer-1").await;
    assert!(reply.error.is_none(), "{reply:?}");
    node.stop().await.unwrap();
}
