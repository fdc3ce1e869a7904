//! A GPIB instrument behind a Prologix-style GPIB-Ethernet (or GPIB-USB) adapter.

use std::time::Duration;

use super::{BoxFuture, Interface, InterfaceError};

/// The adapter's escape character.
const ESC: u8 = 27;

/// One GPIB instrument reached through a Prologix-style adapter on another [`Interface`]
/// (a TCP socket on port 1234, or a serial port).
///
/// The adapter runs as controller with `++auto 0`: after a command, nothing is read until
/// a read is asked for, which sends `++read eoi`. `+`, CR, LF and ESC inside a command are
/// escaped, as the adapter requires.
#[derive(Debug)]
pub struct Prologix {
    link: Box<dyn Interface>,
    resource: String,
    read_pending: bool,
}

impl Prologix {
    /// Sets the adapter up on `link` for the instrument at GPIB `address`.
    pub async fn open(mut link: Box<dyn Interface>, address: u8) -> Result<Self, InterfaceError> {
        let setup =
            format!("++mode 1\n++auto 0\n++eoi 1\n++eos 2\n++read_tmo_ms 3000\n++addr {address}\n");
        link.write(setup.as_bytes()).await?;
        let resource = format!("GPIB0::{address}::INSTR via {}", link.resource());
        Ok(Self {
            link,
            resource,
            read_pending: false,
        })
    }

    async fn ask_read(&mut self) -> Result<(), InterfaceError> {
        if self.read_pending {
            self.read_pending = false;
            self.link.write(b"++read eoi\n").await?;
        }
        Ok(())
    }
}

/// Escapes `+`, CR, LF and ESC, except a final LF (the terminator).
fn escape(data: &[u8]) -> Vec<u8> {
    let (body, end) = match data.split_last() {
        Some((b'\n', body)) => (body, true),
        _ => (data, false),
    };
    let mut out = Vec::with_capacity(data.len() + 4);
    for &b in body {
        if matches!(b, b'+' | b'\r' | b'\n' | ESC) {
            out.push(ESC);
        }
        out.push(b);
    }
    if end {
        out.push(b'\n');
    }
    out
}

impl Interface for Prologix {
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), InterfaceError>> {
        Box::pin(async move {
            let r = self.link.write(&escape(data)).await;
            r.map_err(|e| e.for_resource(&self.resource))?;
            self.read_pending = true;
            Ok(())
        })
    }

    fn read_until(&mut self, terminator: u8) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            let r = match self.ask_read().await {
                Ok(()) => self.link.read_until(terminator).await,
                Err(e) => Err(e),
            };
            r.map_err(|e| e.for_resource(&self.resource))
        })
    }

    fn read_exact(&mut self, n: usize) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            let r = match self.ask_read().await {
                Ok(()) => self.link.read_exact(n).await,
                Err(e) => Err(e),
            };
            r.map_err(|e| e.for_resource(&self.resource))
        })
    }

    fn clear(&mut self) -> BoxFuture<'_, Result<(), InterfaceError>> {
        Box::pin(async move {
            self.read_pending = false;
            self.link.write(b"++clr\n").await?;
            self.link.clear().await
        })
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.link.set_timeout(timeout);
    }

    fn resource(&self) -> &str {
        &self.resource
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_signs_and_inner_line_ends_are_escaped() {
        assert_eq!(escape(b"ROUT:POL +\n"), b"ROUT:POL \x1b+\n");
        assert_eq!(escape(b"a\nb"), b"a\x1b\nb");
        assert_eq!(escape(b"ID?\n"), b"ID?\n");
    }
}
