//! The baseline of the `startup` bench: a bare rumqttc client that does what a node must
//! at start and nothing more. It connects, subscribes to the control topics a node reads
//! (`system`, `request`, `reply`), says `hello` on `announce` once subscribed, and idles.
//!
//! Run with: `bare_client mqtt://127.0.0.1:1883 NAME` (the `startup` bench starts it).

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS, SubscribeFilter};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
    let name = args.next().unwrap_or_else(|| "bare".into());
    let rest = url.strip_prefix("mqtt://").unwrap_or(&url);
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    let port: u16 = port.parse().unwrap_or_else(|_| {
        eprintln!("bad port in {url}");
        std::process::exit(2)
    });
    let mut options = MqttOptions::new(&name, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    events.set_network_options(net);
    // One SUBSCRIBE for all three, as a node makes: three would each wait for the
    // broker's SUBACK, and on a broker without TCP_NODELAY the second one for a delayed ACK.
    let filters =
        ["system", "request", "reply"].map(|t| SubscribeFilter::new(t.into(), QoS::AtMostOnce));
    client.subscribe_many(filters).await.unwrap();
    let hello = format!(r#"{{"from":"{name}","to":"*","message":"hello"}}"#);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                client
                    .publish("announce", QoS::AtLeastOnce, false, hello.clone())
                    .await
                    .unwrap();
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("{e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
