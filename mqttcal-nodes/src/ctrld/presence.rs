//! Which nodes are there and what they can do: kept from `announce` (hello, bye, lost,
//! heartbeats) and rebuilt by a census (`ping` and `map` to every node) when ctrld starts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mqttcal_core::clock::Timestamp;
use mqttcal_core::envelope::Envelope;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The most nodes ctrld keeps: beyond it, a new name takes the place of the node that left
/// or was lost longest ago, or is counted and not kept when every node is up (anyone on an
/// open broker can announce any name).
pub(super) const MOST_NODES: usize = 1000;

/// Where a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// It said hello, answered the census or sent a heartbeat, and has not left.
    Up,
    /// It said bye.
    Left,
    /// The broker said it was lost (its last will).
    Lost,
}

/// One node as ctrld knows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NodeState {
    /// Its name.
    pub name: String,
    /// Up, left or lost.
    pub status: NodeStatus,
    /// Its run (microseconds at its start), when it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Since when it is in this status (seconds since the Unix epoch).
    pub since: f64,
    /// When ctrld last heard of it.
    pub last_seen: f64,
    /// Its capabilities (`map`), once known.
    pub capabilities: Vec<String>,
}

/// The nodes ctrld knows, by name.
#[derive(Debug, Default)]
pub(super) struct Presence {
    nodes: Mutex<BTreeMap<String, NodeState>>,
    /// Announcements of new names left out beyond [`MOST_NODES`].
    pub(super) ignored: std::sync::atomic::AtomicU64,
}

/// What an announcement says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// It is up and ctrld does not know its capabilities (a `hello`: it (re)started, or a
    /// heartbeat of a node never mapped): ask it for them.
    Unmapped,
    /// Any other sign of life or of leaving.
    Other,
}

fn now() -> f64 {
    Timestamp::now().as_secs_f64()
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, NodeState>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one message on `announce`; what it said, when it names a node.
    pub(super) fn announced(&self, env: &Envelope) -> Option<Heard> {
        let from = env.from.as_str();
        if from.is_empty() || from == "*" {
            return None;
        }
        let epoch = env.epoch;
        let reason = env.fields.get("reason").and_then(Value::as_str);
        let hello = env.message.as_deref() == Some("hello");
        // A later run closing the stream of one that was killed says nothing of presence.
        if env.closes_earlier_run() {
            return None;
        }
        let status = match (env.message.as_deref(), reason) {
            (Some("hello"), _) | (Some("heartbeat"), _) => NodeStatus::Up,
            (Some("bye"), Some("lost")) => NodeStatus::Lost,
            (Some("bye"), _) => NodeStatus::Left,
            _ => return None,
        };
        // What an earlier run says (a late will, a heartbeat delayed) does not change what
        // ctrld knows of the run after it; a will names its run exactly.
        if let (Some(e), Some(known)) = (epoch, self.epoch_of(from)) {
            if e < known || (status == NodeStatus::Lost && e != known) {
                return None;
            }
        }
        if !self.set(from, status, epoch) {
            return None;
        }
        let unmapped = status == NodeStatus::Up
            && (hello
                || self
                    .lock()
                    .get(from)
                    .is_some_and(|n| n.capabilities.is_empty()));
        Some(if unmapped {
            Heard::Unmapped
        } else {
            Heard::Other
        })
    }

    fn epoch_of(&self, name: &str) -> Option<u64> {
        self.lock().get(name).and_then(|n| n.epoch)
    }

    /// Records `name` in `status`; whether it is kept (see [`MOST_NODES`]).
    pub(super) fn set(&self, name: &str, status: NodeStatus, epoch: Option<u64>) -> bool {
        let t = now();
        let mut nodes = self.lock();
        if !nodes.contains_key(name) && nodes.len() >= MOST_NODES {
            let gone = nodes
                .values()
                .filter(|n| n.status != NodeStatus::Up)
                .min_by(|a, b| a.since.total_cmp(&b.since))
                .map(|n| n.name.clone());
            match gone {
                Some(old) => {
                    nodes.remove(&old);
                }
                None => {
                    self.ignored
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return false;
                }
            }
        }
        let n = nodes.entry(name.to_owned()).or_insert_with(|| NodeState {
            name: name.to_owned(),
            status,
            epoch,
            since: t,
            last_seen: t,
            capabilities: Vec::new(),
        });
        if n.status != status || (epoch.is_some() && n.epoch != epoch) {
            n.since = t;
        }
        n.status = status;
        n.epoch = epoch.or(n.epoch);
        n.last_seen = t;
        true
    }

    /// Marks lost every node up that nothing was heard of since `before` (it missed a
    /// census and sent nothing: gone without a will reaching ctrld).
    pub(super) fn lose_silent(&self, before: f64) {
        let t = now();
        for n in self.lock().values_mut() {
            if n.status == NodeStatus::Up && n.last_seen < before {
                n.status = NodeStatus::Lost;
                n.since = t;
            }
        }
    }

    /// The capabilities `name` listed in its `map` reply.
    pub(super) fn mapped(&self, name: &str, reply: &Value) {
        let ids: Vec<String> = reply
            .as_array()
            .map(|caps| {
                caps.iter()
                    .filter_map(|c| c.get("id").and_then(Value::as_str))
                    .map(str::to_owned)
                    .take(500)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = self.lock().get_mut(name) {
            n.capabilities = ids;
        }
    }

    /// Every node, by name.
    pub(super) fn all(&self) -> Vec<NodeState> {
        self.lock().values().cloned().collect()
    }

    /// The capabilities of `name`, once its `map` is known.
    pub(super) fn capabilities_of(&self, name: &str) -> Option<Vec<String>> {
        self.lock()
            .get(name)
            .map(|n| n.capabilities.clone())
            .filter(|c| !c.is_empty())
    }

    /// Whether `name` is up.
    pub(super) fn is_up(&self, name: &str) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|n| n.status == NodeStatus::Up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(from: &str, fields: Value) -> Envelope {
        let mut e = Envelope::new(from, "*");
        e.message = fields["message"].as_str().map(str::to_owned);
        e.epoch = fields["epoch"].as_u64();
        for name in ["reason", "earlier_run"] {
            if let Some(v) = fields.get(name) {
                e.fields.insert(name.into(), v.clone());
            }
        }
        e
    }

    #[test]
    fn hello_bye_and_lost_move_a_node() {
        let p = Presence::default();
        assert_eq!(
            p.announced(&env("labd", json!({"message": "hello", "epoch": 5}))),
            Some(Heard::Unmapped)
        );
        assert!(p.is_up("labd"));
        // The will of an earlier run does not mark the new run lost.
        p.announced(&env(
            "labd",
            json!({"message": "bye", "reason": "lost", "epoch": 4}),
        ));
        assert!(p.is_up("labd"));
        p.announced(&env(
            "labd",
            json!({"message": "bye", "reason": "lost", "epoch": 5}),
        ));
        assert_eq!(p.all()[0].status, NodeStatus::Lost);
        // The next run closing the killed run's stream (its outbox's `bye`, which may
        // come before that run's hello) is no leaving: the run stays lost.
        assert_eq!(
            p.announced(&env(
                "labd",
                json!({"message": "bye", "epoch": 5, "earlier_run": true})
            )),
            None
        );
        assert_eq!(p.all()[0].status, NodeStatus::Lost);
        p.announced(&env("labd", json!({"message": "hello", "epoch": 6})));
        assert!(p.is_up("labd"));
        // A late heartbeat of the run before changes nothing.
        assert_eq!(
            p.announced(&env("labd", json!({"message": "heartbeat", "epoch": 5}))),
            None
        );
        p.announced(&env("labd", json!({"message": "bye"})));
        assert_eq!(p.all()[0].status, NodeStatus::Left);
        assert_eq!(p.all()[0].epoch, Some(6));
        // A node first heard by its heartbeat is asked for its capabilities.
        assert_eq!(
            p.announced(&env("datad", json!({"message": "heartbeat", "epoch": 1}))),
            Some(Heard::Unmapped)
        );
        p.mapped("datad", &json!([{"id": "ping"}]));
        assert_eq!(
            p.announced(&env("datad", json!({"message": "heartbeat", "epoch": 1}))),
            Some(Heard::Other)
        );
        // Other messages and nameless senders are not nodes.
        assert_eq!(p.announced(&env("x", json!({"message": "hi"}))), None);
        assert_eq!(p.announced(&env("*", json!({"message": "hello"}))), None);
        assert_eq!(p.all().len(), 2);
    }

    #[test]
    fn a_flood_of_names_is_bounded_and_gone_nodes_make_room() {
        let p = Presence::default();
        for i in 0..MOST_NODES + 10 {
            p.set(&format!("n{i}"), NodeStatus::Up, None);
        }
        assert_eq!(p.all().len(), MOST_NODES);
        assert_eq!(p.ignored.load(std::sync::atomic::Ordering::Relaxed), 10);
        // A node that left makes room for a new one; up nodes stay.
        p.set("n3", NodeStatus::Left, None);
        assert!(p.set("late", NodeStatus::Up, None));
        assert!(p.is_up("late") && p.is_up("n4"));
        assert!(!p.all().iter().any(|n| n.name == "n3"));
        // A node silent since a time is lost.
        p.lose_silent(now() + 1.0);
        assert!(!p.is_up("late"));
    }
}
