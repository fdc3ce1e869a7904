//! Helpers for the tests of the `mqttcal` command: the binary and the report-style Python
//! peer, plus the nodes' own test helpers (clients, announcements, nodes on a broker).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

// Clients, announcements and the reference nodes on a broker: the helpers of the nodes'
// own tests, shared rather than copied.
#[path = "../../../mqttcal-nodes/tests/common/mod.rs"]
mod nodes;
pub use nodes::*;

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

/// Spawns `mqttcal ARGS` and returns it with the URLs it printed (MQTT 5, MQTT 3.1.1).
pub fn spawn_broker(args: &[&str]) -> (Proc, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqttcal"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut v5, mut v4) = (None, None);
    while v5.is_none() || v4.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the broker printed its URLs");
        if let Some(u) = line.strip_prefix("export MQTTCAL_BROKER=") {
            v5 = Some(u.to_owned());
        }
        if let Some(rest) = line.split("MQTT 3.1.1 at ").nth(1) {
            v4 = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    (Proc(child), v5.unwrap(), v4.unwrap())
}

/// Starts `mqttcal sim-lab` and returns it with the labd configuration it printed.
pub fn spawn_sim_lab(time_factor: &str, log: &std::path::Path) -> (Proc, String) {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mqttcal"));
    let (child, section) = mqttcal_testkit::spawn_sim_lab(bin, time_factor, log);
    (Proc(child), section)
}

/// The resident memory of process `pid`, in bytes.
pub fn rss(pid: u32) -> u64 {
    mqttcal_testkit::rss_kib(pid).expect("the process runs") * 1024
}

/// Spawns `mqttcal --config CONFIG run KIND ARGS` on `url`, with `database` as
/// `MQTTCAL_DATABASE_URL`, logging at info level to the end of the file `log`.
pub fn run_node(
    url: &str,
    config: &std::path::Path,
    kind: &str,
    args: &[&str],
    database: &str,
    log: &std::path::Path,
) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap(), "run", kind];
    all.extend_from_slice(args);
    let mut cmd = mqttcal(url, &all);
    cmd.env("MQTTCAL_DATABASE_URL", database)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Proc(cmd.spawn().unwrap())
}

/// The last 40 lines of each of `files` in `dir`, for a failure's message.
pub fn log_tails(dir: &std::path::Path, files: &[&str]) -> String {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {f}\n{}\n", tail.join("\n"))
        })
        .collect()
}

/// datad `datad`'s `gaps` report for the readings of `origin`.
pub async fn gaps(c: &mqttcal_core::Client, datad: &str, origin: &str) -> serde_json::Value {
    c.context()
        .request_timeout(
            datad,
            "gaps",
            serde_json::json!({ "origin": origin }),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
}
