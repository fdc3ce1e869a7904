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
