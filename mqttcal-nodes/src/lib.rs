//! # mqttcal-nodes
//!
//! The reference nodes of mqttcal, to compose into your own binaries, and the `mqttcal`
//! command that runs them.
//!
//! | node | module | status |
//! |---|---|---|
//! | `base` | [`base`] | a bare node with the built-in `ping`, `map`, `stop` (the report's `testnode`) |
//! | `datad` | [`datad`] | stores `meas` readings exactly once (PostgreSQL or SQLite), counts gaps |
//! | `labd` | [`labd`] | the Virtual DMM: a DMM, two scanner matrices and an environment sensor |
//! | `logd` | [`logd`] | the lab's logbook: automatic and manual entries in a verifiable hash chain |
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

pub mod base;
pub mod cli;
pub mod datad;
pub mod labd;
pub mod logd;
pub mod store;
