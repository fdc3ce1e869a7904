//! A simulated HP/Agilent 3458A speaking its own (non-SCPI) command language.
//!
//! Supported: `ID?`, `CALSTR?` and `CALSTR "text"` (the calibration string, where labs keep
//! the serial number the 3458A cannot report otherwise), `RESET`, `PRESET`, `END`,
//! `OFORMAT ASCII`, `TARM`, `AZERO`,
//! `FIXEDZ ON|OFF`, `DCV [range]`, `NPLC n`, `NDIG n`, `TRIG SGL` (one reading, answered as a
//! line), `ERRSTR?`. Anything else queues error 1 `UNDEFINED COMMAND`.

use std::collections::VecDeque;

use super::model::{LabModel, FIXED_INPUT, HIGH_INPUT};
use super::server::{
    dc_range, nr3, pop_error, quantise, queue_error, split, Response, SimInstrument,
};
use crate::scpi::DeviceError;

/// Simulated 3458A state. It starts with a fixed 10 MΩ input (`FIXEDZ ON`), so a driver
/// that forgets `FIXEDZ OFF` reads a loaded standard.
#[derive(Debug)]
pub struct Hp3458 {
    nplc: f64,
    ndig: usize,
    range: f64,
    fixedz: bool,
    calstr: String,
    errors: VecDeque<DeviceError>,
}

/// The calibration string a simulated 3458A starts with: its serial number.
pub const SIM_CALSTR: &str = "SIM3458-0001";

impl Default for Hp3458 {
    fn default() -> Self {
        Self {
            nplc: 10.0,
            ndig: 8,
            range: 10.0,
            fixedz: true,
            calstr: SIM_CALSTR.to_owned(),
            errors: VecDeque::new(),
        }
    }
}

impl Hp3458 {
    /// A 3458A after power-on.
    pub fn new() -> Self {
        Self::default()
    }

    fn error(&mut self, code: i32, message: &str) -> Response {
        queue_error(&mut self.errors, code, message)
    }
}

impl SimInstrument for Hp3458 {
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response {
        let (head, arg) = split(command);
        let number = arg
            .split(',')
            .next()
            .and_then(|a| a.trim().parse::<f64>().ok());
        match head.as_str() {
            "ID?" => Response::text("HP3458A"),
            "CALSTR?" => Response::text(format!("\"{}\"", self.calstr)),
            // Kept in non-volatile memory, up to 75 characters.
            "CALSTR" => {
                let text = arg.split(',').next().unwrap_or_default().trim();
                let text = text.trim_matches(|c| c == '"' || c == '\'');
                if text.len() > 75 {
                    return self.error(2, "PARAMETER OUT OF RANGE");
                }
                self.calstr = text.to_owned();
                Response::none()
            }
            "RESET" | "PRESET" => {
                let errors = std::mem::take(&mut self.errors);
                let calstr = std::mem::take(&mut self.calstr);
                *self = Self {
                    errors,
                    calstr,
                    ..Self::default()
                };
                Response::none()
            }
            "END" | "OFORMAT" | "TARM" | "AZERO" | "MATH" => Response::none(),
            "FIXEDZ" => {
                self.fixedz = arg.eq_ignore_ascii_case("ON");
                Response::none()
            }
            "DCV" => {
                let auto = arg.is_empty() || arg.eq_ignore_ascii_case("AUTO");
                match (auto, number.and_then(dc_range)) {
                    (true, _) => self.range = 10.0,
                    (false, Some(r)) => self.range = r,
                    (false, None) => return self.error(2, "PARAMETER OUT OF RANGE"),
                }
                Response::none()
            }
            "NPLC" => match number {
                Some(n) if (0.0001..=1000.0).contains(&n) => {
                    self.nplc = n;
                    Response::none()
                }
                _ => self.error(2, "PARAMETER OUT OF RANGE"),
            },
            "NDIG" => match number {
                Some(n) if (3.0..=8.0).contains(&n) => {
                    self.ndig = n as usize;
                    Response::none()
                }
                _ => self.error(2, "PARAMETER OUT OF RANGE"),
            },
            "TRIG" => {
                let busy = lab.reading_time(self.nplc);
                let t = lab.now() + busy / 2.0;
                // FIXEDZ ON: 10 MΩ; OFF: above 10 GΩ on the ranges up to 10 V.
                let input = if self.fixedz { FIXED_INPUT } else { HIGH_INPUT };
                let v = lab.read_dmm(self.nplc, t, input, self.range);
                // NDIG n gives n½ digits: 10 nV on the 10 V range at NDIG 8.
                let quantum = self.range * 10f64.powi(-(self.ndig as i32 + 1));
                let text = if v.abs() > self.range * 1.2 {
                    "+1.0E+38".to_owned()
                } else {
                    nr3(quantise(v, quantum), 11)
                };
                Response {
                    text: Some(text),
                    busy_s: busy,
                }
            }
            "ERRSTR?" => Response::text(pop_error(&mut self.errors, "0,\"NO ERROR\"")),
            _ => self.error(1, "UNDEFINED COMMAND"),
        }
    }

    fn errors(&mut self) -> &mut VecDeque<DeviceError> {
        &mut self.errors
    }
}
