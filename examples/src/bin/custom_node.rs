//! Run with: cargo run -p mqttcal-examples --bin custom_node -- "$MQTTCAL_BROKER"
//! (the URL `mqttcal lab` printed; without it the node uses `MQTTCAL_BROKER` or
//! mqtt://127.0.0.1:1883).
//!
//! A custom node with two typed capabilities: a simulated thermometer with eight channels
//! and a settable offset. Try it with:
//! `mqttcal call thermo read '{"channel": 3}'` and `mqttcal map thermo`.

use mqttcal_core::config::Config;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{node, Context, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `read`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Read {
    /// Channel, 0 to 7.
    channel: u8,
}

/// Parameters of `set-offset`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Offset {
    /// Offset added to every reading, in kelvin.
    kelvin: f64,
}

/// A temperature reading.
#[derive(Serialize, JsonSchema)]
struct Reading {
    channel: u8,
    celsius: f64,
}

struct Thermometer {
    offset: f64,
}

#[node]
impl Thermometer {
    /// Read one channel, in degrees Celsius.
    #[capability]
    async fn read(&self, p: Read, _ctx: &Context) -> Result<Reading, NodeError> {
        if p.channel > 7 {
            return Err(NodeError::invalid_params("`channel` must be 0 to 7"));
        }
        let celsius = 20.0 + 0.01 * f64::from(p.channel) + self.offset;
        Ok(Reading {
            channel: p.channel,
            celsius,
        })
    }

    /// Set the offset added to every reading, in kelvin.
    #[capability(id = "set-offset")]
    async fn set_offset(&mut self, p: Offset) -> Result<f64, NodeError> {
        self.offset = p.kelvin;
        Ok(self.offset)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::default();
    config.apply_process_env()?;
    if let Some(url) = std::env::args().nth(1) {
        config.mqtt.apply_url(&url)?;
    }
    let node = NodeBuilder::new("thermo")
        .register(Thermometer { offset: 0.0 })
        .build();
    println!(
        "thermo on {}; stop it with: mqttcal stop thermo",
        config.mqtt.url()
    );
    node.run(&MqttTransport::new(config.mqtt)).await?;
    Ok(())
}
