//! Instruments through a vendor VISA library (feature `visa`), loaded at run time, so the
//! feature builds on machines without VISA and fails at run time with a clear message.

use std::ffi::CString;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use visa_rs::prelude::{AccessMode, AsResourceManager, DefaultRM};
use visa_rs::{InstrumentTokioAdapter, TIMEOUT_IMMEDIATE};

use super::{InterfaceError, StreamInterface};

/// A VISA session as a byte stream; it keeps its resource manager open. Available with the
/// `visa` feature.
pub struct VisaStream {
    io: InstrumentTokioAdapter,
    _rm: DefaultRM,
}

impl std::fmt::Debug for VisaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisaStream")
    }
}

/// An instrument opened through VISA. Available with the `visa` feature.
pub type VisaInterface = StreamInterface<VisaStream>;

impl StreamInterface<VisaStream> {
    /// Opens `resource` (any VISA resource string) through the system's VISA library.
    /// Available with the `visa` feature.
    pub fn open_visa(resource: &str, timeout: Duration) -> Result<Self, InterfaceError> {
        let fail = |problem: String| InterfaceError::BadResource {
            resource: resource.to_owned(),
            problem,
        };
        visa_sys::load_visa_library().map_err(|e| {
            fail(format!(
                "the VISA library cannot be loaded ({e}); install a VISA runtime (e.g. NI-VISA) or use a TCPIP::host::port::SOCKET resource"
            ))
        })?;
        let rm = DefaultRM::new().map_err(|e| fail(format!("VISA resource manager: {e}")))?;
        let name = CString::new(resource)
            .map_err(|_| fail("the resource string contains a NUL byte".into()))?;
        let instr = rm
            .open(&name.into(), AccessMode::NO_LOCK, TIMEOUT_IMMEDIATE)
            .map_err(|e| fail(format!("VISA open: {e}")))?;
        let io = instr
            .into_tokio_async()
            .map_err(|e| fail(format!("VISA async session: {e}")))?;
        Ok(Self::wrap(
            VisaStream { io, _rm: rm },
            resource.to_owned(),
            timeout,
        ))
    }
}

impl AsyncRead for VisaStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for VisaStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
