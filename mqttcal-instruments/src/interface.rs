//! Byte-level links to instruments: the [`Interface`] trait, a raw TCP socket (SCPI on port
//! 5025), a serial port, a Prologix-style GPIB-Ethernet adapter, a replay of recorded exchanges for offline tests, and VISA-style resource strings.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod open;
mod prologix;
mod replay;
mod resource;
mod stream;
#[cfg(feature = "visa")]
mod visa;

pub use open::{open, OpenOptions};
pub use prologix::Prologix;
pub use replay::Replay;
pub use resource::Resource;
pub use stream::{SerialInterface, StreamInterface, TcpInterface};
#[cfg(feature = "visa")]
pub use visa::{VisaInterface, VisaStream};

/// A boxed future, so [`Interface`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the link to an instrument (the outer error layer; errors the instrument
/// itself reports are [`DeviceError`](crate::scpi::DeviceError)s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterfaceError {
    /// The instrument cannot be reached or the link broke.
    #[error("{resource}: i/o error")]
    Io {
        /// The instrument's resource string.
        resource: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("{resource}: no answer within {} s", timeout.as_secs_f64())]
    Timeout {
        /// The instrument's resource string.
        resource: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The instrument closed the connection.
    #[error("{resource}: connection closed by the instrument")]
    Closed {
        /// The instrument's resource string.
        resource: String,
    },
    /// The instrument answered something we cannot understand.
    #[error("{resource}: unexpected answer to `{command}`: {problem}")]
    Protocol {
        /// The instrument's resource string.
        resource: String,
        /// The command sent.
        command: String,
        /// What is wrong.
        problem: String,
    },
    /// A resource string we cannot use.
    #[error("bad resource `{resource}`: {problem}")]
    BadResource {
        /// The resource string.
        resource: String,
        /// What is wrong.
        problem: String,
    },
}

impl InterfaceError {
    /// The same error, naming `name` as the instrument (e.g. a GPIB address behind an
    /// adapter instead of the adapter's socket).
    pub fn for_resource(mut self, name: &str) -> Self {
        match &mut self {
            Self::Io { resource, .. }
            | Self::Timeout { resource, .. }
            | Self::Closed { resource }
            | Self::Protocol { resource, .. }
            | Self::BadResource { resource, .. } => *resource = name.to_owned(),
        }
        self
    }
}

/// An open byte link to one instrument.
pub trait Interface: Send + std::fmt::Debug {
    /// Sends bytes as they are.
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), InterfaceError>>;

    /// Reads up to and including `terminator`; returns the bytes without it.
    fn read_until(&mut self, terminator: u8) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>>;

    /// Reads exactly `n` bytes.
    fn read_exact(&mut self, n: usize) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>>;

    /// Discards anything buffered from the instrument.
    fn clear(&mut self) -> BoxFuture<'_, Result<(), InterfaceError>>;

    /// How long a read may wait.
    fn set_timeout(&mut self, timeout: Duration);

    /// The resource string, for messages.
    fn resource(&self) -> &str;
}

/// Sends `command` followed by a newline.
pub async fn send(iface: &mut dyn Interface, command: &str) -> Result<(), InterfaceError> {
    let mut line = Vec::with_capacity(command.len() + 1);
    line.extend_from_slice(command.as_bytes());
    line.push(b'\n');
    iface.write(&line).await
}

/// Sends `command` and reads one line of answer, without the line end.
pub async fn query(iface: &mut dyn Interface, command: &str) -> Result<String, InterfaceError> {
    send(iface, command).await?;
    let line = iface.read_until(b'\n').await?;
    let text = String::from_utf8(line).map_err(|_| InterfaceError::Protocol {
        resource: iface.resource().to_owned(),
        command: command.to_owned(),
        problem: "the answer is not text".into(),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Sends `command` and reads a definite-length arbitrary block (and its line end).
pub async fn query_block(
    iface: &mut dyn Interface,
    command: &str,
) -> Result<Vec<u8>, InterfaceError> {
    send(iface, command).await?;
    let protocol = |iface: &dyn Interface, problem: &str| InterfaceError::Protocol {
        resource: iface.resource().to_owned(),
        command: command.to_owned(),
        problem: problem.to_owned(),
    };
    let head = iface.read_exact(2).await?;
    if head[0] != b'#' || !(b'1'..=b'9').contains(&head[1]) {
        return Err(protocol(&*iface, "not a definite-length block"));
    }
    let digits = iface.read_exact(usize::from(head[1] - b'0')).await?;
    let len: usize = std::str::from_utf8(&digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(&*iface, "bad block length"))?;
    let body = iface.read_exact(len).await?;
    let _ = iface.read_until(b'\n').await?;
    Ok(body)
}
