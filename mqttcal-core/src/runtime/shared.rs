//! State shared by a node's event loop, its handlers and its contexts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::call_error::CallError;
use crate::clock::Clock;
use crate::envelope::Envelope;
use crate::topics::{self, Topics};
use crate::transport::{Outgoing, Publisher, QoS};

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) topics: Topics,
    pub(crate) clock: Clock,
    pub(crate) epoch: u64,
    pub(crate) limit: usize,
    pub(crate) control_qos: QoS,
    pub(crate) publisher: Arc<dyn Publisher>,
    pub(crate) pending: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    pub(crate) seqs: Mutex<HashMap<String, u64>>,
    pub(crate) started: std::time::Instant,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("name", &self.name).finish()
    }
}

/// Control topics travel at the control QoS (default 0), everything else at QoS 1 (see
/// docs/protocol.md).
pub(crate) fn qos_for(topic: &str, control: QoS) -> QoS {
    match topic {
        topics::SYSTEM | topics::REQUEST | topics::REPLY => control,
        _ => QoS::AtLeastOnce,
    }
}

impl Shared {
    /// Stamps, encodes and publishes an envelope on protocol topic `topic`.
    pub(crate) async fn publish(&self, topic: &str, mut env: Envelope) -> Result<(), CallError> {
        if env.timestamp.is_none() {
            env.timestamp = Some(self.clock.next());
        }
        env.utc = None;
        let payload = env.encode(self.limit).map_err(CallError::Encode)?;
        let full = self.topics.outgoing(topic, &env.from, &env.to);
        self.publisher
            .publish(Outgoing {
                topic: full,
                payload: payload.into(),
                qos: qos_for(topic, self.control_qos),
                retain: false,
            })
            .await
            .map_err(CallError::Transport)
    }

    /// The next sequence number of data topic `topic`, from 0.
    pub(crate) fn next_seq(&self, topic: &str) -> u64 {
        let mut seqs = self.seqs.lock().unwrap_or_else(|e| e.into_inner());
        let next = seqs.entry(topic.to_owned()).or_insert(0);
        let seq = *next;
        *next += 1;
        seq
    }

    /// The last sequence number sent per data topic, for `bye` and heartbeats.
    pub(crate) fn last_seqs(&self) -> Value {
        let seqs = self.seqs.lock().unwrap_or_else(|e| e.into_inner());
        seqs.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.saturating_sub(1))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    pub(crate) fn register_pending(&self, requestid: &str) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(requestid.to_owned(), tx);
        rx
    }

    pub(crate) fn forget_pending(&self, requestid: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(requestid);
    }

    /// Hands a reply to whoever waits for it; `false` if nobody does.
    pub(crate) fn deliver_reply(&self, env: Envelope) -> bool {
        let Some(id) = env.requestid.as_deref() else {
            return false;
        };
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(id) {
            Some(tx) => tx.send(env).is_ok(),
            None => false,
        }
    }
}
