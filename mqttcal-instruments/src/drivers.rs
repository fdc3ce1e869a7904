//! Instrument drivers behind traits: [`Dmm`], [`Switch`] and [`EnvSensor`].
//!
//! Every operation returns two layers: the outer `Result` fails when the link fails
//! ([`InterfaceError`]: unreachable, timeout, closed); the inner one when the instrument
//! itself reports a problem ([`InstrumentError`]: an error-queue entry, an overload).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458};
//! use mqttcal_instruments::interface::TcpInterface;
//! let link = TcpInterface::connect("192.0.2.7", 1234, Duration::from_secs(3)).await?;
//! let mut dmm = Hp3458::new(Box::new(link));
//! dmm.configure(&DmmConfig { range: 10.0, nplc: 100.0, ndigits: 8 }).await??;
//! let reading = dmm.read().await??;
//! println!("{} V (raw `{}`)", reading.value, reading.raw);
//! # Ok(()) }
//! ```

use crate::interface::{query, BoxFuture, Interface, InterfaceError};
use crate::scpi::{parse_error_entry, DeviceError};

mod env;
mod hp3458;
mod scanner;
mod scpi_dmm;

pub use env::ScpiEnvSensor;
pub use hp3458::Hp3458;
pub use scanner::ScpiScanner;
pub use scpi_dmm::ScpiDmm;

/// A problem the instrument itself reports (the inner error layer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InstrumentError {
    /// Entries of its error queue, oldest first.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Reported(Vec<DeviceError>),
    /// The reading is out of range.
    #[error("overload: the instrument answered `{0}`")]
    Overload(String),
}

/// Two layers: the link, then the instrument.
pub type Outcome<T> = Result<Result<T, InstrumentError>, InterfaceError>;

/// How a DMM measures DC voltage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DmmConfig {
    /// Range, V (the smallest range holding this value is used).
    pub range: f64,
    /// Integration time in power-line cycles.
    pub nplc: f64,
    /// Digits of resolution (where the DMM takes it).
    pub ndigits: u8,
}

/// One reading: the value and the instrument's raw answer (kept for the records).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Volts.
    pub value: f64,
    /// The raw response string.
    pub raw: String,
}

/// A DC voltmeter. Drivers force high input impedance on DC ranges: a 1.018 V standard has
/// about 1 kΩ source resistance, so a 10 MΩ input would load it by 100 ppm.
pub trait Dmm: Send + std::fmt::Debug {
    /// The identification string.
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>>;
    /// Sets range, integration time and resolution, then checks the error queue.
    fn configure<'a>(&'a mut self, config: &'a DmmConfig) -> BoxFuture<'a, Outcome<()>>;
    /// Takes one reading.
    fn read(&mut self) -> BoxFuture<'_, Outcome<Reading>>;
    /// Drains the error queue.
    fn errors(&mut self) -> BoxFuture<'_, Result<Vec<DeviceError>, InterfaceError>>;
}

/// A scanner matrix that connects one channel to the DMM, with reversing relays.
pub trait Switch: Send + std::fmt::Debug {
    /// The identification string.
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>>;
    /// Connects `channel` (1-based), opening any other, and waits for the relays to settle.
    fn connect(&mut self, channel: usize) -> BoxFuture<'_, Outcome<()>>;
    /// Opens every channel.
    fn open_all(&mut self) -> BoxFuture<'_, Outcome<()>>;
    /// Sets the reversing relays (`true`: negative) and waits for them to settle.
    fn set_polarity(&mut self, negative: bool) -> BoxFuture<'_, Outcome<()>>;
}

/// Temperature, humidity and pressure of the lab.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnvReading {
    /// °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// hPa.
    pub pressure: f64,
}

/// An environment sensor.
pub trait EnvSensor: Send + std::fmt::Debug {
    /// The identification string.
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>>;
    /// Reads temperature, humidity and pressure.
    fn read(&mut self) -> BoxFuture<'_, Outcome<EnvReading>>;
}

/// Drains an error queue with `command` (at most 32 entries).
pub(crate) async fn drain_errors(
    iface: &mut dyn Interface,
    command: &str,
) -> Result<Vec<DeviceError>, InterfaceError> {
    let mut out = Vec::new();
    for _ in 0..32 {
        let line = query(iface, command).await?;
        match parse_error_entry(&line) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => break,
            Err(e) => {
                return Err(InterfaceError::Protocol {
                    resource: iface.resource().to_owned(),
                    command: command.to_owned(),
                    problem: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// `Ok(())` if the queue is empty, else the instrument's errors.
pub(crate) async fn check(iface: &mut dyn Interface, command: &str) -> Outcome<()> {
    let errors = drain_errors(iface, command).await?;
    Ok(if errors.is_empty() {
        Ok(())
    } else {
        Err(InstrumentError::Reported(errors))
    })
}

/// Parses a reading; an overload or a garbled answer is reported in the right layer.
pub(crate) fn reading(iface: &dyn Interface, command: &str, raw: String) -> Outcome<Reading> {
    match crate::scpi::parse_number(&raw) {
        Ok(value) => Ok(Ok(Reading { value, raw })),
        Err(crate::scpi::ParseError::Overload(_)) => Ok(Err(InstrumentError::Overload(raw))),
        Err(e) => Err(InterfaceError::Protocol {
            resource: iface.resource().to_owned(),
            command: command.to_owned(),
            problem: e.to_string(),
        }),
    }
}

/// A read timeout long enough for `nplc` at 50 Hz plus settling.
pub(crate) fn read_timeout(nplc: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(nplc / 50.0 * 1.5 + 3.0)
}
