//! # mqttcal-nodes
//!
//! The reference nodes of mqttcal, to compose into your own binaries. Each node is a cargo
//! feature: a lab that wants labd alone compiles no database driver, and datad with SQLite
//! alone compiles no PostgreSQL client.
//!
//! | node | feature | module | what it does |
//! |---|---|---|---|
//! | `base` | (always) | [`base`] | a bare node with the built-in `ping`, `map`, `stop` (the report's `testnode`) |
//! | `labd` | `labd` | `labd` | the Virtual DMM: a DMM, two scanner matrices and an environment sensor |
//! | `datad` | `datad` | `datad` | stores `meas` readings exactly once, the 17025 records and jobs; counts gaps |
//! | `logd` | `logd` | `logd` | the lab's logbook: automatic and manual entries in a verifiable hash chain |
//! | `ctrld` | `ctrld` | `ctrld` | the lab's entry point: presence, status, calls filtered by a policy of roles |
//! | `cald` | `cald` | `cald` | calibration jobs: check-in/out, 17025 checks, + − − + series opposition through labd, GUM budget, results through datad |
//! | `tpld` | `tpld` | `tpld` | calibration certificates (DCC XML, printable HTML) from datad's records, through templates a lab can own |
//!
//! Storage backends for datad and logd: features `sqlite` and `postgres` (both by default).
//! The `mqttcal` command (crate `mqttcal-cli`) runs these nodes; the messages they exchange
//! are the types of `mqttcal-messages`.
//!
//! ```no_run
//! use mqttcal_core::{config::MqttConfig, transport::MqttTransport};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), mqttcal_core::RunError> {
//!     let transport = MqttTransport::new(MqttConfig::default());
//!     mqttcal_nodes::base::node("testnode").build().run(&transport).await
//! }
//! ```
//!
//! ## Features
//!
//! All but `pdf` and `visa` are on by default.
//!
//! - `labd`, `datad`, `logd`, `cald`, `ctrld`, `tpld`: each the node of the same name (its
//!   module, in the table above).
//! - `sqlite`, `postgres`: the storage backends of datad and logd (`sqlite:PATH`,
//!   `postgres://...`), through `mqttcal-store`.
//! - `pdf`: tpld also typesets certificates and reports as PDF (implies `tpld`; Typst
//!   compiled in, a longer cold build).
//! - `visa`: labd also reaches instruments through a vendor VISA library loaded at run time
//!   (implies `labd`).

pub mod base;
#[cfg(any(feature = "cald", feature = "ctrld"))]
mod budget;
#[cfg(feature = "cald")]
pub mod cald;
#[cfg(feature = "ctrld")]
pub mod ctrld;
#[cfg(feature = "datad")]
pub mod datad;
#[cfg(any(feature = "cald", feature = "tpld"))]
mod history;
#[cfg(feature = "labd")]
pub mod labd;
#[cfg(feature = "logd")]
pub mod logd;
#[cfg(any(feature = "datad", feature = "logd"))]
mod reply;
#[cfg(feature = "tpld")]
pub mod tpld;
