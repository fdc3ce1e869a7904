//! The durable intake against a real Mosquitto: acknowledged only after the commit,
//! retried while the commit fails, nothing lost across a stop, bad messages set aside
//! without stalling the rest.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::transport;
use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake};
use mqttcal_core::transport::{BoxFuture, Outgoing, QoS, SessionSpec, Transport};
use mqttcal_core::{Context, NodeBuilder, NodeHandle};
use mqttcal_testkit::{BrokerKind, Mosquitto};

/// A sink that keeps what it commits, can be told to fail for a while, and refuses
/// `poison` for good.
#[derive(Clone, Default)]
struct Sink {
    stored: Arc<Mutex<Vec<String>>>,
    down: Arc<Mutex<bool>>,
}

impl Sink {
    fn stored(&self) -> Vec<String> {
        self.stored.lock().unwrap().clone()
    }

    fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }
}

impl Commit<String> for Sink {
    fn commit<'a>(
        &'a mut self,
        items: &'a [String],
        _ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), CommitError>> {
        Box::pin(async move {
            if *self.down.lock().unwrap() {
                return Err(CommitError::retry("the database is down"));
            }
            if items.iter().any(|i| i == "poison") {
                return Err(CommitError::refused("`poison` violates a constraint"));
            }
            self.stored.lock().unwrap().extend(items.iter().cloned());
            Ok(())
        })
    }
}

fn decode(_topic: &str, payload: &[u8]) -> Decoded<String> {
    match std::str::from_utf8(payload) {
        Ok("skip") => Decoded::Skip,
        Ok(text) => Decoded::Item(text.to_owned()),
        Err(_) => Decoded::SetAside("not UTF-8".into()),
    }
}

fn intake(sink: &Sink, batch: usize) -> Intake<String> {
    Intake::new(decode, sink.clone())
        .subscribe("data")
        .batch(batch, Duration::from_millis(20))
}

async fn start(url: &str, intake: Intake<String>) -> NodeHandle {
    NodeBuilder::new("sink")
        .intake(intake)
        .build()
        .start(&transport(url))
        .await
        .unwrap()
}

/// Publishes `payloads` on `data` at QoS 1 from a plain connection.
async fn publish(url: &str, payloads: &[&[u8]]) {
    let link = transport(url)
        .connect(SessionSpec::new("publisher", vec![]))
        .await
        .unwrap();
    for p in payloads {
        link.publisher
            .publish(Outgoing {
                topic: "data".into(),
                payload: p.to_vec().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    link.publisher.disconnect().await.unwrap();
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("m{i}").into_bytes()).collect()
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

#[tokio::test]
async fn committed_messages_are_acknowledged_once_and_what_comes_while_away_is_kept() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let sink = Sink::default();
    let node = start(&url, intake(&sink, 10)).await;
    let first = numbered(0..50);
    publish(&url, &refs(&first)).await;
    wait_for("50 messages", || sink.stored().len() == 50).await;
    node.stop().await.unwrap();

    // Sent while the node is away: the broker keeps them for the persistent session.
    let second = numbered(50..60);
    publish(&url, &refs(&second)).await;
    let node = start(&url, intake(&sink, 10)).await;
    wait_for("the 10 sent while away", || sink.stored().len() >= 60).await;
    // Nothing acknowledged comes again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = sink.stored();
    let expected: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    assert_eq!(stored, expected, "each once, in order");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_commit_is_retried_and_unacknowledged_messages_survive_a_stop() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let sink = Sink::default();
    sink.set_down(true);
    let first = intake(&sink, 5);
    let stats = first.stats();
    let node = start(&url, first).await;
    publish(&url, &refs(&numbered(0..5))).await;
    wait_for("retries", || stats.counters().retries >= 2).await;
    assert!(sink.stored().is_empty());
    // Stopped while the database is down: nothing was acknowledged.
    node.stop().await.unwrap();

    sink.set_down(false);
    let again = intake(&sink, 5);
    let stats = again.stats();
    let node = start(&url, again).await;
    wait_for("the redelivered messages", || sink.stored().len() == 5).await;
    assert_eq!(stats.counters().committed, 5);

    // While running: a commit that fails for a while holds the batch, then it goes in.
    sink.set_down(true);
    publish(&url, &refs(&numbered(5..8))).await;
    wait_for("a retry", || stats.counters().retries >= 1).await;
    sink.set_down(false);
    wait_for("the held batch", || sink.stored().len() == 8).await;
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_that_can_never_be_stored_is_set_aside_and_the_rest_go_on() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let sink = Sink::default();
    let i = intake(&sink, 20);
    let stats = i.stats();
    let node = start(&url, i).await;
    let mut msgs: Vec<&[u8]> = vec![b"a", b"skip", b"\xff\xfe", b"b", b"poison", b"c"];
    msgs.extend([b"d".as_slice(), b"e"]);
    publish(&url, &msgs).await;
    wait_for("the good messages", || sink.stored().len() == 5).await;
    assert_eq!(sink.stored(), ["a", "b", "c", "d", "e"]);
    let c = stats.counters();
    assert_eq!((c.set_aside, c.skipped, c.committed), (2, 1, 5));
    let reasons: Vec<String> = stats
        .recently_set_aside()
        .into_iter()
        .map(|s| s.reason)
        .collect();
    assert_eq!(reasons, ["not UTF-8", "`poison` violates a constraint"]);
    node.stop().await.unwrap();

    // Set-aside messages were acknowledged: a restart does not bring them back.
    let i = intake(&sink, 20);
    let stats = i.stats();
    let node = start(&url, i).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stats.counters().received, 0, "nothing redelivered");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn injected_items_are_committed_in_order_with_the_messages() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let sink = Sink::default();
    let i = intake(&sink, 1);
    let injector = i.injector();
    let node = start(&url, i).await;
    publish(&url, &[b"one"]).await;
    wait_for("one", || sink.stored().len() == 1).await;
    assert!(injector.inject("census".into()).await);
    publish(&url, &[b"two"]).await;
    wait_for("three items", || sink.stored().len() == 3).await;
    assert_eq!(sink.stored(), ["one", "census", "two"]);
    node.stop().await.unwrap();
    assert!(!injector.inject("late".into()).await, "the intake stopped");
}

#[tokio::test]
async fn intakes_of_one_group_divide_the_messages_and_a_bad_group_is_refused() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let (one, two) = (Sink::default(), Sink::default());
    let mut nodes = Vec::new();
    for (name, sink) in [("sink-1", &one), ("sink-2", &two)] {
        let node = NodeBuilder::new(name)
            .intake(intake(sink, 10).shared("sinks"))
            .build()
            .start(&transport(&url))
            .await
            .unwrap();
        nodes.push(node);
    }
    let sent = numbered(0..200);
    publish(&url, &refs(&sent)).await;
    wait_for("200 messages between the two", || {
        one.stored().len() + two.stored().len() == 200
    })
    .await;
    let mut all: Vec<String> = one.stored();
    all.extend(two.stored());
    all.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each message to exactly one of them");
    assert!(
        !one.stored().is_empty() && !two.stored().is_empty(),
        "both take a share: {} and {}",
        one.stored().len(),
        two.stored().len()
    );
    for node in nodes {
        node.stop().await.unwrap();
    }

    let err = NodeBuilder::new("sink-3")
        .intake(intake(&Sink::default(), 10).shared("a/b"))
        .build()
        .start(&transport(&url))
        .await
        .expect_err("a group with `/` cannot be a shared subscription's");
    assert!(err.to_string().contains("`a/b`"), "{err}");
}
