//! Private Mosquitto brokers on free ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::tools::{find, free_port, openssl, wait_for_port};

/// Which config file from `testkit/conf/` the broker runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Stock settings: no TCP_NODELAY, default queue limits.
    Stock,
    /// Stock plus `set_tcp_nodelay true`.
    NoDelay,
    /// TLS listener with a password file (user [`Mosquitto::USER`]).
    Tls,
    /// The queue, in-flight, persistence and size settings of the production configuration
    /// `deploy/mosquitto/mosquitto.conf`, on a plain loopback listener.
    Production,
    /// Production mode whole: the production configuration with TLS, a password file with
    /// the logins of [`Mosquitto::SECURED_USERS`] (password [`Mosquitto::PASSWORD`]), the
    /// shipped ACL `deploy/mosquitto/acl`, the login as client id, logging at debug level.
    Secured,
}

/// The production configuration with its listeners, files and logging replaced by ours.
fn production_template() -> String {
    const DROP: &[&str] = &[
        "listener",
        "cafile",
        "certfile",
        "keyfile",
        "tls_version",
        "password_file",
        "acl_file",
        "allow_anonymous",
        "persistence_location",
        "log_dest",
        "log_type",
        "connection_messages",
        "log_timestamp",
        "use_username_as_clientid",
    ];
    let mut out: Vec<String> = include_str!("../../deploy/mosquitto/mosquitto.conf")
        .lines()
        .filter(|l| {
            let key = l.split_whitespace().next().unwrap_or("");
            !key.starts_with('#') && !key.is_empty() && !DROP.contains(&key)
        })
        .map(str::to_owned)
        .collect();
    out.push("listener {port} 127.0.0.1".into());
    out.push("allow_anonymous true".into());
    out.push("persistence_location {dir}/".into());
    // $SYS counters every second, for tests that watch what the broker drops.
    out.push("sys_interval 1".into());
    out.join("\n")
}

/// The production configuration as shipped, on a TLS loopback listener with our files.
fn secured_template() -> String {
    let base = production_template().replace("allow_anonymous true", "allow_anonymous false");
    let base = base.replace("listener {port} 127.0.0.1", "");
    format!(
        "{base}\nlistener {{port}} 127.0.0.1\ncafile {{dir}}/ca.pem\ncertfile {{dir}}/server.pem\nkeyfile {{dir}}/server.key\npassword_file {{dir}}/passwd\nacl_file {{dir}}/acl\nuse_username_as_clientid true\nlog_type all\n"
    )
}

impl BrokerKind {
    fn template(self) -> String {
        match self {
            Self::Stock => include_str!("../conf/stock.conf").into(),
            Self::NoDelay => include_str!("../conf/nodelay.conf").into(),
            Self::Tls => include_str!("../conf/tls.conf").into(),
            Self::Production => production_template(),
            Self::Secured => secured_template(),
        }
    }
}

/// A Mosquitto process of a test's own, killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    kind: BrokerKind,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    /// User name accepted by a [`BrokerKind::Tls`] broker.
    pub const USER: &'static str = "lab";
    /// Password of [`Mosquitto::USER`], and of every login of a [`BrokerKind::Secured`]
    /// broker.
    pub const PASSWORD: &'static str = "s3cret-lab";
    /// The logins of a [`BrokerKind::Secured`] broker: the reference nodes and their
    /// intakes, an administrator, an operator, two people and an intruder.
    pub const SECURED_USERS: &'static [&'static str] = &[
        "admin",
        "operator",
        "labd",
        "datad",
        "datad-ingest",
        "logd",
        "logd-intake",
        "tpld",
        "ctrld",
        "webd",
        "alice",
        "bob",
        "mallory",
    ];

    /// Starts a broker of `kind` on a free port and waits until it listens.
    pub fn start(kind: BrokerKind) -> Self {
        Self::start_with(kind, "")
    }

    /// Starts a broker of `kind` with `extra` lines of configuration (a bridge, say;
    /// `{dir}` stands for the broker's folder).
    pub fn start_with(kind: BrokerKind, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        match kind {
            BrokerKind::Tls => {
                make_certificates(dir.path());
                make_password_file(dir.path(), &[Self::USER]);
            }
            BrokerKind::Secured => {
                make_certificates(dir.path());
                make_password_file(dir.path(), Self::SECURED_USERS);
                std::fs::write(
                    dir.path().join("acl"),
                    include_str!("../../deploy/mosquitto/acl"),
                )
                .expect("write the ACL");
            }
            _ => {}
        }
        let conf = kind
            .template()
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        let conf = format!(
            "{conf}\nuser root\nlog_dest file {}/mosquitto.log\nlog_timestamp_format %H:%M:%S\n{}\n",
            dir.path().display(),
            extra.replace("{dir}", &dir.path().display().to_string())
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).expect("write config");
        let mut m = Self {
            kind,
            port,
            dir,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let bin = find("MQTTCAL_MOSQUITTO", &["mosquitto"], "mosquitto");
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}: {}",
            self.port,
            self.log()
        );
    }

    /// The broker's URL (`mqtts://localhost:PORT` for TLS).
    pub fn url(&self) -> String {
        match self.kind {
            BrokerKind::Tls | BrokerKind::Secured => format!("mqtts://localhost:{}", self.port),
            _ => format!("mqtt://127.0.0.1:{}", self.port),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA that signed the broker's certificate (TLS brokers).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that did not sign the broker's certificate (TLS brokers).
    pub fn untrusted_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// A scratch directory that lives as long as the broker.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker cleanly (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Kills the broker (SIGKILL: no wills, nothing saved since the last autosave) and
    /// waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped or killed broker again on the same port (from its persistence file
    /// where the configuration keeps one).
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// Replaces the ACL of a secured broker with `acl` and restarts it on the same port.
    pub fn set_acl(&mut self, acl: &str) {
        std::fs::write(self.dir.path().join("acl"), acl).expect("write the ACL");
        self.stop();
        self.start_again();
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the broker process runs (it was not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the broker and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

/// How many lines of the broker's log a failed test prints.
const LOG_TAIL: usize = 60;

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The broker's side of a failed test: connections, disconnections, refusals.
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            eprintln!(
                "--- the last {} lines of mosquitto's log (port {}) ---\n{}",
                tail.len(),
                self.port,
                tail.join("\n")
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a helper command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA.
fn make_certificates(dir: &Path) {
    let ssl = openssl();
    for ca in ["ca", "other-ca"] {
        run(Command::new(&ssl)
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj"])
            .arg(format!("/CN=mqttcal test {ca}"))
            .args([
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]));
    }
    run(Command::new(&ssl)
        .current_dir(dir)
        .args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]));
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write extensions");
    run(Command::new(&ssl)
        .current_dir(dir)
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
        ])
        .args([
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]));
}

fn make_password_file(dir: &Path, users: &[&str]) {
    let passwd = find(
        "MQTTCAL_MOSQUITTO_PASSWD",
        &["mosquitto_passwd"],
        "mosquitto_passwd",
    );
    let file = dir.join("passwd");
    std::fs::write(&file, "").expect("create the password file");
    for user in users {
        run(Command::new(&passwd)
            .arg("-b")
            .arg(&file)
            .arg(user)
            .arg(Mosquitto::PASSWORD));
    }
}
