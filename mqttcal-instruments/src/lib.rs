//! # mqttcal-instruments
//!
//! The instrument layer of mqttcal, usable on its own (it knows nothing of MQTT):
//!
//! - [`scpi`]: I/O-free SCPI / IEEE 488.2 formatting and parsing;
//! - [`interface`]: the async [`Interface`](interface::Interface) trait and its raw TCP
//!   socket implementation, selected by VISA-style resource strings;
//! - [`sim`]: a deterministic physical model of a DC-voltage lab (Zener standards,
//!   thermal EMFs, a DMM) and instruments that speak their own command languages over real
//!   TCP sockets;
//! - [`drivers`]: an HP/Agilent 3458A-style DMM, a SCPI DMM, a low-thermal scanner and an
//!   environment sensor behind traits.
//!
//! ```
//! use mqttcal_instruments::scpi::{parse_number, parse_error_entry};
//! assert_eq!(parse_number("+1.000012E+01").unwrap(), 10.00012);
//! assert!(parse_error_entry("0,\"No error\"").unwrap().is_none());
//! ```
//!
//! ## Features
//!
//! - `visa` (off by default): `interface::VisaInterface`, instruments reached through a
//!   vendor VISA library (NI-VISA, Keysight, R&S) loaded at run time, so the feature builds
//!   on machines without VISA; [`interface::open`] then hands any resource string it does
//!   not handle itself to VISA.

pub mod drivers;
pub mod interface;
pub mod scpi;
pub mod sim;
