//! An environment sensor answering SCPI `MEASure` queries.

use super::{EnvReading, EnvSensor, Outcome};
use crate::interface::{query, BoxFuture, Interface, InterfaceError};
use crate::scpi::{common, parse_number};

/// A SCPI environment sensor on any [`Interface`].
#[derive(Debug)]
pub struct ScpiEnvSensor {
    iface: Box<dyn Interface>,
}

impl ScpiEnvSensor {
    /// A driver talking through `iface`.
    pub fn new(iface: Box<dyn Interface>) -> Self {
        Self { iface }
    }

    async fn number(&mut self, command: &str) -> Result<f64, InterfaceError> {
        let raw = query(&mut *self.iface, command).await?;
        parse_number(&raw).map_err(|e| InterfaceError::Protocol {
            resource: self.iface.resource().to_owned(),
            command: command.to_owned(),
            problem: e.to_string(),
        })
    }
}

impl EnvSensor for ScpiEnvSensor {
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>> {
        Box::pin(async move { query(&mut *self.iface, common::IDN).await })
    }

    fn read(&mut self) -> BoxFuture<'_, Outcome<EnvReading>> {
        Box::pin(async move {
            Ok(Ok(EnvReading {
                temperature: self.number("MEAS:TEMP?").await?,
                humidity: self.number("MEAS:HUM?").await?,
                pressure: self.number("MEAS:PRES?").await?,
            }))
        })
    }
}
