//! A node written to the report in Python (paho-mqtt 2.x) and our nodes, both ways.

mod common;

use std::time::Duration;

use common::*;
use mqttcal_testkit::python_peer;
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::Value;

#[tokio::test]
async fn a_python_peer_gets_map_and_ping_replies_with_its_request_ids() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let _node = Proc::spawn(mqttcal(
        &broker.url(),
        &["run", "base", "--name", "rustnode"],
    ));
    let c = client(&broker.url()).await;
    wait_ping(&c, "rustnode").await;

    let out = python_peer(broker.port(), &["probe", "rustnode"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let sent = l["sent"].as_str().unwrap();
        assert!(sent.starts_with("pyprobe-"));
        assert_eq!(l["reply"]["requestid"], sent, "{l}");
        assert_eq!(l["reply"]["from"], "rustnode");
        assert!(l["reply"]["timestamp"].is_f64());
    }
    assert_eq!(lines[0]["reply"]["reply"][0]["id"], "ping");
    assert_eq!(
        lines[1]["reply"]["reply"]["sdk"]
            .as_str()
            .unwrap()
            .split(' ')
            .next(),
        Some("mqttcal-rust")
    );
}

#[tokio::test]
async fn the_reports_bare_stop_message_makes_a_node_say_bye_and_exit() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let mut node = Proc::spawn(mqttcal(
        &broker.url(),
        &["run", "base", "--name", "stoppable"],
    ));
    let c = client(&broker.url()).await;
    wait_ping(&c, "stoppable").await;

    let out = python_peer(broker.port(), &["stop", "stoppable"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "no bye seen: {stdout}");
    let bye: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(bye["message"], "bye");
    assert_eq!(bye["to"], "*");
    assert!(
        bye.get("reason").is_none(),
        "a clean stop is not `lost`: {bye}"
    );
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));
}

#[tokio::test]
async fn the_cli_maps_and_calls_a_python_node_beside_rust_ones() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let _rust = Proc::spawn(mqttcal(
        &broker.url(),
        &["run", "base", "--name", "rustnode"],
    ));
    let mut py = Proc::spawn(python_peer(broker.port(), &["node", "pynode"]));
    let c = client(&broker.url()).await;
    wait_ping(&c, "rustnode").await;
    wait_ping(&c, "pynode").await;

    assert_eq!(map_senders(&broker.url(), 2), ["pynode", "rustnode"]);

    let out = output(mqttcal(
        &broker.url(),
        &["call", "pynode", "add", r#"{"a": 2, "b": 40}"#],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(reply["reply"]["sum"], 42);
    assert_eq!(reply["from"], "pynode");

    // A request from our side stops the Python node too.
    let out = output(mqttcal(&broker.url(), &["stop", "pynode"]));
    assert!(out.status.success());
    assert_eq!(py.wait_exit(Duration::from_secs(5)), Some(0));
}
