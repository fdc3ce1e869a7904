//! What listens at a broker's address, when a connection fails: nothing, a broker of
//! another MQTT version, a TLS port, or something that is not MQTT at all. A command
//! line says it in words instead of "connection refused".
//!
//! ```no_run
//! # async fn demo() {
//! use mqttcal_core::transport::probe::{probe, Found};
//! let found = probe("127.0.0.1", 1883, false).await;
//! if found != Found::Mqtt5 {
//!     eprintln!("{}", found.explain("127.0.0.1", 1883, false));
//! }
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long each step of a probe waits.
const STEP: Duration = Duration::from_millis(400);

/// What [`probe`] found at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing listens: the connection was refused.
    Nothing,
    /// The host cannot be reached, or its name has no address (the reason).
    Unreachable(String),
    /// No answer to the TCP connection within the probe's time (a firewall dropping it,
    /// a wrong host).
    NoAnswer,
    /// An MQTT 5 broker, as expected (on the transport asked for).
    Mqtt5,
    /// A broker that speaks MQTT 3.1.1 only.
    Mqtt311,
    /// A TLS port, asked for in plain text.
    TlsExpected,
    /// A plain MQTT port, asked for over TLS.
    PlainExpected,
    /// Something else, that answered with these first bytes (shown as text).
    Other(String),
    /// Something that accepts connections but says nothing to an MQTT CONNECT.
    Silent,
    /// Something that closes connections without a word.
    Closes,
}

impl Found {
    /// The finding in words, with what to do, for `host:port` asked `tls` or not.
    pub fn explain(&self, host: &str, port: u16, tls: bool) -> String {
        let at = format!("{host}:{port}");
        let scheme = if tls { "mqtts" } else { "mqtt" };
        match self {
            Found::Nothing => format!("nothing listens at {at} (connection refused): is the broker (or `mqttcal lab`) running, and on this port? `mqttcal lab` prints the `export MQTTCAL_BROKER=...` line to use"),
            Found::Unreachable(why) => format!("{at} cannot be reached: {why}"),
            Found::NoAnswer => format!("no answer from {at} within {} s: a wrong host, or a firewall dropping the connection", STEP.as_secs_f64()),
            Found::Mqtt5 => format!("an MQTT 5 broker answers at {scheme}://{at}"),
            Found::Mqtt311 => format!("{at} is an MQTT 3.1.1 broker (or port): mqttcal needs MQTT 5 (`mqttcal lab` serves 3.1.1 for report-style peers on a second port; use the MQTT 5 address it prints)"),
            Found::TlsExpected => format!("{at} expects TLS: use mqtts://{at} (with `--ca-cert` for the broker's CA)"),
            Found::PlainExpected => format!("{at} is a plain MQTT port, not TLS: use mqtt://{at}, or the broker's TLS port"),
            Found::Other(first) => format!("{at} is not an MQTT broker: it answered `{first}`"),
            Found::Silent => format!("something at {at} accepts connections but does not answer MQTT's CONNECT: not an MQTT broker?"),
            Found::Closes => format!("{at} closes connections without a word: not an MQTT broker, or one that refuses this client"),
        }
    }
}

/// Looks at `host:port` as a client asked for `tls` would, in at most a few seconds
/// (each step waits at most 0.4 s): connects, sends an MQTT 5 CONNECT (or opens TLS),
/// reads the answer and, when the first look is not clear, tries MQTT 3.1.1 and TLS.
pub async fn probe(host: &str, port: u16, tls: bool) -> Found {
    let tcp = match connect(host, port).await {
        Ok(t) => t,
        Err(found) => return found,
    };
    if tls {
        return match tls_handshake(tcp, host).await {
            true => Found::Mqtt5,
            false => match connect(host, port).await {
                Ok(tcp) => match exchange(tcp, &connect_packet(5)).await {
                    Answer::ConnAck { .. } => Found::PlainExpected,
                    other => other.found(),
                },
                Err(found) => found,
            },
        };
    }
    match exchange(tcp, &connect_packet(5)).await {
        Answer::ConnAck { v311_refusal: true } => Found::Mqtt311,
        Answer::ConnAck { .. } => Found::Mqtt5,
        Answer::Closed => {
            // A 3.1.1-only listener may drop an MQTT 5 CONNECT without a word; a TLS
            // listener may too.
            if let Ok(tcp) = connect(host, port).await {
                if let Answer::ConnAck { .. } = exchange(tcp, &connect_packet(4)).await {
                    return Found::Mqtt311;
                }
            }
            match connect(host, port).await {
                Ok(tcp) => {
                    if tls_handshake(tcp, host).await {
                        Found::TlsExpected
                    } else {
                        Found::Closes
                    }
                }
                Err(_) => Found::Closes,
            }
        }
        other => other.found(),
    }
}

/// What came back to a CONNECT.
enum Answer {
    ConnAck { v311_refusal: bool },
    TlsAlert,
    Other(String),
    Closed,
    Silent,
}

impl Answer {
    fn found(self) -> Found {
        match self {
            Answer::ConnAck { .. } => Found::Mqtt5,
            Answer::TlsAlert => Found::TlsExpected,
            Answer::Other(s) => Found::Other(s),
            Answer::Closed => Found::Closes,
            Answer::Silent => Found::Silent,
        }
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, Found> {
    match tokio::time::timeout(STEP, TcpStream::connect((host, port))).await {
        Err(_) => Err(Found::NoAnswer),
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Found::Nothing),
        Ok(Err(e)) => Err(Found::Unreachable(e.to_string())),
    }
}

/// A CONNECT of MQTT `version` (4: 3.1.1, 5), clean, with a client id of its own.
fn connect_packet(version: u8) -> Vec<u8> {
    let id = format!("mqttcal-probe-{}", std::process::id());
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', version, 0x02, 0, 10];
    if version == 5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(&u16::try_from(id.len()).unwrap_or(0).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap_or(127)];
    packet.extend(body);
    packet
}

async fn exchange(mut tcp: TcpStream, packet: &[u8]) -> Answer {
    if tcp.write_all(packet).await.is_err() {
        return Answer::Closed;
    }
    let mut buf = [0u8; 64];
    let n = match tokio::time::timeout(STEP, tcp.read(&mut buf)).await {
        Err(_) => return Answer::Silent,
        Ok(Err(_) | Ok(0)) => return Answer::Closed,
        Ok(Ok(n)) => n,
    };
    let got = &buf[..n];
    match got {
        // CONNACK; a 3.1.1 broker refuses version 5 with return code 1 in a 2-byte body.
        [0x20, 2, _, 1, ..] => Answer::ConnAck { v311_refusal: true },
        [0x20, ..] => Answer::ConnAck {
            v311_refusal: false,
        },
        [0x15, 3, ..] => Answer::TlsAlert,
        _ => Answer::Other(shown(got)),
    }
}

/// The first bytes as text: the first line if it is text, else in hexadecimal.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next().unwrap_or_default();
    if !line.is_empty() && line.chars().all(|c| !c.is_control()) {
        line.to_owned()
    } else {
        bytes
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether a TLS handshake gets anywhere: completed, or refused by the server's alert.
async fn tls_handshake(tcp: TcpStream, host: &str) -> bool {
    let Ok(config) = super::tls::probe_config() else {
        return false;
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
        rustls::pki_types::ServerName::try_from("localhost").expect("a valid name")
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(STEP, connector.connect(name, tcp)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| matches!(r, rustls::Error::AlertReceived(_))),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packets_are_well_formed() {
        let p = connect_packet(5);
        assert_eq!(p[0], 0x10);
        assert_eq!(usize::from(p[1]), p.len() - 2);
        assert_eq!(p[8], 5);
        let p = connect_packet(4);
        assert_eq!(usize::from(p[1]), p.len() - 2);
        assert_eq!(p[8], 4);
    }

    #[test]
    fn answers_are_shown_as_their_first_line_or_in_hex() {
        assert_eq!(
            shown(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(shown(&[0xff, 0x00, 0x10]), "ff 00 10");
    }
}
