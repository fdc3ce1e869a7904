//! Byte streams to instruments: a raw TCP socket (`TCPIP::host::port::SOCKET`, e.g. SCPI
//! on port 5025) and a serial port (`ASRL/dev/ttyUSB0::INSTR`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::{BoxFuture, Interface, InterfaceError};

/// An instrument on any byte stream, with a read buffer and a timeout.
#[derive(Debug)]
pub struct StreamInterface<S> {
    stream: S,
    buffer: Vec<u8>,
    timeout: Duration,
    resource: String,
}

/// A raw TCP socket to an instrument.
pub type TcpInterface = StreamInterface<TcpStream>;

/// A serial port to an instrument.
pub type SerialInterface = StreamInterface<SerialStream>;

impl StreamInterface<SerialStream> {
    /// Opens serial port `device` at `baud` (8 data bits, no parity, 1 stop bit).
    pub fn open(device: &str, baud: u32, timeout: Duration) -> Result<Self, InterfaceError> {
        let resource = format!("ASRL{device}::INSTR");
        let stream = tokio_serial::new(device, baud)
            .open_native_async()
            .map_err(|e| InterfaceError::Io {
                resource: resource.clone(),
                source: std::io::Error::other(e),
            })?;
        Ok(Self::wrap(stream, resource, timeout))
    }
}

impl<S> StreamInterface<S> {
    /// An interface on an already open `stream`, named `resource` in messages.
    pub fn wrap(stream: S, resource: String, timeout: Duration) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(256),
            timeout,
            resource,
        }
    }
}

impl StreamInterface<TcpStream> {
    /// Connects to `host:port` within `timeout`.
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<Self, InterfaceError> {
        let resource = format!("TCPIP::{host}::{port}::SOCKET");
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(InterfaceError::Io { resource, source }),
            Err(_) => return Err(InterfaceError::Timeout { resource, timeout }),
        };
        let _ = stream.set_nodelay(true);
        Ok(Self::wrap(stream, resource, timeout))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> StreamInterface<S> {
    fn io(&self, source: std::io::Error) -> InterfaceError {
        InterfaceError::Io {
            resource: self.resource.clone(),
            source,
        }
    }

    /// Reads more bytes into the buffer, within the timeout.
    async fn fill(&mut self) -> Result<(), InterfaceError> {
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout(self.timeout, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(self.io(e)),
            Err(_) => {
                return Err(InterfaceError::Timeout {
                    resource: self.resource.clone(),
                    timeout: self.timeout,
                })
            }
        };
        if n == 0 {
            return Err(InterfaceError::Closed {
                resource: self.resource.clone(),
            });
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Interface for StreamInterface<S> {
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), InterfaceError>> {
        Box::pin(async move {
            let write = async {
                self.stream.write_all(data).await?;
                self.stream.flush().await
            };
            match tokio::time::timeout(self.timeout, write).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(self.io(e)),
                Err(_) => Err(InterfaceError::Timeout {
                    resource: self.resource.clone(),
                    timeout: self.timeout,
                }),
            }
        })
    }

    fn read_until(&mut self, terminator: u8) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            loop {
                if let Some(i) = self.buffer.iter().position(|b| *b == terminator) {
                    let mut line: Vec<u8> = self.buffer.drain(..=i).collect();
                    line.pop();
                    return Ok(line);
                }
                self.fill().await?;
            }
        })
    }

    fn read_exact(&mut self, n: usize) -> BoxFuture<'_, Result<Vec<u8>, InterfaceError>> {
        Box::pin(async move {
            while self.buffer.len() < n {
                self.fill().await?;
            }
            Ok(self.buffer.drain(..n).collect())
        })
    }

    fn clear(&mut self) -> BoxFuture<'_, Result<(), InterfaceError>> {
        Box::pin(async move {
            self.buffer.clear();
            let mut chunk = [0u8; 4096];
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), self.stream.read(&mut chunk)).await
            {
                if n == 0 {
                    break;
                }
            }
            Ok(())
        })
    }

    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn resource(&self) -> &str {
        &self.resource
    }
}
