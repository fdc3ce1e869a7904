//! A low-thermal scanner matrix with reversing relays, SCPI `ROUTe` commands.

use super::{check, Outcome, Switch};
use crate::interface::{query, send, BoxFuture, Interface, InterfaceError};
use crate::scpi::common;

/// A SCPI scanner matrix on any [`Interface`].
#[derive(Debug)]
pub struct ScpiScanner {
    iface: Box<dyn Interface>,
}

impl ScpiScanner {
    /// A driver talking through `iface`.
    pub fn new(iface: Box<dyn Interface>) -> Self {
        Self { iface }
    }

    /// Sends `command`, waits for the relays (`*OPC?`), then checks the error queue.
    async fn switch(&mut self, command: &str) -> Outcome<()> {
        send(&mut *self.iface, command).await?;
        let done = query(&mut *self.iface, common::OPC).await?;
        if done.trim() != "1" {
            return Err(InterfaceError::Protocol {
                resource: self.iface.resource().to_owned(),
                command: common::OPC.into(),
                problem: format!("expected `1`, got `{done}`"),
            });
        }
        check(&mut *self.iface, common::SYST_ERR).await
    }
}

impl Switch for ScpiScanner {
    fn identify(&mut self) -> BoxFuture<'_, Result<String, InterfaceError>> {
        Box::pin(async move { query(&mut *self.iface, common::IDN).await })
    }

    fn connect(&mut self, channel: usize) -> BoxFuture<'_, Outcome<()>> {
        Box::pin(async move { self.switch(&format!("ROUT:CLOS (@{channel})")).await })
    }

    fn open_all(&mut self) -> BoxFuture<'_, Outcome<()>> {
        Box::pin(async move { self.switch("ROUT:OPEN:ALL").await })
    }

    fn set_polarity(&mut self, negative: bool) -> BoxFuture<'_, Outcome<()>> {
        let command = if negative {
            "ROUT:POL NEG"
        } else {
            "ROUT:POL POS"
        };
        Box::pin(async move { self.switch(command).await })
    }
}
