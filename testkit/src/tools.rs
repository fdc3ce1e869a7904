//! Finding the external programs the tests need.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Finds a program from an environment variable, then on the usual paths.
pub(crate) fn find(env: &str, names: &[&str], what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "{env}={} does not exist: run `scripts/test.sh`, which installs {what}",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from));
    for d in dirs {
        for n in names {
            let candidate = d.join(n);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{what} not found: run the tests with `scripts/test.sh`, which installs it and sets {env}"
    )
}

/// The openssl command.
pub fn openssl() -> PathBuf {
    find("MQTTCAL_OPENSSL", &["openssl"], "openssl")
}

/// xmllint (libxml2), to validate certificates against the DCC schema.
pub fn xmllint() -> PathBuf {
    find(
        "MQTTCAL_XMLLINT",
        &["xmllint"],
        "xmllint (Debian package libxml2-utils)",
    )
}

/// pdftotext (poppler), to read back the text of PDF certificates.
pub fn pdftotext() -> PathBuf {
    find(
        "MQTTCAL_PDFTOTEXT",
        &["pdftotext"],
        "pdftotext (Debian package poppler-utils)",
    )
}

/// Chromium, for the browser test of the web interface.
pub fn chromium() -> PathBuf {
    find(
        "MQTTCAL_CHROMIUM",
        &["chromium"],
        "Chromium (Debian package chromium)",
    )
}

/// ChromeDriver, Chromium's WebDriver server (never one downloaded at test time).
pub fn chromedriver() -> PathBuf {
    find(
        "MQTTCAL_CHROMEDRIVER",
        &["chromedriver"],
        "ChromeDriver (Debian package chromium-driver)",
    )
}

/// xmlsec1, to sign and verify XML signatures.
pub fn xmlsec1() -> PathBuf {
    find("MQTTCAL_XMLSEC1", &["xmlsec1"], "xmlsec1")
}

/// A self-signed RSA key pair made by openssl in `dir` for `name`, valid a day: the paths
/// of the key and of its certificate (PEM).
pub fn self_signed_pair(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}-key.pem"));
    let cert = dir.join(format!("{name}-cert.pem"));
    let out = std::process::Command::new(openssl())
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={name}")])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

/// The Python interpreter that has paho-mqtt 2.x (`MQTTCAL_PYTHON`).
pub fn python() -> PathBuf {
    let p = std::env::var_os("MQTTCAL_PYTHON").filter(|p| !p.is_empty()).unwrap_or_else(|| {
        panic!("MQTTCAL_PYTHON is not set: run the tests with `scripts/test.sh`, which makes a virtual environment with paho-mqtt")
    });
    PathBuf::from(p)
}

/// The report-style Python peer (`testkit/python/report_node.py`, paho-mqtt 2.x) with
/// `args`, for the broker on 127.0.0.1:`port`.
pub fn python_peer(port: u16, args: &[&str]) -> std::process::Command {
    let script: PathBuf = [env!("CARGO_MANIFEST_DIR"), "python", "report_node.py"]
        .iter()
        .collect();
    let mut c = std::process::Command::new(python());
    c.arg(script).args(args).arg("--port").arg(port.to_string());
    c
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Waits until something accepts connections on `port`; `false` on timeout.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The resident memory of process `pid` in KiB (VmRSS), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}
