//! A TCP server that plays one simulated instrument, line by line.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::model::LabModel;
use crate::scpi::DeviceError;

/// The model shared by the instruments of one simulated lab.
pub type SharedLab = Arc<Mutex<LabModel>>;

/// What a simulated instrument answers to one command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The line to send back, if the command is a query.
    pub text: Option<String>,
    /// Model seconds the instrument is busy before answering.
    pub busy_s: f64,
}

impl Response {
    /// No answer, no delay.
    pub fn none() -> Self {
        Self::default()
    }

    /// An immediate answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            busy_s: 0.0,
        }
    }
}

/// An instrument played by [`SimServer`].
pub trait SimInstrument: Send + 'static {
    /// Handles one command (already split on `;` and newlines, trimmed, non-empty).
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response;

    /// The instrument's error queue, oldest first.
    fn errors(&mut self) -> &mut VecDeque<DeviceError>;
}

type Shared = Arc<Mutex<Box<dyn SimInstrument>>>;

/// A simulated instrument listening on a TCP port.
pub struct SimServer {
    addr: SocketAddr,
    instrument: Shared,
    lab: SharedLab,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimServer {
    /// Starts `instrument` on `bind` (port 0: a free port).
    pub async fn start(
        bind: SocketAddr,
        instrument: impl SimInstrument,
        lab: SharedLab,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let mut s = Self {
            addr,
            instrument: Arc::new(Mutex::new(Box::new(instrument))),
            lab,
            task: None,
        };
        s.task = Some(tokio::spawn(accept(
            listener,
            s.instrument.clone(),
            s.lab.clone(),
        )));
        Ok(s)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The resource string of this instrument (`TCPIP::127.0.0.1::PORT::SOCKET`).
    pub fn resource(&self) -> String {
        format!("TCPIP::{}::{}::SOCKET", self.addr.ip(), self.addr.port())
    }

    /// Stops listening and drops every connection, as a powered-off instrument would.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port, with the same state.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let listener = TcpListener::bind(self.addr).await?;
        self.task = Some(tokio::spawn(accept(
            listener,
            self.instrument.clone(),
            self.lab.clone(),
        )));
        Ok(())
    }

    /// Puts an error in the instrument's error queue, as if it had reported one.
    pub fn push_error(&self, code: i32, message: &str) {
        let mut inst = self.instrument.lock().unwrap_or_else(|e| e.into_inner());
        inst.errors().push_back(DeviceError {
            code,
            message: message.to_owned(),
        });
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(listener: TcpListener, instrument: Shared, lab: SharedLab) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, instrument.clone(), lab.clone()));
                }
                Err(e) => {
                    tracing::warn!("simulator accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, instrument: Shared, lab: SharedLab) {
    let _ = stream.set_nodelay(true);
    serve_io(stream, instrument, lab).await;
}

/// Plays `instrument` on any byte stream (e.g. one end of a serial pseudo-terminal pair)
/// until it closes.
pub async fn serve_stream<S>(stream: S, instrument: impl SimInstrument, lab: SharedLab)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let shared: Shared = Arc::new(Mutex::new(Box::new(instrument)));
    serve_io(stream, shared, lab).await;
}

async fn serve_io<S>(stream: S, instrument: Shared, lab: SharedLab)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        for command in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let (response, factor) = {
                let mut lab = lab.lock().unwrap_or_else(|e| e.into_inner());
                let mut inst = instrument.lock().unwrap_or_else(|e| e.into_inner());
                let response = inst.handle(command, &mut lab);
                // Counted; on a virtual clock the operation takes its time in model time only.
                lab.advance_clock(response.busy_s);
                (response, lab.params().time_factor)
            };
            if response.busy_s > 0.0 && factor > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(response.busy_s * factor)).await;
            }
            if let Some(text) = response.text {
                let mut out = text.into_bytes();
                out.push(b'\n');
                if write.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Splits a command into its upper-case header and its argument text.
pub(crate) fn split(command: &str) -> (String, &str) {
    match command.split_once(char::is_whitespace) {
        Some((h, a)) => (h.to_ascii_uppercase(), a.trim()),
        None => (command.to_ascii_uppercase(), ""),
    }
}

/// The next error-queue entry in SCPI form.
pub(crate) fn pop_error(errors: &mut VecDeque<DeviceError>, none: &str) -> String {
    match errors.pop_front() {
        Some(e) => format!("{:+},\"{}\"", e.code, e.message),
        None => none.to_owned(),
    }
}

/// Formats a reading in NR3 with `digits` digits after the point and a signed two-digit
/// exponent, e.g. `+1.00000123E+01`.
pub(crate) fn nr3(value: f64, digits: usize) -> String {
    let s = format!("{value:+.digits$E}");
    match s.split_once('E') {
        Some((m, e)) => {
            let exp: i32 = e.parse().unwrap_or(0);
            format!("{m}E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
        }
        None => s,
    }
}

/// `value` as a DMM with a resolution of `quantum` V shows it.
pub(crate) fn quantise(value: f64, quantum: f64) -> f64 {
    if quantum > 0.0 && quantum.is_finite() {
        (value / quantum).round() * quantum
    } else {
        value
    }
}

/// Queues an instrument error and answers nothing, as an instrument does.
pub(crate) fn queue_error(
    errors: &mut VecDeque<DeviceError>,
    code: i32,
    message: &str,
) -> Response {
    errors.push_back(DeviceError {
        code,
        message: message.to_owned(),
    });
    Response::none()
}

/// The smallest DC range (0.1 V to 1000 V, decades) that holds `volts`, if any.
pub(crate) fn dc_range(volts: f64) -> Option<f64> {
    if !(volts > 0.0 && volts <= 1000.0) {
        return None;
    }
    [0.1, 1.0, 10.0, 100.0, 1000.0]
        .into_iter()
        .find(|x| *x >= volts * 0.999_999)
}
