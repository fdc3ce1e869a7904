//! Opening one connection: TCP (TCP_NODELAY), TLS when configured, CONNECT and CONNACK.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{ConnAck, Connect, ConnectReturnCode, LastWill, Login, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};

use super::super::TransportError;

/// The two halves of an open connection.
pub(super) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half: plain TCP, which others may also write to while the writer task is
/// idle (see `outlet`), or TLS, which only the writer task writes.
pub(super) enum WriteHalf {
    Tcp(Arc<OwnedWriteHalf>),
    Tls(Box<dyn AsyncWrite + Send + Unpin>),
}

impl WriteHalf {
    /// Writes all of `buf`.
    pub(super) async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Tcp(tcp) => {
                let mut sent = 0;
                while sent < buf.len() {
                    tcp.writable().await?;
                    match tcp.try_write(&buf[sent..]) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Self::Tls(w) => {
                w.write_all(buf).await?;
                w.flush().await
            }
        }
    }

    /// The socket, for direct writes.
    pub(super) fn tcp(&self) -> Option<Arc<OwnedWriteHalf>> {
        match self {
            Self::Tcp(tcp) => Some(tcp.clone()),
            Self::Tls(_) => None,
        }
    }
}

/// What every connection of a session sends in its CONNECT.
#[derive(Debug, Clone)]
pub(in crate::transport) struct Hello {
    pub(in crate::transport) host: String,
    pub(in crate::transport) port: u16,
    pub(in crate::transport) url: String,
    pub(in crate::transport) tls: Option<Arc<rustls::ClientConfig>>,
    pub(in crate::transport) connect: Connect,
    pub(in crate::transport) will: Option<LastWill>,
    pub(in crate::transport) login: Option<Login>,
    /// The largest packet we accept (announced in CONNECT).
    pub(in crate::transport) max_incoming: u32,
    /// How long one attempt (TCP, TLS and CONNACK) may take.
    pub(in crate::transport) attempt: Duration,
}

/// An open connection after a successful CONNACK.
pub(super) struct Opened {
    pub(super) read: ReadHalf,
    pub(super) write: WriteHalf,
    /// Bytes read past the CONNACK (a stored session's first messages).
    pub(super) leftover: BytesMut,
    pub(super) connack: ConnAck,
}

/// Why a connection could not be opened.
pub(super) struct Failure {
    pub(super) error: TransportError,
    /// Retrying cannot help (bad credentials, an untrusted certificate).
    pub(super) fatal: bool,
}

/// How long one attempt (TCP, TLS and CONNACK) may take, by default.
pub(in crate::transport) const ATTEMPT: Duration = Duration::from_secs(5);

/// Opens a connection and completes the MQTT handshake.
pub(super) async fn open(hello: &Hello) -> Result<Opened, Failure> {
    match tokio::time::timeout(hello.attempt, attempt(hello)).await {
        Ok(r) => r,
        Err(_) => Err(unreachable(
            hello,
            format!(
                "no answer to CONNECT within {} s",
                hello.attempt.as_secs_f64()
            ),
        )),
    }
}

async fn attempt(hello: &Hello) -> Result<Opened, Failure> {
    let tcp = tcp_connect(hello)
        .await
        .map_err(|e| unreachable(hello, e.to_string()))?;
    let (mut read, mut write): (ReadHalf, WriteHalf) = match &hello.tls {
        None => {
            let (r, w) = tcp.into_split();
            (Box::new(r), WriteHalf::Tcp(Arc::new(w)))
        }
        Some(config) => {
            let name =
                rustls::pki_types::ServerName::try_from(hello.host.clone()).map_err(|e| {
                    Failure {
                        error: TransportError::Config {
                            problem: format!("`{}` is not a valid TLS server name", hello.host),
                            source: Some(Arc::new(e)),
                        },
                        fatal: true,
                    }
                })?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_failure(hello, e))?;
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), WriteHalf::Tls(Box::new(w)))
        }
    };
    let mut buf = BytesMut::with_capacity(1024);
    Packet::Connect(
        hello.connect.clone(),
        hello.will.clone(),
        hello.login.clone(),
    )
    .write(&mut buf, None)
    .map_err(|e| unreachable(hello, format!("cannot encode CONNECT: {e}")))?;
    write
        .write_all(&buf)
        .await
        .map_err(|e| unreachable(hello, e.to_string()))?;
    buf.clear();
    loop {
        match Packet::read(&mut buf, Some(hello.max_incoming)) {
            Ok(Packet::ConnAck(connack)) => {
                accepted(hello, &connack)?;
                return Ok(Opened {
                    read,
                    write,
                    leftover: buf,
                    connack,
                });
            }
            Ok(other) => {
                return Err(unreachable(
                    hello,
                    format!("the broker answered CONNECT with {other:?}"),
                ))
            }
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(unreachable(hello, format!("bad CONNACK: {e}"))),
        }
        let n = read
            .read_buf(&mut buf)
            .await
            .map_err(|e| unreachable(hello, e.to_string()))?;
        if n == 0 {
            return Err(unreachable(
                hello,
                "the broker closed the connection before CONNACK".into(),
            ));
        }
    }
}

/// What the kernel may hold of our unsent data (Linux doubles it for its bookkeeping).
/// Kept small on purpose: what the kernel holds is out of reach of the writer's first lane,
/// and a broker reading a deep backlog of replies delays the `ping` answer queued behind
/// them (Mosquitto spends some 35 µs a message). At 10 ms round trip this still carries
/// over 10 MB/s.
const SEND_BUFFER: u32 = 64 * 1024;

/// Connects to the first address of the broker's host that answers, with TCP_NODELAY and
/// a small send buffer.
async fn tcp_connect(hello: &Hello) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((hello.host.as_str(), hello.port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let _ = socket.set_send_buffer_size(SEND_BUFFER);
        let _ = socket.set_nodelay(true);
        match socket.connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the host name has no address")))
}

/// Maps a refusal in CONNACK to our errors.
fn accepted(hello: &Hello, connack: &ConnAck) -> Result<(), Failure> {
    let url = hello.url.clone();
    match connack.code {
        ConnectReturnCode::Success => Ok(()),
        ConnectReturnCode::BadUserNamePassword => Err(Failure {
            error: TransportError::BadCredentials { url },
            fatal: true,
        }),
        ConnectReturnCode::NotAuthorized | ConnectReturnCode::Banned => Err(Failure {
            error: TransportError::NotAuthorized { url },
            fatal: true,
        }),
        other => Err(unreachable(
            hello,
            format!("the broker refused the connection ({other:?})"),
        )),
    }
}

fn unreachable(hello: &Hello, why: String) -> Failure {
    Failure {
        error: TransportError::Unreachable {
            url: hello.url.clone(),
            source: Arc::new(std::io::Error::other(why)),
        },
        fatal: false,
    }
}

fn tls_failure(hello: &Hello, e: std::io::Error) -> Failure {
    match super::super::tls::describe_failure(&e) {
        Some(reason) => Failure {
            error: TransportError::Tls {
                url: hello.url.clone(),
                reason,
            },
            fatal: true,
        },
        None => Failure {
            error: TransportError::Unreachable {
                url: hello.url.clone(),
                source: Arc::new(e),
            },
            fatal: false,
        },
    }
}
