//! The `mqttcal` command against a real Mosquitto: exits, messages, last will.

mod common;

use std::time::Duration;

use common::*;
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::Value;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn call_to_a_missing_node_times_out_with_a_clear_message() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let out = output(mqttcal(
        &broker.url(),
        &["call", "ghost", "ping", "--timeout", "0.5"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "no reply from `ghost` to `ping` within 0.5 s, and it does not answer `ping`"
        ),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn error_replies_are_printed_and_exit_non_zero() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let _node = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "n1"]));
    let c = client(&broker.url()).await;
    wait_ping(&c, "n1").await;

    let out = output(mqttcal(&broker.url(), &["call", "n1", "measure"]));
    assert_eq!(out.status.code(), Some(1));
    let reply: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(reply["error"]["code"], "unknown_capability");
    assert_eq!(reply["reply"], Value::Null);

    let out = output(mqttcal(
        &broker.url(),
        &["call", "n1", "ping", r#"{"verbose": true}"#],
    ));
    assert_eq!(out.status.code(), Some(1));
    let reply: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(reply["error"]["code"], "invalid_params");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`verbose`"));

    let out = output(mqttcal(&broker.url(), &["call", "n1", "ping", "[1]"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be a JSON object"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_reporting_a_failed_check_exits_non_zero() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let checker = mqttcal_core::NodeBuilder::new("checker")
        .capability(
            "check",
            "Reports whether `pass`",
            |p: serde_json::Map<String, Value>, _ctx| async move {
                Ok::<_, mqttcal_core::NodeError>(
                    serde_json::json!({"ok": p["pass"], "why": "test"}),
                )
            },
        )
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let out = output(mqttcal(
        &broker.url(),
        &["call", "checker", "check", r#"{"pass": false}"#],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed check"), "{}", stderr(&out));
    let reply: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(reply["reply"]["ok"], false, "the reply is still printed");
    let out = output(mqttcal(
        &broker.url(),
        &["call", "checker", "check", r#"{"pass": true}"#],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    checker.stop().await.unwrap();
}

#[tokio::test]
async fn a_killed_node_leaves_bye_with_reason_lost() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let mut watch = watch_announce(&broker.url(), "watcher").await;
    let node = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "victim"]));
    expect_announce(&mut watch, "victim", "hello", Duration::from_secs(10)).await;
    node.signal("KILL");
    let bye = expect_announce(&mut watch, "victim", "bye", Duration::from_secs(5)).await;
    assert_eq!(bye.fields["reason"], "lost");
}

#[tokio::test]
async fn sigterm_stops_a_node_cleanly() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let mut watch = watch_announce(&broker.url(), "watcher").await;
    let mut node = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "term"]));
    expect_announce(&mut watch, "term", "hello", Duration::from_secs(10)).await;
    node.signal("TERM");
    let bye = expect_announce(&mut watch, "term", "bye", Duration::from_secs(5)).await;
    assert!(!bye.fields.contains_key("reason"));
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));
}

#[tokio::test]
async fn stop_says_whether_the_node_stops_and_a_second_node_of_a_name_is_refused() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let mut node = Proc::spawn(mqttcal(
        &broker.url(),
        &["run", "base", "--name", "stoppee"],
    ));
    let c = client(&broker.url()).await;
    wait_ping(&c, "stoppee").await;
    let out = output(mqttcal(&broker.url(), &["stop", "stoppee"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("stoppee: stopping\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));

    // A second node of a running node's name is refused before it connects as that name.
    let mut first = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "twin"]));
    wait_ping(&c, "twin").await;
    let out = output(mqttcal(&broker.url(), &["run", "base", "--name", "twin"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already answers"), "{}", stderr(&out));
    assert_eq!(
        first.wait_exit(Duration::from_millis(300)),
        None,
        "the first one runs on"
    );
    wait_ping(&c, "twin").await;

    let out = output(mqttcal(&broker.url(), &["stop", "nosuch"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no reply from `nosuch` to `stop` within 5 s"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn wrong_password_and_untrusted_ca_exit_non_zero_saying_which() {
    let broker = Mosquitto::start(BrokerKind::Tls);
    let ca = broker.ca_cert().display().to_string();
    let bad_ca = broker.untrusted_ca().display().to_string();
    let base = |ca: &str, pw: &str| {
        let mut c = mqttcal(&broker.url(), &["run", "base", "--name", "tls"]);
        c.args([
            "--ca-cert",
            ca,
            "--username",
            Mosquitto::USER,
            "--password",
            pw,
        ]);
        c
    };
    let out = output(base(&ca, "wrong"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("user name or password"),
        "{}",
        stderr(&out)
    );

    let out = output(base(&bad_ca, Mosquitto::PASSWORD));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    // A CA file that is not there is a configuration error (2), not a broker away (3).
    let out = output(base("/nonexistent/ca.pem", Mosquitto::PASSWORD));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ca.pem"), "{}", stderr(&out));

    // The right settings work, through the CLI's ping.
    let mut node = Proc::spawn(base(&ca, Mosquitto::PASSWORD));
    // The node may still be connecting: ping until it answers.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut ping = mqttcal(&broker.url(), &["ping", "tls", "--timeout", "0.5"]);
        ping.args([
            "--ca-cert",
            &ca,
            "--username",
            Mosquitto::USER,
            "--password",
            Mosquitto::PASSWORD,
        ]);
        let out = output(ping);
        if out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < end, "{}", stderr(&out));
    }
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn a_bad_config_file_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.yaml");
    std::fs::write(&path, "mqtt:\n  port: many\n").unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mqttcal"));
    c.arg("--config").arg(&path).args(["ping", "x"]);
    let out = output(c);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("lab.yaml") && err.contains("`mqtt.port`"),
        "{err}"
    );
}

#[test]
fn acl_prints_the_broker_acl_of_ctrlds_policy_or_names_what_is_wrong_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "roles:\n  viewer: ['*.ping']\nusers:\n  alice: viewer\ngateways: [webd]\n",
    )
    .unwrap();
    let config = dir.path().join("lab.yaml");
    std::fs::write(
        &config,
        format!(
            "prefix: lab1\nctrld:\n  policy_file: {}\n",
            policy.display()
        ),
    )
    .unwrap();
    let acl = |config: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mqttcal"));
        c.arg("--config")
            .arg(config)
            .args(["acl", "--node", "labd", "--node", "ctrld"]);
        output(c)
    };
    let out = acl(&config);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in [
        "user alice\ntopic write lab1/request/ctrld/alice\n",
        "user webd\ntopic write lab1/request/ctrld/webd\ntopic write lab1/announce/webd\n",
        "user labd\ntopic write lab1/request/+/labd\n",
        "user admin\ntopic write lab1/system/+/admin\n",
    ] {
        assert!(text.contains(line), "`{line}` in {text}");
    }
    std::fs::write(&policy, "roles:\n  viewer: ['ping']\n").unwrap();
    let out = acl(&config);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("policy.yaml") && err.contains("`ping`"),
        "{err}"
    );
}

#[tokio::test]
async fn watch_prints_live_traffic_one_message_per_line() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let _node = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "seen"]));
    let c = client(&broker.url()).await;
    wait_ping(&c, "seen").await;
    let watcher = Proc::spawn(mqttcal(
        &broker.url(),
        &["watch", "request", "reply", "--count", "2"],
    ));
    // The watcher may still be subscribing: ping until it has printed two lines.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let mut watcher = watcher;
    while watcher.0.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < end, "watch printed nothing");
        let _ = c
            .context()
            .request("seen", "ping", serde_json::json!({}))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut out = String::new();
    std::io::Read::read_to_string(watcher.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().any(|l| l.contains("request ping")), "{out}");
    assert!(lines.iter().all(|l| l.contains(" -> ")), "{out}");
}

#[test]
fn run_labd_without_its_section_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    std::fs::write(&path, "servicename: labd\nlabd:\n  lab-id: X\n  dmm: { resource: \"TCPIP::h::1::SOCKET\", driver: fluke }\n").unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mqttcal"));
    c.arg("--config").arg(&path).args(["run", "labd"]);
    let out = output(c);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("node.yaml") && err.contains("`labd.dmm.driver`"),
        "{err}"
    );
}

/// A broker restart publishes every node's will, and every node comes back moments later in
/// the same run: logd writes `disconnected` then `rejoined`, never `lost`. A node killed for
/// good is reported lost once the grace has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_is_no_loss_in_the_logbook_and_a_killed_node_is() {
    let mut broker = Mosquitto::start(BrokerKind::Production);
    let pg = mqttcal_testkit::Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("presence"))
        .await
        .unwrap();
    let logd = mqttcal_nodes::logd::node_with_grace("logd", store, None, Duration::from_secs(2))
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    let _steady = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "steady"]));
    let ghost = Proc::spawn(mqttcal(&broker.url(), &["run", "base", "--name", "ghost"]));
    let c = client(&broker.url()).await;
    let entries = |kind: &'static str| {
        let ctx = c.context().clone();
        async move {
            // A request lost while the broker restarts is asked again.
            let rows = loop {
                match ctx
                    .request_timeout(
                        "logd",
                        "search",
                        serde_json::json!({"kind": kind}),
                        Duration::from_secs(2),
                    )
                    .await
                {
                    Ok(rows) => break rows,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            let mut nodes: Vec<String> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["node"].as_str().unwrap_or_default().to_owned())
                .collect();
            nodes.sort();
            nodes
        }
    };
    let wait_for = |kind: &'static str, want: Vec<&'static str>| {
        let entries = &entries;
        async move {
            let end = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let got = entries(kind).await;
                if want.iter().all(|w| got.iter().any(|g| g == w)) {
                    return got;
                }
                assert!(
                    std::time::Instant::now() < end,
                    "{kind}: {got:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_for("joined", vec!["ghost", "steady"]).await;

    broker.restart(); // SIGTERM: Mosquitto publishes every will, then comes back
    let rejoined = wait_for("rejoined", vec!["ghost", "steady"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // past the grace
    assert!(
        entries("lost").await.is_empty(),
        "a broker restart is no loss"
    );
    let disconnected = entries("disconnected").await;
    assert!(
        disconnected.contains(&"steady".to_owned()),
        "{disconnected:?} {rejoined:?}"
    );

    ghost.signal("KILL");
    let lost = wait_for("lost", vec!["ghost"]).await;
    assert_eq!(lost, ["ghost"], "only the killed node is lost");
    logd.stop().await.unwrap();
}

#[tokio::test]
async fn logs_written_to_a_file_or_pipe_carry_no_colour_codes() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let stopper = {
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            output(mqttcal(&url, &["stop", "plain"]))
        })
    };
    let mut cmd = mqttcal(&url, &["run", "base", "--name", "plain"]);
    cmd.env("RUST_LOG", "info").env_remove("NO_COLOR");
    let out = output(cmd);
    assert!(stopper.join().unwrap().status.success());
    let log = stderr(&out);
    assert!(log.contains("node started"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in: {log:?}");
}

#[test]
fn users_adds_lists_and_removes_webds_people_with_the_password_from_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people");
    let users = |args: &[&str], stdin: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mqttcal"));
        c.arg("users").arg("--file").arg(&file).args(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = users(&["add", "ada", "--role", "operator"], "a long password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added ada (operator)"));
    let out = users(&["add", "bo", "--role", "viewer"], "another long one\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("a long password"), "{text}");
    let loaded = mqttcal_webd::Users::load(&file).unwrap();
    assert!(mqttcal_webd::users::verify(&loaded, "ada", "a long password").is_some());
    let out = users(&["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ada operator\nbo viewer\n"
    );
    // Short passwords and bad names are refused with the reason, and nothing is written.
    let out = users(&["add", "cy", "--role", "viewer"], "short\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at least 10 characters"),
        "{}",
        stderr(&out)
    );
    let out = users(&["add", "a:b", "--role", "viewer"], "long enough pw\n");
    assert_eq!(out.status.code(), Some(2));
    let out = users(&["remove", "bo"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = users(&["remove", "bo"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no user `bo`"), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&users(&["list"], "").stdout),
        "ada operator\n"
    );
    // `--file` may also follow the subcommand.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqttcal"))
        .args(["users", "list", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ada operator\n");
}
