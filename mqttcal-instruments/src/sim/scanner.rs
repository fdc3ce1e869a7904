//! A simulated low-thermal scanner matrix with reversing relays.
//!
//! Matrix 0 connects the measured standard; matrix 1 the reference in series opposition.
//! Supported: `*IDN?`, `*RST`, `*OPC?`, `ROUT:CLOS (@n)`, `ROUT:CLOS?`, `ROUT:OPEN:ALL`,
//! `ROUT:POL POS|NEG`, `ROUT:POL?`, `SYST:ERR?`.

use std::collections::VecDeque;

use super::model::LabModel;
use super::scpi_dmm::short_form;
use super::server::{pop_error, queue_error, split, Response, SimInstrument};
use crate::scpi::DeviceError;

/// Channels per matrix.
pub const CHANNELS: usize = 16;

/// A simulated scanner matrix.
#[derive(Debug)]
pub struct Scanner {
    matrix: usize,
    errors: VecDeque<DeviceError>,
}

impl Scanner {
    /// Matrix `matrix` (0: measured standard, 1: reference).
    pub fn new(matrix: usize) -> Self {
        Self {
            matrix,
            errors: VecDeque::new(),
        }
    }

    fn error(&mut self, code: i32, message: &str) -> Response {
        queue_error(&mut self.errors, code, message)
    }

    fn slot<'a>(&self, lab: &'a mut LabModel) -> &'a mut Option<usize> {
        if self.matrix == 0 {
            &mut lab.switches.x
        } else {
            &mut lab.switches.reference
        }
    }
}

/// Parses a channel list with one channel, `(@n)`.
fn channel(arg: &str) -> Option<usize> {
    arg.trim()
        .strip_prefix("(@")?
        .strip_suffix(')')?
        .trim()
        .parse()
        .ok()
}

impl SimInstrument for Scanner {
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response {
        let (head, arg) = split(command);
        let relay = lab.params().relay_s;
        match short_form(&head).as_str() {
            "*IDN?" => Response::text(format!(
                "mqttcal,LTS-{CHANNELS} scanner (simulated),SIMSCAN{},1.0",
                self.matrix
            )),
            "*RST" | "ROUT:OPEN:ALL" => {
                *self.slot(lab) = None;
                if self.matrix == 0 {
                    lab.switches.negative = false;
                }
                Response {
                    text: None,
                    busy_s: relay,
                }
            }
            "*OPC?" => Response::text("1"),
            "ROUT:CLOS" => match channel(arg) {
                Some(c) if (1..=CHANNELS).contains(&c) => {
                    *self.slot(lab) = Some(c);
                    Response {
                        text: None,
                        busy_s: relay,
                    }
                }
                _ => self.error(-222, "Data out of range"),
            },
            "ROUT:CLOS?" => Response::text(match *self.slot(lab) {
                Some(c) => format!("(@{c})"),
                None => "(@)".into(),
            }),
            "ROUT:POL" if self.matrix == 0 => match arg.to_ascii_uppercase().as_str() {
                "POS" | "+" => {
                    lab.switches.negative = false;
                    Response {
                        text: None,
                        busy_s: relay,
                    }
                }
                "NEG" | "-" => {
                    lab.switches.negative = true;
                    Response {
                        text: None,
                        busy_s: relay,
                    }
                }
                _ => self.error(-224, "Illegal parameter value"),
            },
            "ROUT:POL" => self.error(-221, "Settings conflict: reversing relays are on matrix 0"),
            "ROUT:POL?" => Response::text(if lab.switches.negative { "NEG" } else { "POS" }),
            "SYST:ERR?" => Response::text(pop_error(&mut self.errors, "+0,\"No error\"")),
            _ => self.error(-113, "Undefined header"),
        }
    }

    fn errors(&mut self) -> &mut VecDeque<DeviceError> {
        &mut self.errors
    }
}
