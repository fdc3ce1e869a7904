//! The Virtual DMM's settings and the parameters of its capabilities.

use mqttcal_messages::{Environment, Mode, Polarity, Sources};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Virtual DMM's settings, as the report names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// Readings per `measure`.
    pub repetitions: u32,
    /// Integration time in power-line cycles.
    #[serde(rename = "NPLC")]
    pub nplc: f64,
    /// Digits of resolution.
    #[serde(rename = "Ndigits")]
    pub ndigits: u8,
    /// Absolute or differential.
    pub mode: Mode,
    /// Polarity.
    pub pol: Polarity,
    /// Standard ids: one (absolute) or two (differential: measured, reference).
    pub src: Vec<String>,
    /// DMM range, V.
    pub range: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            repetitions: 1,
            nplc: 10.0,
            ndigits: 8,
            mode: Mode::Absolute,
            pol: Polarity::Positive,
            src: Vec::new(),
            range: 10.0,
        }
    }
}

/// Parameters of `measure`: each one changes the setting before measuring.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureParams {
    /// Readings to take.
    #[serde(default)]
    pub repetitions: Option<u32>,
    /// Integration time in power-line cycles.
    #[serde(default, rename = "NPLC")]
    pub nplc: Option<f64>,
    /// Digits of resolution.
    #[serde(default, rename = "Ndigits")]
    pub ndigits: Option<u8>,
    /// Absolute or differential.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Polarity.
    #[serde(default)]
    pub pol: Option<Polarity>,
    /// Standard id(s).
    #[serde(default)]
    pub src: Option<Sources>,
    /// DMM range, V.
    #[serde(default)]
    pub range: Option<f64>,
    /// The calibration job the readings belong to: put in each reading, for this call only
    /// (1 to 128 characters).
    #[serde(default)]
    pub job: Option<String>,
}

/// Parameters of `repetitions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRepetitions {
    /// Readings per `measure`, 1 to 100000.
    pub repetitions: u32,
}

/// Parameters of `NPLC`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNplc {
    /// Power-line cycles.
    #[serde(rename = "NPLC")]
    pub nplc: f64,
}

/// Parameters of `Ndigits`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNdigits {
    /// Digits, 3 to 8.
    #[serde(rename = "Ndigits")]
    pub ndigits: u8,
}

/// Parameters of `mode`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    /// Absolute or differential.
    pub mode: Mode,
}

/// Parameters of `pol`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPol {
    /// `+` or `-`.
    pub pol: Polarity,
}

/// Parameters of `src`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSrc {
    /// Standard id(s).
    pub src: Sources,
}

/// One reading as `measure` returns it (and as published on `meas`, with more fields).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReadingOut {
    /// Index within this `measure`, from 0.
    pub index: u32,
    /// Volts.
    pub value: f64,
    /// The DMM's raw answer.
    pub raw: String,
    /// Acquisition time, seconds since the Unix epoch.
    pub acquired: f64,
}

/// The result of `measure`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MeasureResult {
    /// The readings, in order.
    pub readings: Vec<ReadingOut>,
    /// The settings used.
    pub settings: Settings,
    /// Lab conditions at the start, if a sensor is configured.
    pub environment: Option<Environment>,
}
