//! The MQTT transport against a real Mosquitto: a slow reader loses nothing, a priority
//! message overtakes a flood, a link kept for its events alone keeps them, a clean
//! disconnect sends what is queued.

mod common;

use std::time::Duration;

use common::transport;
use mqttcal_core::transport::{
    Event, Events, Link, Outgoing, Priority, QoS, SessionSpec, Subscription, Transport,
};
use mqttcal_testkit::{rss_kib, BrokerKind, Mosquitto};

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

/// A connection that only publishes.
async fn source(url: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new("source", vec![]))
        .await
        .unwrap()
}

/// The numbers carried by the next `n` messages of `events`.
async fn receive(events: &mut Events, n: usize) -> Vec<usize> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv())
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
    let source = source(&url).await;
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
    let got = receive(&mut slow.events, N).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "all, once, in order");
    let source = publishing.await.unwrap();
    source.publisher.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_message_overtakes_a_flood_waiting_for_the_node() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    // Numbers from 1,000,000 up go first.
    let mut node = transport(&url)
        .connect(SessionSpec {
            priority: Some(Priority::new(|_, payload| payload.len() == 7)),
            ..SessionSpec::new("node", vec![Subscription::new("request", QoS::AtMostOnce)])
        })
        .await
        .unwrap();
    let source = source(&url).await;
    // Far more than the node's channel holds (1,024): the reader holds the rest.
    const N: usize = 5_000;
    for i in 0..N {
        source
            .publisher
            .publish(msg("request", i, QoS::AtMostOnce))
            .await
            .unwrap();
    }
    source
        .publisher
        .publish(msg("request", 1_000_000, QoS::AtMostOnce))
        .await
        .unwrap();
    for i in N..N + 10 {
        source
            .publisher
            .publish(msg("request", i, QoS::AtMostOnce))
            .await
            .unwrap();
    }
    // Nothing is read meanwhile: the flood waits for the node.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receive(&mut node.events, N + 11).await;
    assert_eq!(got[0], 1_000_000, "the priority message comes first");
    assert_eq!(
        got[1..],
        (0..N + 10).collect::<Vec<_>>(),
        "the others all come, in order"
    );
    source.publisher.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_waiting_for_the_node_are_bounded_in_bytes_not_only_in_number() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let mut node = sink(&url, "bulky", "bulk", QoS::AtMostOnce).await;
    let source = source(&url).await;
    let before = rss_kib(std::process::id()).unwrap();
    // 150 MiB for a node that reads nothing meanwhile: its channel holds 1,024 messages,
    // but not 150 MiB of them; the broker keeps the rest.
    const N: usize = 150;
    for i in 0..N {
        let mut payload = vec![0u8; 1 << 20];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        source
            .publisher
            .publish(Outgoing {
                topic: "bulk".into(),
                payload: payload.into(),
                qos: QoS::AtMostOnce,
                retain: false,
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = rss_kib(std::process::id()).unwrap().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "the process grew by {} MiB while its node read nothing",
        grown / 1024
    );
    // Then all of it comes, in order.
    let mut next = 0u64;
    while next < N as u64 {
        let ev = tokio::time::timeout(Duration::from_secs(20), node.events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {next} of {N} arrived"))
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            let i = u64::from_be_bytes(payload[..8].try_into().unwrap());
            assert_eq!(i, next, "in order");
            next += 1;
        }
    }
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
    let source = source(&url).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..3 {
        source
            .publisher
            .publish(msg("news", i, QoS::AtMostOnce))
            .await
            .unwrap();
    }
    assert_eq!(receive(&mut events, 3).await, vec![0, 1, 2]);
}

#[tokio::test]
async fn a_clean_disconnect_sends_what_is_queued_first() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut watch = sink(&url, "watch", "queued", QoS::AtMostOnce).await;
    let source = source(&url).await;
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
    assert_eq!(
        receive(&mut watch.events, N).await,
        (0..N).collect::<Vec<_>>()
    );
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

/// A "broker" on a free port that answers CONNECT with a bare CONNACK and then does what
/// `then` does with the connection. Returns its port and the number of connections made.
async fn fake_broker<F, Fut>(then: F) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut buf = [0u8; 1024];
            // The CONNECT fits one read on loopback.
            if tcp.read(&mut buf).await.unwrap_or(0) == 0 {
                continue;
            }
            // CONNACK: no session, success, no properties.
            if tcp.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).await.is_ok() {
                tokio::spawn(then(tcp));
            }
        }
    });
    (port, count)
}

fn fake_transport(port: u16) -> mqttcal_core::transport::MqttTransport {
    let mut cfg = mqttcal_core::config::MqttConfig::default();
    cfg.apply_url(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    cfg.keepalive = 5;
    mqttcal_core::transport::MqttTransport::new(cfg).connect_timeout(Duration::from_secs(1))
}

#[tokio::test]
async fn a_disconnect_ends_the_session_even_when_the_broker_takes_nothing() {
    use tokio::io::AsyncReadExt;
    let (disconnected_tx, mut disconnected) = tokio::sync::mpsc::unbounded_channel();
    let (port, _) = fake_broker(move |mut tcp| {
        let tx = disconnected_tx.clone();
        async move {
            // Reads everything, acknowledges nothing; notes a DISCONNECT packet (type 14).
            let mut data = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            // DISCONNECT ends the stream: type 14, remaining length 0 to 2 (reason,
            // empty properties).
            let n = data.len();
            let saw = (0..=2usize).any(|len| {
                n >= len + 2 && data[n - len - 2] == 0xE0 && usize::from(data[n - len - 1]) == len
            });
            let _ = tx.send(saw);
        }
    })
    .await;
    let link = fake_transport(port)
        .connect(SessionSpec::new("stuck", vec![]))
        .await
        .unwrap();
    // More QoS 1 messages than the window (1,000) and the queue (4,096) hold.
    let mut queued = 0;
    while link
        .publisher
        .try_publish(msg("t", queued, QoS::AtLeastOnce))
        .is_ok()
    {
        queued += 1;
    }
    assert!(queued > 1000, "{queued}");
    let t0 = std::time::Instant::now();
    link.publisher.disconnect().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let saw = tokio::time::timeout(Duration::from_secs(5), disconnected.recv())
        .await
        .expect("the connection is closed")
        .unwrap();
    assert!(saw, "DISCONNECT went out, so the broker keeps the will");
}

#[tokio::test]
async fn connect_gives_up_when_the_subscriptions_are_never_acknowledged() {
    let (port, _) = fake_broker(|tcp| async move {
        // Holds the connection and says nothing more.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(tcp);
    })
    .await;
    let t0 = std::time::Instant::now();
    let err = fake_transport(port)
        .connect(SessionSpec::new(
            "waiting",
            vec![Subscription::new("t", QoS::AtMostOnce)],
        ))
        .await
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        err.to_string().contains("cannot reach") || err.to_string().contains("acknowledge"),
        "{err}"
    );
}

#[tokio::test]
async fn a_broker_that_drops_every_connection_at_once_is_retried_with_growing_pauses() {
    use tokio::io::AsyncWriteExt;
    let (port, count) = fake_broker(|mut tcp| async move {
        // An administrative DISCONNECT (reason 0x98) right after the CONNACK.
        let _ = tcp.write_all(&[0xE0, 0x02, 0x98, 0x00]).await;
    })
    .await;
    let link = fake_transport(port)
        .connect(SessionSpec::new("kicked", vec![]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let n = count.load(std::sync::atomic::Ordering::Relaxed);
    // 50 ms doubling to 1 s: about eight attempts in 5 s, not one every 50 ms.
    assert!((3..=15).contains(&n), "{n} connections in 5 s");
    drop(link);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_keeps_its_connection() {
    let broker = Mosquitto::start(BrokerKind::Production);
    let url = broker.url();
    let mut cfg = mqttcal_core::config::MqttConfig::default();
    cfg.apply_url(&url).unwrap();
    cfg.keepalive = 5;
    let mut slow = mqttcal_core::transport::MqttTransport::new(cfg)
        .connect(SessionSpec::new(
            "slow",
            vec![Subscription::new("bulk", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap();
    let source = source(&url).await;
    const N: usize = 3000;
    for i in 0..N {
        source
            .publisher
            .publish(msg("bulk", i, QoS::AtLeastOnce))
            .await
            .unwrap();
    }
    // Nothing read for over 1.5 keep-alive intervals: the broker would drop a silent
    // client after 7.5 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut got = Vec::with_capacity(N);
    while got.len() < N {
        match tokio::time::timeout(Duration::from_secs(10), slow.events.recv())
            .await
            .expect("messages keep coming")
            .unwrap()
        {
            Event::Message { payload, .. } => got.push(
                std::str::from_utf8(&payload)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            ),
            other => panic!("the connection held: {other:?}"),
        }
    }
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}
