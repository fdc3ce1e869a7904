//! HP/Agilent 3458A: its own command language (not SCPI).

use super::{check, drain_errors, read_timeout, reading, Dmm, DmmConfig, Outcome, Reading};
use crate::interface::{query, send, BoxFuture, Interface, InterfaceError};
use crate::scpi::{format_number, DeviceError};

const ERRORS: &str = "ERRSTR?";
const TRIGGER: &str = "TRIG SGL";

/// A 3458A on any [`Interface`].
#[derive(Debug)]
pub struct Hp3458 {
    iface: Box<dyn Interface>,
}

impl Hp3458 {
    /// A driver talking through `iface`.
    pub fn new(iface: Box<dyn Interface>) -> Self {
        Self { iface }
    }
}

impl Dmm for Hp3458 {
    /// `ID?` names only the model; the serial number, which it cannot report, is by lab
    /// practice kept in the calibration string: `HP3458A CALSTR "2823A12345"` when
    /// `CALSTR?` holds something.
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>> {
        Box::pin(async move {
            let id = query(&mut *self.iface, "ID?").await?;
            let cal = query(&mut *self.iface, "CALSTR?").await?;
            let cal = cal.trim().trim_matches('"').trim();
            Ok(if cal.is_empty() {
                id
            } else {
                format!("{} CALSTR \"{cal}\"", id.trim())
            })
        })
    }

    fn configure<'a>(&'a mut self, c: &'a DmmConfig) -> BoxFuture<'a, Outcome<()>> {
        Box::pin(async move {
            self.iface.set_timeout(read_timeout(c.nplc));
            // END ALWAYS: EOI on every reading; TARM HOLD: read only on TRIG SGL;
            // FIXEDZ OFF: >10 GΩ input on the DC ranges up to 10 V.
            let setup = format!(
                "END ALWAYS;OFORMAT ASCII;TARM HOLD;DCV {};NPLC {};NDIG {};FIXEDZ OFF",
                format_number(c.range),
                format_number(c.nplc),
                c.ndigits
            );
            send(&mut *self.iface, &setup).await?;
            check(&mut *self.iface, ERRORS).await
        })
    }

    fn read(&mut self) -> BoxFuture<'_, Outcome<Reading>> {
        Box::pin(async move {
            let raw = query(&mut *self.iface, TRIGGER).await?;
            reading(&*self.iface, TRIGGER, raw)
        })
    }

    fn errors(&mut self) -> BoxFuture<'_, Result<Vec<DeviceError>, InterfaceError>> {
        Box::pin(async move { drain_errors(&mut *self.iface, ERRORS).await })
    }
}
