//! Production mode: the addressed topic layout on Mosquitto with TLS, a password file and the
//! shipped ACL (`deploy/mosquitto/acl`), datad on PostgreSQL. Nobody speaks in another's
//! name, reads another's replies, or stops what it may not.

mod common;

use std::time::Duration;

use common::tls;
use mqttcal_core::topics::Layout;
use mqttcal_core::transport::{
    Event, Link, Outgoing, QoS, SessionSpec, Subscription, Transport, TransportError,
};
use mqttcal_core::{CallError, Client, ErrorCode, NodeBuilder, NodeError, NodeHandle};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

/// The broker over TLS as `user` (anonymous with `None`).
/// A raw connection logged in as `user` (its client id asked for: `client_id`), reading
/// `filters`.
async fn raw(broker: &Mosquitto, user: &str, client_id: &str, filters: &[&str]) -> Link {
    tls(broker, Some(user))
        .connect(SessionSpec::new(
            client_id,
            filters
                .iter()
                .map(|f| Subscription::new(*f, QoS::AtLeastOnce))
                .collect(),
        ))
        .await
        .unwrap()
}

async fn publish(link: &Link, topic: &str, body: Value) {
    link.publisher
        .publish(Outgoing {
            topic: topic.into(),
            payload: serde_json::to_vec(&body).unwrap().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        })
        .await
        .unwrap();
}

/// Every message `link` receives within `wait`, as (topic, envelope).
async fn drain(link: &mut Link, wait: Duration) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Some(ev)) = tokio::time::timeout_at(end, link.events.recv()).await {
        if let Event::Message { topic, payload, .. } = ev {
            got.push((
                topic,
                serde_json::from_slice(&payload).unwrap_or(Value::Null),
            ));
        }
    }
    got
}

/// A stand-in for labd: publishes readings on request, and sleeps.
fn fake_labd() -> NodeBuilder {
    NodeBuilder::new("labd")
        .layout(Layout::Addressed)
        .capability(
            "publish",
            "Publish one reading",
            |_: mqttcal_core::NoParams, ctx| async move {
                ctx.publish("meas", json!({"DC-measurement": 10.0, "src": ["Z1"]}))
                    .await
                    .map_err(|e| NodeError::internal(e.to_string()))
            },
        )
}

async fn person(broker: &Mosquitto, login: &str) -> Client {
    Client::connect_as(
        &tls(broker, Some(login)),
        NodeBuilder::new(login).layout(Layout::Addressed),
    )
    .await
    .unwrap()
}

async fn start(broker: &Mosquitto, b: NodeBuilder, login: &str) -> NodeHandle {
    b.build().start(&tls(broker, Some(login))).await.unwrap()
}

#[tokio::test]
async fn anonymous_and_wrong_passwords_are_refused_and_a_client_id_cannot_be_taken_over() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let err = tls(&broker, None)
        .connect(SessionSpec::new("nobody", vec![]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::NotAuthorized { .. } | TransportError::BadCredentials { .. }
        ),
        "{err}"
    );
    let labd = start(&broker, fake_labd(), "labd").await;
    // mallory asks for labd's client id: the broker gives it mallory's login instead, and
    // labd's session stays.
    let _m = raw(&broker, "mallory", "labd", &[]).await;
    let alice = person(&broker, "alice").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pong = alice
        .context()
        .request("labd", "ping", json!({}))
        .await
        .unwrap();
    assert!(pong["uptime"].as_f64().unwrap() > 0.0);
    assert!(broker.log().contains("as mallory"), "{}", broker.log());
    // A node whose name is not its login does not start.
    let err = NodeBuilder::new("datad")
        .layout(Layout::Addressed)
        .build()
        .start(&tls(&broker, Some("mallory")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("logs in under the name"), "{err}");
    labd.stop().await.unwrap();
}

#[tokio::test]
async fn only_the_allowed_logins_stop_a_node() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let labd = start(&broker, fake_labd(), "labd").await;
    let operator = person(&broker, "operator").await;
    // A stop request from the operator: refused by the node, and said so.
    let err = operator
        .context()
        .request("labd", "stop", json!({}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("expected forbidden, got {err}")
    };
    assert_eq!(error.code, ErrorCode::Forbidden);
    // The report's stop message, from the operator: the ACL does not deliver it; and one
    // claiming to be admin on the operator's own topic is dropped by the node.
    operator
        .context()
        .send("system", "*", json!({"cmd": "stop"}))
        .await
        .unwrap();
    let m = raw(&broker, "operator", "operator-raw", &[]).await;
    publish(
        &m,
        "system/labd/operator",
        json!({"from": "admin", "to": "labd", "cmd": "stop"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pong = operator
        .context()
        .request("labd", "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(pong["losses"]["forbidden"], 1, "{pong}");
    // The admin may.
    let admin = person(&broker, "admin").await;
    admin
        .context()
        .send("system", "labd", json!({"cmd": "stop"}))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), labd.wait())
        .await
        .expect("the admin's stop stops labd")
        .unwrap();
}

#[tokio::test]
async fn nobody_reads_another_clients_requests_or_replies_or_forges_one() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let labd = start(&broker, fake_labd(), "labd").await;
    // mallory reads everything it can, and tries to speak as labd to alice.
    let mut spy = raw(&broker, "mallory", "mallory", &["#"]).await;
    let alice = start(
        &broker,
        NodeBuilder::new("alice").layout(Layout::Addressed),
        "alice",
    )
    .await;
    let reply = alice
        .context()
        .request("labd", "ping", json!({}))
        .await
        .unwrap();
    assert!(reply["uptime"].is_number());
    let forged =
        json!({"from": "labd", "to": "alice", "requestid": "alice-1", "reply": {"ok": true}});
    publish(&spy, "reply/alice/labd", forged.clone()).await; // refused by the ACL
    publish(&spy, "reply/alice/mallory", forged).await; // dropped by alice: not from labd
    let seen = drain(&mut spy, Duration::from_millis(700)).await;
    let leaked: Vec<&String> = seen
        .iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("request/") || t.starts_with("reply/"))
        .collect();
    assert!(leaked.is_empty(), "mallory read {leaked:?}");
    assert!(
        seen.iter().any(|(t, _)| t == "announce/alice"),
        "mallory does read what is public: {seen:?}"
    );
    let admin = person(&broker, "admin").await;
    let pong = admin
        .context()
        .request("alice", "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(pong["losses"]["spoofed"], 1, "{pong}");
    labd.stop().await.unwrap();
    alice.stop().await.unwrap();
}

#[tokio::test]
async fn readings_and_heartbeats_in_labds_name_from_anyone_else_are_not_stored_or_counted() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("production"))
        .await
        .unwrap();
    let config = mqttcal_nodes::datad::DatadConfig::default();
    let datad = start(
        &broker,
        mqttcal_nodes::datad::node("datad", &config, store).layout(Layout::Addressed),
        "datad",
    )
    .await;
    let labd = start(&broker, fake_labd(), "labd").await;
    let admin = person(&broker, "admin").await;
    admin
        .context()
        .request("labd", "publish", json!({}))
        .await
        .unwrap();
    let epoch = labd.context().epoch();
    let mallory = raw(&broker, "mallory", "mallory", &[]).await;
    let reading = |seq: u64| json!({"from": "labd", "to": "*", "epoch": epoch, "seq": seq, "DC-measurement": 999.0, "src": ["Z1"]});
    let heartbeat = json!({"from": "labd", "to": "*", "epoch": epoch, "message": "heartbeat", "seqs": {"meas": 1_000_000_000_000_000_000u64}});
    for topic in ["meas/labd", "meas/mallory"] {
        publish(&mallory, topic, reading(1)).await;
    }
    for topic in ["announce/labd", "announce/mallory"] {
        publish(&mallory, topic, heartbeat.clone()).await;
    }
    // labd's real next reading is stored, not discarded as a duplicate of the forgery.
    admin
        .context()
        .request("labd", "publish", json!({}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows = admin
        .context()
        .request("datad", "query", json!({"standard": "Z1"}))
        .await
        .unwrap();
    let values: Vec<f64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [10.0, 10.0], "{rows}");
    let stats = admin
        .context()
        .request("datad", "stats", json!({}))
        .await
        .unwrap();
    assert_eq!(
        stats["missing"]
            .get("labd")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        0,
        "{stats}"
    );
    assert_eq!(stats["stored"], 2, "{stats}");
    labd.stop().await.unwrap();
    datad.stop().await.unwrap();
}

#[tokio::test]
async fn a_certificate_step_names_only_the_login_that_sends_it() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("steps"))
        .await
        .unwrap();
    let config = mqttcal_nodes::datad::DatadConfig::default();
    let _datad = start(
        &broker,
        mqttcal_nodes::datad::node("datad", &config, store).layout(Layout::Addressed),
        "datad",
    )
    .await;
    let tpld = mqttcal_nodes::tpld::node("tpld", mqttcal_nodes::tpld::TpldConfig::default())
        .unwrap()
        .layout(Layout::Addressed);
    let _tpld = start(&broker, tpld, "tpld").await;
    let alice = person(&broker, "alice").await;
    // alice cannot review or authorise in bob's name...
    for step in ["review", "authorise"] {
        let err = alice
            .context()
            .request("tpld", step, json!({"job": "J-404", "by": "bob"}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Remote { error, .. } if error.code == ErrorCode::Forbidden),
            "{step}: {err}"
        );
    }
    // ...and in her own the step goes on (to datad, which knows no such job).
    let err = alice
        .context()
        .request("tpld", "review", json!({"job": "J-404", "by": "alice"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Remote { error, .. } if error.code != ErrorCode::Forbidden && error.message.contains("J-404")),
        "{err}"
    );
    // Through ctrld the same holds: ctrld forwards a step only in its caller's name, and
    // tpld believes ctrld about it.
    let policy = mqttcal_nodes::ctrld::Policy::from_yaml(
        "roles:\n  reviewer: ['tpld.review']\nusers:\n  alice: reviewer\n",
    )
    .unwrap();
    let config = mqttcal_nodes::ctrld::CtrldConfig {
        policy: Some(policy),
        policy_file: None,
    };
    let ctrld = mqttcal_nodes::ctrld::node("ctrld", config)
        .unwrap()
        .layout(Layout::Addressed);
    let _ctrld = start(&broker, ctrld, "ctrld").await;
    let through = |by: &'static str| {
        let ctx = alice.context().clone();
        async move {
            ctx.request(
                "ctrld",
                "call",
                json!({"node": "tpld", "capability": "review", "params": {"job": "J-404", "by": by}}),
            )
            .await
            .unwrap_err()
        }
    };
    let err = through("bob").await;
    assert!(
        matches!(&err, CallError::Remote { error, .. } if error.code == ErrorCode::Forbidden && error.message.contains("`by`")),
        "{err}"
    );
    let err = through("alice").await;
    assert!(
        matches!(&err, CallError::Remote { error, .. } if error.code != ErrorCode::Forbidden && error.message.contains("J-404")),
        "{err}"
    );
}

#[tokio::test]
async fn progress_goes_out_under_its_senders_name_and_reaches_everyone() {
    let broker = Mosquitto::start(BrokerKind::Secured);
    let mut reader = raw(&broker, "alice", "alice", &["progress/+"]).await;
    let labd = start(&broker, fake_labd(), "labd").await;
    labd.context()
        .publish("progress", json!({"job": "J-1", "i": 1, "n": 2}))
        .await
        .unwrap();
    let mallory = raw(&broker, "mallory", "mallory", &[]).await;
    let forged = json!({"from": "labd", "to": "*", "job": "J-forged"});
    publish(&mallory, "progress/labd", forged).await;
    let got = drain(&mut reader, Duration::from_secs(1)).await;
    assert!(
        got.iter()
            .any(|(t, v)| t == "progress/labd" && v["job"] == "J-1"),
        "{got:?}"
    );
    assert!(!got.iter().any(|(_, v)| v["job"] == "J-forged"), "{got:?}");
}
