//! Helpers shared by the integration tests of mqttcal-core.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use mqttcal_core::config::MqttConfig;
use mqttcal_core::transport::MqttTransport;
use mqttcal_core::{Client, NoParams, Node, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Add {
    pub a: f64,
    pub b: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Sleep {
    pub ms: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Sum {
    pub sum: f64,
}

/// A node with `add` (typed) and `sleep` (a long capability).
pub fn test_node(name: &str) -> Node {
    NodeBuilder::new(name)
        .capability("add", "Add two numbers", |p: Add, _ctx| async move {
            Ok::<_, NodeError>(Sum { sum: p.a + p.b })
        })
        .capability(
            "sleep",
            "Sleep for `ms` milliseconds",
            |p: Sleep, _ctx| async move {
                tokio::time::sleep(Duration::from_millis(p.ms)).await;
                Ok::<_, NodeError>("slept")
            },
        )
        .capability(
            "fail",
            "Always fails with a hardware error",
            |_: NoParams, _ctx| async { Err::<(), _>(NodeError::hardware("DMM did not answer")) },
        )
        .build()
}

pub fn transport(url: &str) -> MqttTransport {
    let mut cfg = MqttConfig::default();
    cfg.apply_url(url).unwrap();
    MqttTransport::new(cfg).connect_timeout(Duration::from_secs(3))
}

pub async fn client(url: &str, name: &str) -> Client {
    Client::connect(&transport(url), name, "").await.unwrap()
}
