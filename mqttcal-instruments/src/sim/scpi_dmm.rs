//! A simulated SCPI DMM in the style of a Keysight 34470A.
//!
//! Supported: `*IDN?`, `*RST`, `*CLS`, `*OPC?`, `CONF:VOLT:DC [range|AUTO]`,
//! `VOLT:DC:NPLC n`, `VOLT:DC:IMP:AUTO ON|OFF`, `READ?`, `SYST:ERR?` (short or long forms).
//! Anything else queues `-113,"Undefined header"`.

use std::collections::VecDeque;

use super::model::{LabModel, FIXED_INPUT, HIGH_INPUT};
use super::server::{
    dc_range, nr3, pop_error, quantise, queue_error, split, Response, SimInstrument,
};
use crate::scpi::DeviceError;

/// Simulated SCPI DMM state.
#[derive(Debug)]
pub struct ScpiDmm {
    nplc: f64,
    range: f64,
    high_z: bool,
    errors: VecDeque<DeviceError>,
}

impl Default for ScpiDmm {
    fn default() -> Self {
        Self {
            nplc: 10.0,
            range: 10.0,
            high_z: false,
            errors: VecDeque::new(),
        }
    }
}

impl ScpiDmm {
    /// A DMM after `*RST`.
    pub fn new() -> Self {
        Self::default()
    }

    fn error(&mut self, code: i32, message: &str) -> Response {
        queue_error(&mut self.errors, code, message)
    }
}

/// Reduces a SCPI header in long or short form to its short form (`VOLTage` -> `VOLT`).
pub(crate) fn short_form(header: &str) -> String {
    header
        .split(':')
        .map(|node| {
            let q = node.ends_with('?');
            let n = node.trim_end_matches('?');
            let short = match n {
                "CONFIGURE" => "CONF",
                "VOLTAGE" => "VOLT",
                "IMPEDANCE" => "IMP",
                "SYSTEM" => "SYST",
                "ERROR" => "ERR",
                "ROUTE" => "ROUT",
                "CLOSE" => "CLOS",
                "POLARITY" => "POL",
                "MEASURE" => "MEAS",
                "TEMPERATURE" => "TEMP",
                "HUMIDITY" => "HUM",
                "PRESSURE" => "PRES",
                other => other,
            };
            if q {
                format!("{short}?")
            } else {
                short.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

impl SimInstrument for ScpiDmm {
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response {
        let (head, arg) = split(command);
        match short_form(&head).as_str() {
            "*IDN?" => Response::text("Keysight Technologies,34470A,SIM34470,A.03.02"),
            "*RST" => {
                let errors = std::mem::take(&mut self.errors);
                *self = Self {
                    errors,
                    ..Self::default()
                };
                Response::none()
            }
            "*CLS" => {
                self.errors.clear();
                Response::none()
            }
            "*OPC?" => Response::text("1"),
            "CONF:VOLT:DC" => {
                if arg.is_empty() || arg.eq_ignore_ascii_case("AUTO") {
                    self.range = 10.0;
                } else {
                    match arg.parse::<f64>().ok().and_then(dc_range) {
                        Some(r) => self.range = r,
                        None => return self.error(-222, "Data out of range"),
                    }
                }
                Response::none()
            }
            "VOLT:DC:NPLC" => match arg.parse::<f64>() {
                Ok(n) if [0.02, 0.06, 0.2, 1.0, 10.0, 100.0].contains(&n) => {
                    self.nplc = n;
                    Response::none()
                }
                _ => self.error(-222, "Data out of range"),
            },
            "VOLT:DC:IMP:AUTO" => {
                self.high_z = matches!(arg.to_ascii_uppercase().as_str(), "ON" | "1");
                Response::none()
            }
            "READ?" => {
                let busy = lab.reading_time(self.nplc);
                let t = lab.now() + busy / 2.0;
                let input = if self.high_z { HIGH_INPUT } else { FIXED_INPUT };
                let v = lab.read_dmm(self.nplc, t, input, self.range);
                // Digits follow NPLC on this family (34470A): 7½ from 10 NPLC, 6½ at 1,
                // 5½ at 0.2 and 0.06, 4½ at 0.02.
                let digits = match self.nplc {
                    n if n >= 10.0 => 7,
                    n if n >= 1.0 => 6,
                    n if n >= 0.06 => 5,
                    _ => 4,
                };
                let quantum = self.range * 10f64.powi(-(digits + 1));
                let text = if v.abs() > self.range * 1.2 {
                    "+9.90000000E+37".to_owned()
                } else {
                    nr3(quantise(v, quantum), 11)
                };
                Response {
                    text: Some(text),
                    busy_s: busy,
                }
            }
            "SYST:ERR?" => Response::text(pop_error(&mut self.errors, "+0,\"No error\"")),
            _ => self.error(-113, "Undefined header"),
        }
    }

    fn errors(&mut self) -> &mut VecDeque<DeviceError> {
        &mut self.errors
    }
}
