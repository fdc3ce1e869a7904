//! ctrld on Mosquitto, with logd on PostgreSQL: calls forwarded as the policy lets the
//! caller's role make them, refusals and changes written in the logbook with the user and
//! the role (reads not), a gateway's users believed and nobody else's; presence from
//! `announce`, and rebuilt by a census when ctrld restarts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Outgoing, QoS, SessionSpec, Transport};
use mqttcal_core::{CallError, Client, ErrorCode, NodeError};
use mqttcal_nodes::ctrld::{self, CtrldConfig, Policy};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

fn policy() -> Policy {
    Policy::from_yaml(
        "roles:
  viewer: ['*.ping', 'logd.search', 'ctrld.status']
  operator: ['*.ping', 'logd.search', 'logd.add']
users:
  alice: viewer
  bob: operator
gateways: [webd]
reads: ['*.ping', 'logd.search']
",
    )
    .unwrap()
}

async fn connect(url: &str, name: &str) -> Client {
    Client::connect(&transport(url), name, "").await.unwrap()
}

/// `who` asks ctrld to call `node`'s `capability`.
async fn through(who: &Client, call: Value) -> Result<Value, NodeError> {
    who.context()
        .request("ctrld", "call", call)
        .await
        .map_err(|e| match e {
            CallError::Remote { error, .. } => error,
            other => panic!("no reply from ctrld: {other}"),
        })
}

async fn logbook(c: &Client, kind: &str) -> Vec<Value> {
    c.context()
        .request("logd", "search", json!({ "kind": kind }))
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_through_as_the_policy_allows_and_are_logged() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("ctrld"))
        .await
        .unwrap();
    let _logd = start_logd(&url, store, None).await;
    let config = CtrldConfig {
        policy: Some(policy()),
        policy_file: None,
    };
    let _ctrld = ctrld::node("ctrld", config)
        .unwrap()
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let (alice, bob, webd, mallory) = (
        connect(&url, "alice").await,
        connect(&url, "bob").await,
        connect(&url, "webd").await,
        connect(&url, "mallory").await,
    );
    wait_ping(&alice, "ctrld").await;
    wait_ping(&alice, "logd").await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the census at start

    // A viewer reads through ctrld, and cannot write.
    let found = through(
        &alice,
        json!({"node": "logd", "capability": "search", "params": {"kind": "joined"}}),
    )
    .await
    .unwrap();
    assert!(found.is_array(), "{found}");
    let e = through(
        &alice,
        json!({"node": "logd", "capability": "add", "params": {"author": "alice", "text": "hi"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}");
    assert!(
        e.message.contains("role `viewer` may not call `logd.add`"),
        "{e:?}"
    );
    // An operator writes; the node's own errors come back with their code.
    through(&bob, json!({"node": "logd", "capability": "add", "params": {"author": "bob", "text": "Z1 moved"}}))
        .await
        .unwrap();
    let e = through(
        &bob,
        json!({"node": "logd", "capability": "add", "params": {"nonsense": 1}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParams, "{e:?}");
    assert!(e.message.starts_with("logd: "), "{e:?}");
    // Nobody else, and only a gateway names a user.
    let e = through(&mallory, json!({"node": "logd", "capability": "search"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("`mallory` has no role"), "{e:?}");
    let e = through(
        &mallory,
        json!({"node": "logd", "capability": "add", "user": "bob", "role": "operator"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("only a gateway"), "{e:?}");
    through(
        &webd,
        json!({"node": "logd", "capability": "add", "user": "carla", "role": "operator",
                          "params": {"author": "carla", "text": "through the web"}}),
    )
    .await
    .unwrap();
    let e = through(
        &webd,
        json!({"node": "logd", "capability": "add", "user": "carla", "role": "root"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidParams);
    let e = through(
        &webd,
        json!({"node": "logd", "capability": "add", "role": "operator"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.details.unwrap()["field"], "user");
    // A capability the node lacks is named as such, with those it has (not logged).
    let e = through(&bob, json!({"node": "logd", "capability": "serach"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownCapability, "{e:?}");
    let known = e.details.unwrap()["capabilities"].to_string();
    assert!(known.contains("search"), "{known}");
    // A node that is not there is named as such, with the nodes that are.
    let e = through(&bob, json!({"node": "cald", "capability": "ping"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Link, "{e:?}");
    assert!(
        e.message.contains("`cald` is not running") && e.message.contains("logd"),
        "{e:?}"
    );
    // Names that would read otherwise in the logbook, or in MQTT, are refused unlogged.
    for (call, field) in [
        (json!({"node": "*", "capability": "ping"}), "node"),
        (
            json!({"node": "logd", "capability": "add\nbob (operator) called cald.start"}),
            "capability",
        ),
        (json!({"node": "lab/d", "capability": "ping"}), "node"),
    ] {
        let e = through(&bob, call.clone()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParams, "{call}");
        assert_eq!(e.details.unwrap()["field"], field, "{call}");
    }
    let e = through(
        &webd,
        json!({"node": "logd", "capability": "add", "user": "eve\nbob", "role": "operator"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.details.unwrap()["field"], "user");

    // The logbook: each refusal and each change with the user and role, no read.
    let end = Instant::now() + Duration::from_secs(5);
    let (refused, calls) = loop {
        let (r, c) = (
            logbook(&alice, "refused").await,
            logbook(&alice, "call").await,
        );
        if (r.len() >= 6 && c.len() >= 3) || Instant::now() > end {
            break (r, c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let texts = |v: &[Value]| {
        v.iter()
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let refused_texts = texts(&refused);
    assert_eq!(refused.len(), 6, "{refused_texts:?}");
    assert!(
        refused_texts[0].contains("logd.add for alice (viewer)"),
        "{refused_texts:?}"
    );
    assert!(
        refused[0]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("user:alice")),
        "{refused:?}"
    );
    assert!(
        refused_texts[1].contains("for mallory (none)"),
        "{refused_texts:?}"
    );
    assert!(
        refused_texts[3].contains("role `root` is not in"),
        "{refused_texts:?}"
    );
    let call_texts = texts(&calls);
    assert_eq!(call_texts.len(), 3, "{call_texts:?}");
    assert!(
        call_texts[0].starts_with("bob (operator) called logd.add through ctrld: done"),
        "{call_texts:?}"
    );
    assert!(
        call_texts[1].contains("failed (invalid_params"),
        "{call_texts:?}"
    );
    assert!(
        call_texts[2].starts_with("carla (operator) called logd.add"),
        "{call_texts:?}"
    );
    assert!(calls[2]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("role:operator")));
    assert!(
        !call_texts.iter().any(|t| t.contains("logd.search")),
        "reads are not logged"
    );

    // The status says what it cannot know, and the last reading of each standard.
    bob.context()
        .publish(
            "meas",
            json!({"DC-measurement": 10.000_012, "src": ["Z9", "Z2"], "unit": "V"}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = alice
        .context()
        .request("ctrld", "status", json!({}))
        .await
        .unwrap();
    let readings = &status["readings"];
    assert_eq!(readings[0]["standard"], "Z9", "{status}");
    assert_eq!(readings[0]["value"], 10.000_012, "{status}");
    assert_eq!(readings[0]["from"], "bob", "{status}");
    let unknown = status["unknown"].to_string();
    let e = mallory
        .context()
        .request("ctrld", "status", json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no role"), "{e}");
    // Tags that ctrld writes itself cannot come with a call.
    let forged = json!({"node": "logd", "capability": "add", "params": {"author": "bob", "text": "x", "tags": ["user:admin"]}});
    let e = through(&bob, forged).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}");
    assert!(
        e.message.contains("written by ctrld and logd only"),
        "{e:?}"
    );
    // What a role may call on a node: for a gateway's person, or for oneself.
    let allowed = |who: &Client, p: Value| {
        let ctx = who.context().clone();
        async move { ctx.request("ctrld", "allowed", p).await }
    };
    let mut for_bob = allowed(
        &webd,
        json!({"node": "logd", "user": "bob", "role": "operator"}),
    )
    .await
    .unwrap();
    for_bob
        .as_array_mut()
        .unwrap()
        .sort_by_key(|v| v.to_string());
    assert_eq!(for_bob, json!(["add", "ping", "search"]));
    let mine = allowed(&alice, json!({"node": "logd"})).await.unwrap();
    assert_eq!(mine, json!(["ping", "search"]));
    let e = allowed(
        &mallory,
        json!({"node": "logd", "user": "x", "role": "admin"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("only a gateway"), "{e}");
    // A gateway reads for a person as their role allows; only a gateway names one.
    let for_bob = json!({"user": "bob", "role": "operator"});
    let e = webd
        .context()
        .request("ctrld", "status", for_bob.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("may not call `ctrld.status`"), "{e}");
    let for_alice = json!({"user": "alice", "role": "viewer"});
    webd.context()
        .request("ctrld", "status", for_alice.clone())
        .await
        .unwrap();
    let e = mallory
        .context()
        .request("ctrld", "status", for_alice)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only a gateway"), "{e}");
    assert!(
        unknown.contains("cald is not running") && unknown.contains("datad is not running"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_announce_and_a_restart_rebuilds_it() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut policy = Policy::default();
    policy.users.insert("watcher".into(), "viewer".into());
    let config = CtrldConfig {
        policy: Some(policy),
        policy_file: None,
    };
    let start_ctrld = || async {
        ctrld::node("ctrld", config.clone())
            .unwrap()
            .build()
            .start(&transport(&url))
            .await
            .unwrap()
    };
    let first = start_ctrld().await;
    let watcher = connect(&url, "watcher").await;
    wait_ping(&watcher, "ctrld").await;
    let nodes = |c: &Client| {
        let ctx = c.context().clone();
        async move {
            let v = ctx.request("ctrld", "nodes", json!({})).await.unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|n| (n["name"].as_str().unwrap().to_owned(), n.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    // Two nodes join: ctrld hears their hello and asks for their capabilities.
    let n1 = mqttcal_nodes::base::node("n1")
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let n2 = mqttcal_nodes::base::node("n2")
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let known = nodes(&watcher).await;
        let mapped = |n: &str| {
            known.get(n).is_some_and(|v| {
                v["status"] == "up"
                    && v["capabilities"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("ping"))
            })
        };
        if mapped("n1") && mapped("n2") {
            break;
        }
        assert!(Instant::now() < end, "n1 and n2 up and mapped: {known:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // n2 leaves cleanly: left.
    n2.stop().await.unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while nodes(&watcher).await["n2"]["status"] != "left" {
        assert!(Instant::now() < end, "n2 left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A restarted ctrld knows every node again within 2 s (the census).
    first.stop().await.unwrap();
    let t0 = Instant::now();
    let _second = start_ctrld().await;
    loop {
        if let Ok(v) = watcher
            .context()
            .request_timeout("ctrld", "nodes", json!({}), Duration::from_millis(300))
            .await
        {
            let has = |n: &str| {
                v.as_array().unwrap().iter().any(|x| {
                    x["name"] == n
                        && x["status"] == "up"
                        && !x["capabilities"].as_array().unwrap().is_empty()
                })
            };
            if has("n1") && has("ctrld") {
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "presence rebuilt within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("presence rebuilt {:?} after ctrld's restart", t0.elapsed());
    // n1's last will (the broker's `bye` with `reason: lost` for its run) marks it lost;
    // one of an earlier run does not.
    let epoch = watcher
        .context()
        .request("n1", "ping", json!({}))
        .await
        .unwrap()["epoch"]
        .as_u64()
        .unwrap();
    let will = |epoch: u64| json!({"message": "bye", "reason": "lost", "epoch": epoch});
    let raw = transport(&url)
        .connect(SessionSpec::new("n1-will", vec![]))
        .await
        .unwrap();
    let announce = |v: Value| {
        let publisher = raw.publisher.clone();
        async move {
            let mut env = Envelope::new("n1", "*");
            env.message = v["message"].as_str().map(str::to_owned);
            env.epoch = v["epoch"].as_u64();
            env.fields.insert("reason".into(), v["reason"].clone());
            let out = Outgoing {
                topic: "announce".into(),
                payload: env.encode(usize::MAX).unwrap().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            };
            publisher.publish(out).await.unwrap();
        }
    };
    announce(will(epoch - 1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nodes(&watcher).await["n1"]["status"], "up");
    announce(will(epoch)).await;
    let end = Instant::now() + Duration::from_secs(5);
    while nodes(&watcher).await["n1"]["status"] != "lost" {
        assert!(Instant::now() < end, "n1 lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(n1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_acl_made_from_the_policy_people_call_only_through_ctrld() {
    use mqttcal_core::topics::Layout;
    use mqttcal_core::NodeBuilder;
    let mut broker = Mosquitto::start(BrokerKind::Secured);
    let policy = policy();
    let nodes = ["labd".to_owned(), "ctrld".to_owned()];
    broker.set_acl(
        &ctrld::mosquitto_acl(&policy, "ctrld", &nodes, &["admin".to_owned()], "").unwrap(),
    );
    let _labd = NodeBuilder::new("labd")
        .layout(Layout::Addressed)
        .build()
        .start(&tls(&broker, Some("labd")))
        .await
        .unwrap();
    let config = CtrldConfig {
        policy: Some(policy),
        policy_file: None,
    };
    let _ctrld = ctrld::node("ctrld", config)
        .unwrap()
        .layout(Layout::Addressed)
        .build()
        .start(&tls(&broker, Some("ctrld")))
        .await
        .unwrap();
    let person = |login: &'static str| {
        let t = tls(&broker, Some(login));
        async move {
            Client::connect_as(&t, NodeBuilder::new(login).layout(Layout::Addressed))
                .await
                .unwrap()
        }
    };
    let (alice, mallory) = (person("alice").await, person("mallory").await);
    wait_ping(&alice, "ctrld").await;
    // Through ctrld, as alice's role allows.
    let pong = through(&alice, json!({"node": "labd", "capability": "ping"}))
        .await
        .unwrap();
    assert!(pong["epoch"].is_u64(), "{pong}");
    // Straight to labd: the broker does not deliver it, so no answer comes.
    let direct = alice
        .context()
        .request_timeout("labd", "ping", json!({}), Duration::from_secs(1))
        .await;
    assert!(
        matches!(direct, Err(CallError::Timeout { .. })),
        "{direct:?}"
    );
    // A login the policy does not name reaches nobody, not even ctrld.
    let nobody = mallory
        .context()
        .request_timeout("ctrld", "ping", json!({}), Duration::from_secs(1))
        .await;
    assert!(
        matches!(nobody, Err(CallError::Timeout { .. })),
        "{nobody:?}"
    );
}
