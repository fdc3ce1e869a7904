//! A thousand nodes on one Mosquitto with the production configuration (each node with its
//! own connection, all in this process): `map '*'` gathers every one of them within 2 s,
//! and the broker drops nothing (`$SYS/broker/publish/messages/dropped` does not move).
//! The `fleet` bench measures the same with timings; this keeps it true.

mod common;

use std::time::{Duration, Instant};

use common::{client, transport};
use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::{Gather, NodeBuilder};
use mqttcal_testkit::{BrokerKind, Mosquitto};

const NODES: usize = 1000;

/// The broker's count of dropped messages as it last published it (retained, every 1 s).
async fn dropped(url: &str) -> u64 {
    let mut link = transport(url)
        .connect(SessionSpec::new(
            "fleet-sys",
            vec![Subscription::new(
                "$SYS/broker/publish/messages/dropped",
                QoS::AtMostOnce,
            )],
        ))
        .await
        .unwrap();
    let n = loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), link.events.recv())
            .await
            .expect("the broker keeps its $SYS counters retained")
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            break std::str::from_utf8(&payload)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        }
    };
    let _ = link.publisher.disconnect().await;
    n
}

/// This process's limit of open files, from /proc (a connection is one).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_nodes_answer_a_broadcast_and_the_broker_drops_nothing() {
    if let Some(limit) = open_files_limit() {
        assert!(
            limit >= 3 * NODES as u64,
            "{NODES} connections here and at the broker need more open files than {limit}: raise the limit (`ulimit -n 8192`) before the tests"
        );
    }
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let before = dropped(&url).await;
    let mut nodes = Vec::with_capacity(NODES);
    let names: Vec<String> = (0..NODES).map(|i| format!("fleet-{i}")).collect();
    for chunk in names.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for name in chunk {
            let (name, url) = (name.clone(), url.clone());
            set.spawn(async move {
                NodeBuilder::new(&name)
                    .build()
                    .start(&transport(&url))
                    .await
            });
        }
        while let Some(started) = set.join_next().await {
            nodes.push(started.unwrap().expect("a node starts"));
        }
    }
    let c = client(&url, "fleet-tester").await;
    for round in 0..2 {
        let t = Instant::now();
        let replies = c
            .context()
            .request_envelopes(
                "*",
                "map",
                Default::default(),
                Gather {
                    timeout: Duration::from_secs(10),
                    expect: Some(NODES),
                },
            )
            .await
            .unwrap();
        let took = t.elapsed();
        assert_eq!(replies.len(), NODES, "round {round}: after {took:?}");
        assert!(
            took < Duration::from_secs(2),
            "round {round}: all {NODES} gathered in {took:?}"
        );
    }
    // A call to one of them, twice: the second goes to its own topic.
    for _ in 0..2 {
        c.context()
            .request("fleet-500", "ping", serde_json::json!({}))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(dropped(&url).await, before, "the broker dropped messages");
    for node in nodes {
        node.stop().await.unwrap();
    }
}
