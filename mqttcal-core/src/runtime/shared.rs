//! State shared by a node's event loop, its handlers and its contexts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::call_error::CallError;
use crate::clock::Clock;
use crate::envelope::Envelope;
use crate::topics::{self, Topics};
use crate::transport::{Outgoing, Publisher, QoS, TryPublishError};

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) topics: Topics,
    pub(crate) clock: Clock,
    pub(crate) epoch: u64,
    pub(crate) limit: usize,
    pub(crate) control_qos: QoS,
    pub(crate) publisher: Arc<dyn Publisher>,
    pub(crate) pending: Arc<super::pending::Pending>,
    /// The peers that read what is addressed to them alone (shared layout).
    pub(crate) peers: Arc<super::peers::Peers>,
    /// Whether this node reads what is addressed to it alone in the shared layout, and
    /// says so (`direct`) in its requests, replies and `hello`.
    pub(crate) direct: bool,
    pub(crate) seqs: Mutex<HashMap<String, u64>>,
    pub(crate) started: std::time::Instant,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    /// Messages that [`Shared::publish_soon`] could not queue at once, sent in order by a
    /// task of their own.
    pub(crate) overflow: Overflow,
    /// Where data messages are kept until the broker confirms them, if the node has one.
    pub(crate) outbox: Option<Arc<crate::outbox::Outbox>>,
}

/// The queue behind [`Shared::publish_soon`].
#[derive(Debug)]
pub(crate) struct Overflow {
    /// Messages handed to the task and not yet queued by the transport.
    queued: Arc<Mutex<usize>>,
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Overflow {
    /// The queue, and the task that empties it through `publisher` (it ends with the node).
    pub(crate) fn new(publisher: Arc<dyn Publisher>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let queued = Arc::new(Mutex::new(0usize));
        let left = queued.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Err(e) = publisher.publish(msg).await {
                    tracing::warn!("cannot send a message: {}", crate::error::error_chain(&e));
                }
                let mut n = left.lock().unwrap_or_else(|e| e.into_inner());
                *n = n.saturating_sub(1);
            }
        });
        Self { queued, tx }
    }

    /// Queues `msg` without waiting: straight to the transport when nothing waits here and
    /// it has room, behind what waits here otherwise (so the order is kept).
    fn send(&self, publisher: &dyn Publisher, msg: Outgoing) {
        let mut n = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        let msg = if *n == 0 {
            match publisher.try_publish(msg) {
                Ok(()) | Err(TryPublishError::Closed) => return,
                Err(TryPublishError::Full(msg)) => msg,
            }
        } else {
            msg
        };
        if self.tx.send(msg).is_ok() {
            *n += 1;
        }
    }
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
        // Progress is worth nothing once late: never queued, never replayed.
        topics::PROGRESS => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

impl Shared {
    /// Stamps, encodes and publishes an envelope on protocol topic `topic`.
    pub(crate) async fn publish(&self, topic: &str, env: Envelope) -> Result<(), CallError> {
        self.publisher
            .publish(self.outgoing(topic, env)?)
            .await
            .map_err(CallError::Transport)
    }

    /// Like [`Shared::publish`], without waiting for room in the transport's queue: the
    /// event loop's path (replies, announcements), which must never wait for the
    /// connection, since the connection may be waiting for the event loop.
    pub(crate) fn publish_soon(&self, topic: &str, env: Envelope) -> Result<(), CallError> {
        self.send_soon(self.outgoing(topic, env)?);
        Ok(())
    }

    /// Like [`Shared::publish_soon`], ahead of what waits to be sent: the replies to the
    /// built-ins, so that `ping` measures the node, not the length of its queue.
    pub(crate) fn publish_first(&self, topic: &str, env: Envelope) -> Result<(), CallError> {
        let msg = self.outgoing(topic, env)?;
        match self.publisher.publish_first(msg) {
            Ok(()) | Err(TryPublishError::Closed) => {}
            Err(TryPublishError::Full(msg)) => self.send_soon(msg),
        }
        Ok(())
    }

    /// Publishes a data message: through the outbox when the node has one.
    pub(crate) async fn publish_data(&self, topic: &str, env: Envelope) -> Result<(), CallError> {
        let Some(outbox) = &self.outbox else {
            return self.publish(topic, env).await;
        };
        outbox
            .publish(&*self.publisher, self.outgoing(topic, env)?)
            .await
    }

    /// Stamps and encodes an envelope for protocol topic `topic`.
    fn outgoing(&self, topic: &str, mut env: Envelope) -> Result<Outgoing, CallError> {
        if env.timestamp.is_none() {
            env.timestamp = Some(self.clock.next());
        }
        env.utc = None;
        let full = self.route(topic, &mut env);
        let payload = env.encode(self.limit).map_err(CallError::Encode)?;
        Ok(Outgoing {
            topic: full,
            payload: payload.into(),
            qos: qos_for(topic, self.control_qos),
            retain: false,
        })
    }

    /// The full topic of `env` on protocol topic `name` (see [`super::peers`]). In the
    /// shared layout a request goes to a peer known to read its own topic there, and says
    /// `direct` unless that peer met a request of ours with silence lately; a reply goes
    /// to the caller's own topic when its request said `direct` (which `env.direct`
    /// carries in), and says `direct`.
    pub(crate) fn route(&self, name: &str, env: &mut Envelope) -> String {
        let control = matches!(name, topics::REQUEST | topics::REPLY);
        if control && !self.direct {
            env.direct = false;
        } else if name == topics::REQUEST {
            env.direct = true;
            if env.to != "*" {
                let asking = self.peers.asking(&env.to);
                env.direct = asking.say_direct;
                if asking.own_topic {
                    return self.topics.direct(name, &env.from, &env.to);
                }
            }
        } else if name == topics::REPLY {
            let asked = env.direct;
            env.direct = true;
            if asked && topics::is_valid_name(&env.to) {
                return self.topics.direct(name, &env.from, &env.to);
            }
        }
        self.topics.outgoing(name, &env.from, &env.to)
    }

    /// Queues an encoded message without waiting (see [`Shared::publish_soon`]).
    pub(crate) fn send_soon(&self, msg: Outgoing) {
        self.overflow.send(&*self.publisher, msg);
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

    /// Waits for the replies to `requestid` until `deadline`, when the channel closes.
    pub(crate) fn register_pending(
        &self,
        requestid: &str,
        deadline: tokio::time::Instant,
    ) -> mpsc::UnboundedReceiver<Envelope> {
        self.pending.register(requestid, deadline)
    }

    pub(crate) fn forget_pending(&self, requestid: &str) {
        self.pending.forget(requestid);
    }

    /// Hands a reply to whoever waits for it; `false` if nobody does.
    pub(crate) fn deliver_reply(&self, env: Envelope) -> bool {
        self.pending.deliver(env)
    }
}
