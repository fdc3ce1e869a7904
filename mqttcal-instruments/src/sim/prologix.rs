//! A simulated Prologix-style GPIB adapter in front of a simulated instrument.

use std::collections::VecDeque;

use super::model::LabModel;
use super::server::{Response, SimInstrument};
use crate::scpi::DeviceError;

/// Plays a Prologix-style adapter (controller mode, `++auto 0`) with one instrument at
/// `address`: instrument output is held until `++read`.
#[derive(Debug)]
pub struct PrologixAdapter<I> {
    inner: I,
    address: u8,
    selected: Option<u8>,
    output: Vec<String>,
}

impl<I: SimInstrument> PrologixAdapter<I> {
    /// `inner` listening at GPIB `address` behind the adapter.
    pub fn new(inner: I, address: u8) -> Self {
        Self {
            inner,
            address,
            selected: None,
            output: Vec::new(),
        }
    }
}

fn unescape(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl<I: SimInstrument> SimInstrument for PrologixAdapter<I> {
    fn handle(&mut self, command: &str, lab: &mut LabModel) -> Response {
        if let Some(rest) = command.strip_prefix("++") {
            let mut words = rest.split_whitespace();
            return match words.next() {
                Some("addr") => {
                    self.selected = words.next().and_then(|a| a.parse().ok());
                    Response::none()
                }
                Some("read") => match self.output.is_empty() {
                    true => Response::none(),
                    false => Response::text(self.output.remove(0)),
                },
                Some("clr") => {
                    self.output.clear();
                    Response::none()
                }
                _ => Response::none(),
            };
        }
        if self.selected != Some(self.address) {
            return Response::none();
        }
        let r = self.inner.handle(&unescape(command), lab);
        if let Some(text) = r.text {
            self.output.push(text);
        }
        Response {
            text: None,
            busy_s: r.busy_s,
        }
    }

    fn errors(&mut self) -> &mut VecDeque<DeviceError> {
        self.inner.errors()
    }
}
