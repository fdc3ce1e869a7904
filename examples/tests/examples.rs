//! Each example, run against a real Mosquitto.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::Value;

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_client"))
        .arg(url)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn custom_node_answers_the_client_example() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let mut node = Kill(
        Command::new(env!("CARGO_BIN_EXE_custom_node"))
            .arg(&url)
            .env_remove("MQTTCAL_BROKER")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = client(&url, &["thermo", "read", r#"{"channel": 3}"#]);
        if out.status.success() || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["channel"], 3);
    assert!((v["celsius"].as_f64().unwrap() - 20.03).abs() < 1e-9);

    let out = client(&url, &["thermo", "set-offset", r#"{"kelvin": 1.0}"#]);
    assert!(out.status.success());
    // The offset took: the same channel reads one kelvin higher.
    let out = client(&url, &["thermo", "read", r#"{"channel": 3}"#]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["celsius"].as_f64().unwrap() - 21.03).abs() < 1e-9, "{v}");
    let out = client(&url, &["thermo", "read", r#"{"channel": 9}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_params"));

    let out = client(&url, &["thermo", "stop"]);
    assert!(out.status.success());
    let end = Instant::now() + Duration::from_secs(5);
    while node.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "custom_node did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes `n` readings on `meas` (with `seq` from 0), a trigger and a message that is not
/// a reading, as the node `labd-sim`.
fn publish(url: &str, values: &[f64]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = mqttcal_core::config::MqttConfig::default();
        cfg.apply_url(url).unwrap();
        let transport = mqttcal_core::transport::MqttTransport::new(cfg);
        let c = mqttcal_core::Client::connect(&transport, "labd-sim", "")
            .await
            .unwrap();
        // The two that are not readings go first: once the readings are written, the
        // logger (which takes messages in order) has counted them too.
        c.context()
            .send("meas", "labd", serde_json::json!({"cmd": "measure"}))
            .await
            .unwrap();
        c.context()
            .publish("meas", serde_json::json!({"DC-measurement": "ten volts"}))
            .await
            .unwrap();
        for v in values {
            c.context()
                .publish("meas", serde_json::json!({"DC-measurement": v, "pol": "+"}))
                .await
                .unwrap();
        }
        c.close().await;
    });
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn meas_logger(url: &str, file: &std::path::Path) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_meas_logger"))
            .arg(url)
            .arg(file)
            .env_remove("MQTTCAL_BROKER")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Stops the logger with the `stop` capability; what it printed.
fn stop_logger(url: &str, mut node: Kill) -> String {
    let out = client(url, &["meas-logger", "stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let end = Instant::now() + Duration::from_secs(5);
    while node.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "meas_logger did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(node.0.stdout.as_mut().unwrap(), &mut text).unwrap();
    text
}

#[test]
fn meas_logger_keeps_every_reading_even_those_sent_while_it_was_away() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meas.jsonl");
    let node = meas_logger(&url, &file);
    // Up once it answers; its persistent session exists from then on.
    wait_for("meas-logger", || {
        client(&url, &["meas-logger", "ping"]).status.success()
    });
    publish(&url, &[10.0, 10.1, 10.2]);
    wait_for("3 lines", || lines(&file).len() == 3);
    let summary = stop_logger(&url, node);
    assert!(
        summary.contains("stored 3 readings, set aside 1, skipped 1"),
        "{summary}"
    );

    // Sent while it is away: kept by the broker, written at the next start.
    publish(&url, &[10.3, 10.4]);
    let node = meas_logger(&url, &file);
    wait_for("5 lines", || lines(&file).len() == 5);
    let all = lines(&file);
    let values: Vec<f64> = all
        .iter()
        .map(|l| l["reading"]["DC-measurement"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [10.0, 10.1, 10.2, 10.3, 10.4]);
    assert_eq!(all[0]["from"], "labd-sim");
    assert_eq!(all[4]["seq"], 2, "a new sender epoch counts from 0 again");
    let summary = stop_logger(&url, node);
    assert!(summary.contains("stored 2 readings"), "{summary}");
}

#[test]
fn the_budget_example_evaluates_a_budget_from_json() {
    use std::io::Write;
    let budget = serde_json::json!({
        "inputs": [
            {"name": "reference", "value": 10.0, "u": 3.0, "sensitivity": 1.0, "kind": "type_b", "dof": null},
            {"name": "difference", "value": 0.0, "u": 4.0, "sensitivity": 1.0, "kind": "type_a", "dof": 4.0}
        ],
        "correlations": []
    });
    let run = |p: Option<&str>, text: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_budget"))
            .arg("-")
            .args(p)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(Some("0.95"), &budget.to_string());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // u_c = 5, ν_eff = 5⁴ / (4⁴/4) = 9.77, k = t₀.₉₅(9.77) ≈ 2.24, U ≈ 11.
    assert!(stdout.contains("u_c = 5.0000e0"), "{stdout}");
    assert!(stdout.contains("nu_eff = 9.77"), "{stdout}");
    assert!(stdout.contains("U = 11"), "{stdout}");
    let bad = budget.to_string().replace("\"u\":4.0", "\"u\":-4.0");
    let out = run(None, &bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("negative"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_certificate_example_renders_json_data_and_names_a_bad_field() {
    let run = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_certificate"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let json = run(&["--example-json"], "");
    assert!(json.status.success());
    let json = String::from_utf8(json.stdout).unwrap();
    // The example's data, read back from JSON, renders the documented DCC.
    let xml = run(&["-"], &json);
    assert!(
        xml.status.success(),
        "{}",
        String::from_utf8_lossy(&xml.stderr)
    );
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/certificates/example-dcc.xml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(xml.stdout).unwrap(), documented);
    let bad = run(&["-"], &json.replace("\"0.00000093\"", "\"-0.00000093\""));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("results[0].expanded_uncertainty"), "{err}");
    let html = run(&["--html", "-"], &json);
    assert!(html.status.success());
    assert!(String::from_utf8(html.stdout)
        .unwrap()
        .contains("0.00000093 V"));
}
