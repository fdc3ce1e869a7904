//! The MQTT transport against a real Mosquitto: a slow reader loses nothing, a link kept
//! for its events alone keeps them, a clean disconnect sends what is queued.

mod common;

use std::time::Duration;

use common::transport;
use mqttcal_core::transport::{Event, Link, Outgoing, QoS, SessionSpec, Subscription, Transport};
use mqttcal_testkit::{BrokerKind, Mosquitto};

fn msg(topic: &str, i: usize, qos: QoS) -> Outgoing {
    Outgoing {
        topic: topic.into(),
        payload: i.to_string().into(),
        qos,
        retain: false,
    }
}

async fn sink(url: &str, id: &str, topic: &str, qos: QoS) -> Link {
    transport(url)
        .connect(SessionSpec::new(id, vec![Subscription::new(topic, qos)]))
        .await
        .unwrap()
}

/// The numbers carried by the next `n` messages on `link`.
async fn receive(link: &mut Link, n: usize) -> Vec<usize> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(20), link.events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", got.len()))
            .expect("the link is open");
        if let Event::Message { payload, .. } = ev {
            got.push(std::str::from_utf8(&payload).unwrap().parse().unwrap());
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_loses_nothing_and_keeps_the_order() {
    // The production configuration's queue limits: Mosquitto's default keeps only 1,000
    // QoS 1 messages queued for a client, and drops the rest.
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let mut slow = sink(&url, "slow", "bulk", QoS::AtLeastOnce).await;
    let source = transport(&url)
        .connect(SessionSpec::new("source", vec![]))
        .await
        .unwrap();
    const N: usize = 20_000;
    // Far more than the window of messages in flight (1,000) and than the events waiting
    // for the reader (1,024): the rest waits at the broker while nobody reads.
    let publishing = tokio::spawn(async move {
        for i in 0..N {
            source
                .publisher
                .publish(msg("bulk", i, QoS::AtLeastOnce))
                .await
                .unwrap();
        }
        source
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receive(&mut slow, N).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "all, once, in order");
    let source = publishing.await.unwrap();
    source.publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_link_kept_for_its_events_alone_keeps_receiving() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let Link {
        publisher,
        mut events,
    } = sink(&url, "listener", "news", QoS::AtMostOnce).await;
    drop(publisher);
    let source = transport(&url)
        .connect(SessionSpec::new("source", vec![]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        source
            .publisher
            .publish(msg("news", i, QoS::AtMostOnce))
            .await
            .unwrap();
    }
    let mut link = Link {
        publisher: source.publisher.clone(),
        events: {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    if tx.send(ev).await.is_err() {
                        break;
                    }
                }
            });
            rx
        },
    };
    assert_eq!(receive(&mut link, 3).await, vec![0, 1, 2]);
}

#[tokio::test]
async fn a_clean_disconnect_sends_what_is_queued_first() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut watch = sink(&url, "watch", "queued", QoS::AtMostOnce).await;
    let source = transport(&url)
        .connect(SessionSpec::new("source", vec![]))
        .await
        .unwrap();
    const N: usize = 3000;
    for i in 0..N {
        // Queued without yielding: none is sent before the disconnect is asked for.
        if source
            .publisher
            .try_publish(msg("queued", i, QoS::AtMostOnce))
            .is_err()
        {
            panic!("the queue holds {N} messages");
        }
    }
    source.publisher.disconnect().await.unwrap();
    assert_eq!(receive(&mut watch, N).await, (0..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_session_taken_over_by_another_with_its_client_id_says_so() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut first = sink(&url, "labd", "meas", QoS::AtMostOnce).await;
    let _second = sink(&url, "labd", "meas", QoS::AtMostOnce).await;
    // Mosquitto 2.0 closes the socket before its DISCONNECT (reason 0x8E) is out, so the
    // take-over shows as connections the broker closes as soon as they open.
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match first.events.recv().await {
                Some(Event::Down { reason }) if reason.contains("same name") => return reason,
                Some(_) => {}
                None => panic!("the session ended"),
            }
        }
    })
    .await
    .expect("the first session hears that its client id is taken");
    assert!(
        down.contains("closed 3 connections in a row") || down.contains("another connection"),
        "{down}"
    );
}
