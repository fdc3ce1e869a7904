//! A replay of recorded command/response pairs, to test drivers with no socket.

use std::collections::VecDeque;
use std::time::Duration;

use super::{BoxFuture, Interface, InterfaceError};

/// Plays an instrument from a script of (command, response) pairs.
///
/// Each line written must equal the next recorded command; its response (if any) becomes
/// readable. A command out of script is a [`InterfaceError::Protocol`] naming both.
///
/// A replay dropped with recorded commands never sent, or responses never read, panics
/// (unless the thread already panics): a driver that stopped sending a command, or stopped
/// reading an answer, fails its test instead of passing it silently.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use mqttcal_instruments::interface::{Replay, query};
/// let mut dmm = Replay::new([("*IDN?", Some("ACME,DMM1,1,1.0"))]);
/// assert_eq!(query(&mut dmm, "*IDN?").await.unwrap(), "ACME,DMM1,1,1.0");
/// assert!(dmm.is_done());
/// # });
/// ```
///
/// ```should_panic
/// use mqttcal_instruments::interface::Replay;
/// let dmm = Replay::new([("*IDN?", Some("ACME,DMM1,1,1.0"))]);
/// drop(dmm); // `*IDN?` was never sent
/// ```
#[derive(Debug)]
pub struct Replay {
    script: VecDeque<(String, Option<String>)>,
    pending: Vec<u8>,
}

impl Replay {
    /// A replay of `pairs`, in order.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        Self {
            script: pairs
                .into_iter()
                .map(|(c, r)| (c.to_owned(), r.map(str::to_owned)))
                .collect(),
            pending: Vec::new(),
        }
    }

    /// Whether every recorded command was sent.
    pub fn is_done(&self) -> bool {
        self.script.is_empty()
    }

    fn mismatch(&self, problem: String) -> InterfaceError {
        InterfaceError::Protocol {
            resource: "replay".into(),
            command: String::new(),
            problem,
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Some((command, _)) = self.script.front() {
            panic!(
                "replay dropped with {} recorded command(s) never sent, the first `{command}`",
                self.script.len()
            );
        }
        if !self.pending.is_empty() {
            panic!(
                "replay dropped with a response never read: `{}`",
                String::from_utf8_lossy(&self.pending).trim_end()
            );
        }
    }
}

impl Interface for Replay {
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), InterfaceError>> {
        Box::pin(async move {
            let text = String::from_utf8_lossy(data);
            for line in text.split_terminator('\n') {
                let line = line.trim_end_matches('\r');
                let Some((expected, response)) = self.script.pop_front() else {
                    return Err(self.mismatch(format!("`{line}` sent after the end of the script")));
                };
                if expected != line {
                    return Err(
                        self.mismatch(format!("sent `{line}`, the recording has `{expected}`"))
                    );
                }
                if let Some(r) = response {
                    self.pending.extend_from_slice(r.as_bytes());
                    self.pending.push(b'\n');
                }
            }
            Ok(())
        })
    }

    fn read_until(&mut self, terminator: u8) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            let i = self
                .pending
                .iter()
                .position(|b| *b == terminator)
                .ok_or_else(|| InterfaceError::Timeout {
                    resource: "replay".into(),
                    timeout: Duration::ZERO,
                })?;
            let mut line: Vec<u8> = self.pending.drain(..=i).collect();
            line.pop();
            Ok(line)
        })
    }

    fn read_exact(&mut self, n: usize) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            if self.pending.len() < n {
                return Err(InterfaceError::Timeout {
                    resource: "replay".into(),
                    timeout: Duration::ZERO,
                });
            }
            Ok(self.pending.drain(..n).collect())
        })
    }

    fn clear(&mut self) -> BoxFuture<'_, Result<(), InterfaceError>> {
        self.pending.clear();
        Box::pin(async { Ok(()) })
    }

    fn set_timeout(&mut self, _timeout: Duration) {}

    fn resource(&self) -> &str {
        "replay"
    }
}
