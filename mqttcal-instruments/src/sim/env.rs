//! A simulated environment sensor: temperature, relative humidity, pressure.
//!
//! Supported: `*IDN?`, `MEAS:TEMP?` (°C), `MEAS:HUM?` (%), `MEAS:PRES?` (hPa), `SYST:ERR?`.

use std::collections::VecDeque;

use super::model::LabModel;
use super::scpi_dmm::short_form;
use super::server::{pop_error, queue_error, split, Response, SimInstrument};
use crate::scpi::DeviceError;

/// A simulated environment sensor.
#[derive(Debug, Default)]
pub struct EnvSensor {
    errors: VecDeque<DeviceError>,
}

impl EnvSensor {
    /// A sensor.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SimInstrument for EnvSensor {
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response {
        let (head, _) = split(command);
        let env = lab.environment(lab.now());
        let busy = 0.02;
        match short_form(&head).as_str() {
            "*IDN?" => Response::text("mqttcal,ENV-1 sensor (simulated),SIMENV,1.0"),
            "MEAS:TEMP?" => Response {
                text: Some(format!("{:.3}", env.temperature)),
                busy_s: busy,
            },
            "MEAS:HUM?" => Response {
                text: Some(format!("{:.1}", env.humidity)),
                busy_s: busy,
            },
            "MEAS:PRES?" => Response {
                text: Some(format!("{:.2}", env.pressure)),
                busy_s: busy,
            },
            "SYST:ERR?" => Response::text(pop_error(&mut self.errors, "+0,\"No error\"")),
            _ => queue_error(&mut self.errors, -113, "Undefined header"),
        }
    }

    fn errors(&mut self) -> &mut VecDeque<DeviceError> {
        &mut self.errors
    }
}
