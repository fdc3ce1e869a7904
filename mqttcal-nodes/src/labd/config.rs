//! labd's configuration: a resource string per instrument and the channel map.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Which DMM driver speaks to the DMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmmDriver {
    /// HP/Agilent 3458A command language.
    Hp3458,
    /// SCPI (Keysight 34470A style).
    Scpi,
}

/// One instrument: its driver (for DMMs) and where it is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    /// VISA-style resource string, e.g. `TCPIP::192.0.2.7::5025::SOCKET`.
    pub resource: String,
    /// DMM driver (DMMs only).
    #[serde(default)]
    pub driver: Option<DmmDriver>,
    /// Baud rate of a serial resource (default 9600).
    #[serde(default)]
    pub baud: Option<u32>,
}

/// The `labd` section of the configuration file.
///
/// ```yaml
/// labd:
///   lab-id: INRIM-DCV
///   dmm: { driver: hp3458, resource: "TCPIP::192.0.2.7::1234::SOCKET" }
///   scanner-x: { resource: "TCPIP::192.0.2.8::5025::SOCKET" }
///   scanner-ref: { resource: "TCPIP::192.0.2.9::5025::SOCKET" }
///   env: { resource: "TCPIP::192.0.2.10::5025::SOCKET" }
///   channels: { Z1: 1, Z2: 2, Z3: 3 }
///   # gpib-adapter: "TCPIP::192.0.2.20::1234::SOCKET"   # for GPIB0::22::INSTR resources
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LabdConfig {
    /// Laboratory id, the first part of `OriginUID`.
    pub lab_id: String,
    /// The DMM.
    pub dmm: InstrumentConfig,
    /// Scanner matrix with the reversing relays (the measured standard).
    pub scanner_x: InstrumentConfig,
    /// Scanner matrix for the reference standard (differential mode).
    #[serde(default)]
    pub scanner_ref: Option<InstrumentConfig>,
    /// Environment sensor.
    #[serde(default)]
    pub env: Option<InstrumentConfig>,
    /// Standard id -> scanner terminal (1-based; the same terminal on both matrices).
    pub channels: BTreeMap<String, usize>,
    /// The Prologix-style adapter that `GPIB<board>::<address>::INSTR` resources go
    /// through, e.g. `TCPIP::192.0.2.20::1234::SOCKET` or `ASRL/dev/ttyUSB0::INSTR`.
    #[serde(default)]
    pub gpib_adapter: Option<String>,
    /// Seconds to wait for an instrument to connect.
    #[serde(default = "default_timeout")]
    pub connect_timeout: f64,
    /// The nodes that may take labd's job lease (default: `[cald]`): anyone else could
    /// hold the lab for an hour.
    #[serde(default = "default_lease_from")]
    pub lease_from: Vec<String>,
    /// Where labd keeps its readings until the broker has them (`path`, and `sync: true`
    /// to survive a power cut too): a labd killed mid-measurement sends them again at its
    /// next start (see `mqttcal_core::outbox`). Without it, readings not yet taken by the
    /// broker die with the process.
    #[serde(default)]
    pub outbox: Option<mqttcal_core::outbox::OutboxConfig>,
}

fn default_timeout() -> f64 {
    3.0
}

fn default_lease_from() -> Vec<String> {
    vec!["cald".into()]
}

impl LabdConfig {
    /// The configuration that points labd at a simulated lab (3458A-style DMM).
    pub fn for_sim_lab(lab: &mqttcal_instruments::sim::SimLab) -> Self {
        let inst = |resource: String| InstrumentConfig {
            resource,
            driver: None,
            baud: None,
        };
        let model = lab.model.lock().unwrap_or_else(|e| e.into_inner());
        Self {
            lab_id: "SIM-DCV".into(),
            dmm: InstrumentConfig {
                resource: lab.hp3458.resource(),
                driver: Some(DmmDriver::Hp3458),
                baud: None,
            },
            scanner_x: inst(lab.scanner_x.resource()),
            scanner_ref: Some(inst(lab.scanner_ref.resource())),
            env: Some(inst(lab.env.resource())),
            channels: model
                .params()
                .standards
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i + 1))
                .collect(),
            gpib_adapter: None,
            connect_timeout: default_timeout(),
            lease_from: default_lease_from(),
            outbox: None,
        }
    }
}
