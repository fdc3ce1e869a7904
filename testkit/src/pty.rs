//! Serial pseudo-terminal pairs made by socat.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::find;

/// Two linked pseudo-terminals: what one end writes, the other reads, like a null-modem
/// cable. The socat process is killed when dropped.
#[derive(Debug)]
pub struct PtyPair {
    child: Child,
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl PtyPair {
    /// Starts socat and waits until both ends exist.
    pub fn start() -> Self {
        let socat = find("MQTTCAL_SOCAT", &["socat"], "socat");
        let dir = tempfile::tempdir().expect("temporary directory");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let end = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new(socat)
            .arg(end(&a))
            .arg(end(&b))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(a.exists() && b.exists()) {
            assert!(Instant::now() < deadline, "socat made no pseudo-terminals");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            _dir: dir,
            a,
            b,
        }
    }

    /// One end.
    pub fn a(&self) -> &Path {
        &self.a
    }

    /// The other end.
    pub fn b(&self) -> &Path {
        &self.b
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
