//! Helpers for the tests of the `mqttcal` command: the binary, the report-style Python
//! peer, clients on a broker.
#![allow(dead_code, unused_imports, unreachable_pub, missing_docs)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mqttcal_core::config::MqttConfig;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{
    Event, Link, MqttTransport, QoS, SessionSpec, Subscription, Transport,
};
use mqttcal_core::Client;

/// The `mqttcal` binary with `--broker url` and `args`.
pub fn mqttcal(url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqttcal"));
    c.arg("--broker").arg(url).args(args);
    c.env_remove("MQTTCAL_BROKER");
    c
}

/// Runs to completion.
pub fn output(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run mqttcal")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(mut c: Command) -> Self {
        Self(
            c.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `timeout` for the process to end; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub use mqttcal_testkit::python_peer;

pub fn transport(url: &str) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

pub async fn client(url: &str) -> Client {
    Client::connect(&transport(url), &format!("test-{}", std::process::id()), "")
        .await
        .unwrap()
}

/// A raw subscription to `announce`.
pub async fn watch_announce(url: &str, id: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            id,
            vec![Subscription::new("announce", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap()
}

/// Waits for an announcement from `from` whose `message` is `message`.
pub async fn expect_announce(
    link: &mut Link,
    from: &str,
    message: &str,
    timeout: Duration,
) -> Envelope {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(end, link.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no `{message}` from `{from}` within {timeout:?}"))
            .expect("link closed");
        if let Event::Message { payload, .. } = ev {
            let env = Envelope::decode(&payload, usize::MAX).unwrap();
            if env.from == from && env.message.as_deref() == Some(message) {
                return env;
            }
        }
    }
}

/// Waits until `node` answers ping.
pub async fn wait_ping(c: &Client, node: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while c
        .context()
        .request_timeout(
            node,
            "ping",
            serde_json::json!({}),
            Duration::from_millis(300),
        )
        .await
        .is_err()
    {
        assert!(Instant::now() < end, "`{node}` never answered ping");
    }
}

/// Runs `mqttcal map '*' --expect N` and returns the sorted names of the nodes that answered.
pub fn map_senders(url: &str, expect: usize) -> Vec<String> {
    let n = expect.to_string();
    let out = output(mqttcal(
        url,
        &["map", "*", "--expect", &n, "--timeout", "5"],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut from: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["from"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    from.sort();
    from
}
