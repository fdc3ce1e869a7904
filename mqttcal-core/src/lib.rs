//! # mqttcal-core
//!
//! The core of mqttcal: the JSON message envelope of the INRIM report "MQTT Based
//! Calibration Service" (T.R. 16/2022), request ids, typed capabilities with JSON Schemas,
//! the node runtime and its transports (MQTT 5 on our own I/O loop, or an in-memory bus).
//!
//! A node is a name plus capabilities. It never touches MQTT: handlers get a [`Context`] to
//! send, request, gather, dispatch and publish. Every node answers `ping`, `map` and `stop`,
//! announces `hello` and `bye` on `announce`, and leaves a last will (`bye`, reason `lost`).
//!
//! ```no_run
//! use mqttcal_core::{NodeBuilder, NodeError, config::MqttConfig, transport::MqttTransport};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Read {
//!     /// Sensor channel, 0 to 7.
//!     channel: u8,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let node = NodeBuilder::new("thermo")
//!         .capability("read", "Read one channel, in degrees Celsius", |p: Read, _ctx| async move {
//!             if p.channel > 7 {
//!                 return Err(NodeError::invalid_params("channel must be 0 to 7"));
//!             }
//!             Ok(20.0 + f64::from(p.channel) / 10.0)
//!         })
//!         .build();
//!     let transport = MqttTransport::new(MqttConfig::default());
//!     node.run(&transport).await?; // until a `stop` message
//!     Ok(())
//! }
//! ```
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | (default) | everything above, pure Rust (TLS through rustls with ring) |
//! | `broker` | `broker::EmbeddedBroker`: an MQTT broker inside the process (rumqttd) |
//! | `paho` | `transport::PahoTransport`: MQTT 5 through the Eclipse Paho C client (crate `paho-mqtt`, EPL-2.0; needs cmake and OpenSSL's headers to build) |

#[doc(hidden)]
pub mod __private;
#[cfg(feature = "broker")]
pub mod broker;
mod call_error;
mod capability;
pub mod clock;
pub mod config;
mod context;
pub mod envelope;
mod error;
pub mod intake;
mod node_macro;
pub mod outbox;
mod progress;
mod runtime;
pub mod suggest;
mod throttle;
pub mod topics;
pub mod transport;

pub use call_error::CallError;
pub use capability::{schema_of, CapabilityInfo, NoParams};
pub use context::{reply_result, Context, Gather, DEFAULT_TIMEOUT, MAX_HOPS};
pub use error::{error_chain, ErrorCode, NodeError};
pub use node_macro::{capability, node};
pub use runtime::{
    Client, Node, NodeBuilder, NodeHandle, PingReply, RunError, DEFAULT_MAX_CALLS,
    DEFAULT_STOP_FROM,
};
pub use throttle::Throttle;
