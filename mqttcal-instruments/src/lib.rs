//! # mqttcal-instruments
//!
//! The instrument layer of mqttcal, usable on its own (it knows nothing of MQTT): I/O-free
//! SCPI / IEEE 488.2 formatting and parsing, interfaces (raw TCP socket, serial, Prologix
//! GPIB-Ethernet, VISA behind a feature), drivers behind traits (`Dmm`, `Switch`,
//! environment sensor) and simulated instruments that speak their own command languages over
//! real sockets.
//!
//! This release holds no items yet; the crate exists so that node crates can depend on
//! it from the start.
//!
//! ```
//! // Nothing to call yet: the crate builds and documents itself.
//! assert_eq!(mqttcal_instruments::VERSION.split('.').count(), 3);
//! ```

/// The version of this crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
