//! A raw TCP socket (`TCPIP::host::port::SOCKET`), e.g. SCPI on port 5025.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BoxFuture, Interface, InterfaceError};

/// A raw TCP socket to an instrument.
#[derive(Debug)]
pub struct TcpInterface {
    stream: TcpStream,
    buffer: Vec<u8>,
    timeout: Duration,
    resource: String,
}

impl TcpInterface {
    /// Connects to `host:port` within `timeout`.
    pub async fn connect(host: &str, port: u16, timeout: Duration) -> Result<Self, InterfaceError> {
        let resource = format!("TCPIP::{host}::{port}::SOCKET");
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(InterfaceError::Io { resource, source }),
            Err(_) => return Err(InterfaceError::Timeout { resource, timeout }),
        };
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(256),
            timeout,
            resource,
        })
    }

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

impl Interface for TcpInterface {
    fn write<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), InterfaceError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.stream.write_all(data)).await {
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
