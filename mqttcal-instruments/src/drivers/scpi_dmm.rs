//! A SCPI DMM in the style of a Keysight 34470A.

use super::{check, drain_errors, read_timeout, reading, Dmm, DmmConfig, Outcome, Reading};
use crate::interface::{query, send, BoxFuture, Interface, InterfaceError};
use crate::scpi::{common, format_number, DeviceError};

/// A SCPI DMM on any [`Interface`].
#[derive(Debug)]
pub struct ScpiDmm {
    iface: Box<dyn Interface>,
}

impl ScpiDmm {
    /// A driver talking through `iface`.
    pub fn new(iface: Box<dyn Interface>) -> Self {
        Self { iface }
    }
}

impl Dmm for ScpiDmm {
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>> {
        Box::pin(async move { query(&mut *self.iface, common::IDN).await })
    }

    fn configure<'a>(&'a mut self, c: &'a DmmConfig) -> BoxFuture<'a, Outcome<()>> {
        Box::pin(async move {
            self.iface.set_timeout(read_timeout(c.nplc));
            // Digits follow from NPLC on this family; IMP:AUTO ON gives >10 GΩ up to 10 V.
            let setup = format!(
                "CONF:VOLT:DC {};VOLT:DC:NPLC {};VOLT:DC:IMP:AUTO ON",
                format_number(c.range),
                format_number(c.nplc)
            );
            send(&mut *self.iface, &setup).await?;
            check(&mut *self.iface, common::SYST_ERR).await
        })
    }

    fn read(&mut self) -> BoxFuture<'_, Outcome<Reading>> {
        Box::pin(async move {
            let raw = query(&mut *self.iface, "READ?").await?;
            reading(&*self.iface, "READ?", raw)
        })
    }

    fn errors(&mut self) -> BoxFuture<'_, Result<Vec<DeviceError>, InterfaceError>> {
        Box::pin(async move { drain_errors(&mut *self.iface, common::SYST_ERR).await })
    }
}
