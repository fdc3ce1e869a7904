//! The command explains itself: what is at a wrong address (fast), why a call met
//! silence, what a mistyped name was meant to be, and long calls kept alive by progress.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::{Context, NodeBuilder, NodeError, NodeHandle};
use mqttcal_testkit::{free_port, BrokerKind, Mosquitto};
use serde_json::{json, Map, Value};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `slow` answers `wait` after `secs`, reporting progress every 100 ms if `progress`.
async fn slow_node(url: &str) -> NodeHandle {
    NodeBuilder::new("slow")
        .capability(
            "wait",
            "Waits `secs`, with progress if asked",
            |p: Map<String, Value>, ctx: Context| async move {
                let secs = p["secs"].as_f64().unwrap_or(1.0);
                let steps = (secs * 10.0) as u64;
                for i in 0..steps {
                    if p["progress"] == true {
                        ctx.progress(i, steps, Some("waiting")).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok::<_, NodeError>(json!({"waited": secs}))
            },
        )
        .build()
        .start(&transport(url))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_says_whether_the_node_lives_and_suggests_a_longer_timeout() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = slow_node(&broker.url()).await;
    let out = output(mqttcal(
        &broker.url(),
        &["call", "slow", "wait", r#"{"secs": 3}"#, "--timeout", "0.5"],
    ));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("`slow` is running (it answered `ping`)"),
        "{err}"
    );
    assert!(err.contains("within 0.5 s"), "{err}");
    assert!(err.contains("--timeout"), "{err}");

    // Progress is a sign of life: 2 s of work in steps of 100 ms pass a 0.5 s timeout.
    let t = Instant::now();
    let out = output(mqttcal(
        &broker.url(),
        &[
            "call",
            "slow",
            "wait",
            r#"{"secs": 2, "progress": true}"#,
            "--timeout",
            "0.5",
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed() >= Duration::from_secs(2));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["reply"]["waited"], 2.0);

    // A node that is not there, named like one that is.
    let out = output(mqttcal(
        &broker.url(),
        &["call", "slwo", "wait", "--timeout", "0.3"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `slow`?"),
        "{}",
        stderr(&out)
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_capabilities_get_a_suggestion_and_a_broadcast_nobody_serves_says_so() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = slow_node(&broker.url()).await;
    let out = output(mqttcal(&broker.url(), &["call", "slow", "wiat"]));
    assert_eq!(out.status.code(), Some(1));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["error"]["code"], "unknown_capability");
    assert_eq!(reply["error"]["details"]["did_you_mean"], "wait");
    assert!(
        stderr(&out).contains("did you mean `wait`?"),
        "{}",
        stderr(&out)
    );

    // A long stranger is echoed cut short.
    let long = "w".repeat(5000);
    let out = output(mqttcal(&broker.url(), &["call", "slow", &long]));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() < 200, "{message}");

    let out = output(mqttcal(
        &broker.url(),
        &["call", "*", "nosuchcap", "--timeout", "0.5"],
    ));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("has a capability `nosuchcap`") && err.contains("none of the 1 node(s)"),
        "{err}"
    );
    let out = output(mqttcal(
        &broker.url(),
        &["call", "*", "wai", "--timeout", "0.5"],
    ));
    assert!(
        stderr(&out).contains("did you mean `wait`?"),
        "{}",
        stderr(&out)
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn stop_waits_for_the_bye_and_an_unknown_node_exits_non_zero() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let mut node = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "stopme"]));
    let c = client(&broker.url()).await;
    wait_ping(&c, "stopme").await;
    let out = output(mqttcal(&broker.url(), &["stop", "stopme"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with("stopme: stopping\nstopme: stopped (said bye"),
        "{said}"
    );
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));

    let out = output(mqttcal(
        &broker.url(),
        &["stop", "stopme", "--timeout", "0.5"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("it does not answer `ping`"),
        "{}",
        stderr(&out)
    );
}

/// Runs `mqttcal --broker url ping x`: its exit code, its message and how long it took.
fn ping_at(url: &str, extra: &[&str]) -> (Option<i32>, String, Duration) {
    let t = Instant::now();
    let mut cmd = mqttcal(url, &["ping", "x"]);
    cmd.args(extra);
    let out = output(cmd);
    (out.status.code(), stderr(&out), t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_address_fails_within_2_s_saying_what_is_there() {
    // Nothing listening.
    let free = free_port();
    let (code, err, took) = ping_at(&format!("mqtt://127.0.0.1:{free}"), &[]);
    assert_eq!(code, Some(3));
    assert!(err.contains("nothing listens at"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Not MQTT: a server that answers like a web server, and one that says nothing.
    for (reply, expect) in [
        (
            &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
            "it answered `HTTP/1.1 400 Bad Request`",
        ),
        (&b""[..], "does not answer MQTT's CONNECT"),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for mut s in listener.incoming().take(2).flatten() {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
                if reply.is_empty() {
                    std::thread::sleep(Duration::from_secs(3));
                }
            }
        });
        let (code, err, took) = ping_at(&format!("mqtt://127.0.0.1:{port}"), &[]);
        assert_eq!(code, Some(3));
        assert!(err.contains(expect), "{err}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        drop(server);
    }

    // An MQTT 3.1.1 port: the embedded broker's port for report-style peers.
    let (_broker, _v5, v4) = spawn_broker(&["broker", "--port", "0", "--v4-port", "0"]);
    let (code, err, took) = ping_at(&v4, &[]);
    assert_eq!(code, Some(3));
    assert!(err.contains("is an MQTT 3.1.1 broker"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A TLS port asked in plain text, and a plain port asked over TLS.
    let tls = Mosquitto::start(BrokerKind::Tls);
    let (code, err, took) = ping_at(&format!("mqtt://localhost:{}", tls.port()), &[]);
    assert_eq!(code, Some(3));
    assert!(err.contains("expects TLS: use mqtts://"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let plain = Mosquitto::start(BrokerKind::Stock);
    let ca = tls.ca_cert().display().to_string();
    let (code, err, took) = ping_at(
        &format!("mqtts://localhost:{}", plain.port()),
        &["--ca-cert", &ca],
    );
    assert_eq!(code, Some(3));
    assert!(err.contains("is a plain MQTT port, not TLS"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Runs `mqttcal` with `stdout` or `stderr` on a terminal (one end of a pseudo-terminal
/// pair); what it wrote there, as text.
fn on_terminal(cmd: std::process::Command, stream: &str) -> (Option<i32>, String) {
    let pty = mqttcal_testkit::PtyPair::start();
    let reader = std::fs::File::open(pty.b()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let tty = std::fs::OpenOptions::new()
        .write(true)
        .open(pty.a())
        .unwrap();
    let mut cmd = cmd;
    if stream == "stdout" {
        cmd.stdout(tty);
    } else {
        cmd.stderr(tty);
    }
    let status = cmd.stdin(std::process::Stdio::null()).status().unwrap();
    let mut got = Vec::new();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
        got.extend(chunk);
    }
    (status.code(), String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_is_a_table_on_a_terminal_and_progress_a_bar() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = slow_node(&broker.url()).await;
    let (code, shown) = on_terminal(mqttcal(&broker.url(), &["map", "slow"]), "stdout");
    assert_eq!(code, Some(0));
    assert!(shown.contains("slow (4 capabilities)"), "{shown}");
    assert!(
        shown.contains("Waits `secs`, with progress if asked"),
        "{shown}"
    );
    assert!(
        !shown.contains("\"from\""),
        "no JSON on a terminal: {shown}"
    );
    // Piped, or with --json, it is JSON lines.
    let out = output(mqttcal(&broker.url(), &["map", "slow"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["from"], "slow");
    let (_, shown) = on_terminal(mqttcal(&broker.url(), &["map", "slow", "--json"]), "stdout");
    assert!(shown.contains("\"from\":\"slow\""), "{shown}");

    let (code, shown) = on_terminal(
        mqttcal(
            &broker.url(),
            &["call", "slow", "wait", r#"{"secs": 1, "progress": true}"#],
        ),
        "stderr",
    );
    assert_eq!(code, Some(0));
    assert!(shown.contains("/10  waiting"), "{shown}");
    assert!(shown.contains("[###"), "a bar: {shown}");
    // Piped, nothing but the reply.
    let out = output(mqttcal(
        &broker.url(),
        &["call", "slow", "wait", r#"{"secs": 0.5, "progress": true}"#],
    ));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_out_writes_a_replys_content_to_a_file() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let node = NodeBuilder::new("exporter")
        .capability(
            "export",
            "A CSV file",
            |_: Map<String, Value>, _ctx: Context| async move {
                Ok::<_, NodeError>(json!({"format": "csv", "rows": 2, "content": "a,b\r\n1,2\r\n"}))
            },
        )
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("z1.csv");
    let out = output(mqttcal(
        &broker.url(),
        &[
            "call",
            "exporter",
            "export",
            "--out",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a,b\r\n1,2\r\n");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reply"]["file"], file.display().to_string());
    assert!(
        v["reply"].get("content").is_none(),
        "the file, not the text"
    );
    // Into a folder.
    let folder = format!("{}/exports/", dir.path().display());
    let out = output(mqttcal(
        &broker.url(),
        &["call", "exporter", "export", "--out", &folder],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.path().join("exports/export.csv").is_file());
    node.stop().await.unwrap();
}

/// `mqttcal` in production mode: TLS, the addressed layout, logged in as `user`.
fn mqttcal_as(broker: &Mosquitto, user: &str, args: &[&str]) -> std::process::Command {
    let ca = broker.ca_cert().display().to_string();
    let mut c = mqttcal(&broker.url(), &["--ca-cert", &ca, "--layout", "addressed"]);
    c.args(["--username", user, "--password", Mosquitto::PASSWORD]);
    c.args(args);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_production_mode_a_call_with_progress_and_a_stop_hold_one_session_each() {
    // The shipped settings: one login, one client id (`use_username_as_clientid`).
    let broker = Mosquitto::start(BrokerKind::Secured);
    let node = NodeBuilder::new("labd")
        .layout(mqttcal_core::topics::Layout::Addressed)
        .capability(
            "wait",
            "Waits `secs`, with progress",
            |p: Map<String, Value>, ctx: Context| async move {
                let steps = (p["secs"].as_f64().unwrap_or(1.0) * 10.0) as u64;
                for i in 0..steps {
                    ctx.progress(i, steps, Some("waiting")).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok::<_, NodeError>(json!({"waited": steps}))
            },
        )
        .build()
        .start(&tls(&broker, Some("labd")))
        .await
        .unwrap();
    let out = output(mqttcal_as(
        &broker,
        "alice",
        &["call", "labd", "wait", r#"{"secs": 2}"#, "--timeout", "0.6"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("lost"),
        "one connection, never taken over: {}",
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reply"]["waited"], 20);

    // Progress from another login, in labd's name, keeps nobody waiting: the broker's ACL
    // puts it under mallory's topic, and the command reads the topic's sender.
    let t = Instant::now();
    let spoof = tokio::spawn({
        let transport = tls(&broker, Some("mallory"));
        async move {
            use mqttcal_core::transport::{Outgoing, QoS, SessionSpec, Transport};
            let link = transport
                .connect(SessionSpec::new("mallory", vec![]))
                .await
                .unwrap();
            for i in 0..40 {
                let fake = json!({"from": "ghost", "to": "alice", "requestid": "alice-1", "i": i, "n": 40});
                let _ = link
                    .publisher
                    .publish(Outgoing {
                        topic: "progress/mallory".into(),
                        payload: serde_json::to_vec(&fake).unwrap().into(),
                        qos: QoS::AtMostOnce,
                        retain: false,
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let out = output(mqttcal_as(
        &broker,
        "alice",
        &["call", "ghost", "read", "--timeout", "0.5"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    spoof.abort();

    let out = output(mqttcal_as(&broker, "admin", &["stop", "labd"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("labd: stopped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr(&out).contains("lost"), "{}", stderr(&out));
    node.wait().await.unwrap();
}
