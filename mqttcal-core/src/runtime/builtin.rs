//! The built-in capabilities of every node: `ping`, `map`, `stop`.
//!
//! They are answered by the event loop itself, never queued behind user handlers, so they
//! reply while a long capability runs.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::registry::{Capability, Registry};
use crate::capability::{schema_of, CapabilityInfo, NoParams};
use crate::error::NodeError;

/// The reply to `ping`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PingReply {
    /// Seconds since the node started.
    pub uptime: f64,
    /// The SDK that runs the node.
    pub sdk: String,
    /// Capability calls running now.
    pub running: usize,
    /// This run's epoch (see data messages).
    pub epoch: u64,
    /// The last `seq` sent per data topic, so a receiver can count losses at the tail.
    pub seqs: std::collections::BTreeMap<String, u64>,
    /// Messages the node could not use since it started, by kind: `malformed` (not an
    /// envelope), `shed` (a handler's queue was full), `busy` (a call refused by the
    /// concurrency limits), `withheld` (an error reply to a broadcast, not sent),
    /// `command_failed`, `spoofed` (addressed layout: `from` or `to` differs from the
    /// topic's), `forbidden` (a stop from a login that may not), `refused` (QoS 1 messages the
    /// broker refused, e.g. by its ACL; with an outbox, set aside beside it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub losses: std::collections::BTreeMap<String, u64>,
    /// With an outbox: the data messages it keeps that the broker has not confirmed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<usize>,
}

fn info<R: JsonSchema>(id: &str, description: &str) -> Capability {
    Capability {
        info: CapabilityInfo {
            id: id.into(),
            description: description.into(),
            params: schema_of::<NoParams>(),
            result: schema_of::<R>(),
        },
        handler: Arc::new(|_, _| {
            Box::pin(async {
                Err(NodeError::internal(
                    "built-in capability called as a handler",
                ))
            })
        }),
        concurrency: None,
    }
}

pub(crate) const PING: &str = "ping";
pub(crate) const MAP: &str = "map";
pub(crate) const STOP: &str = "stop";

pub(crate) fn is_builtin(id: &str) -> bool {
    matches!(id, PING | MAP | STOP)
}

pub(crate) fn registry() -> Registry {
    let mut r = Registry::default();
    r.insert(info::<PingReply>(
        PING,
        "Check whether the node is operating",
    ));
    r.insert(info::<Vec<CapabilityInfo>>(MAP, "List capabilities"));
    r.insert(info::<String>(STOP, "Stop the service"));
    r
}

pub(crate) fn sdk() -> String {
    format!("mqttcal-rust {}", env!("CARGO_PKG_VERSION"))
}
