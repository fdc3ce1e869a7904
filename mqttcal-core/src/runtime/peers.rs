//! The peers known to read what is addressed to them alone (shared layout).
//!
//! In the report's shared layout every node reads every request on `request` and every
//! client every reply on `reply`: with a thousand nodes, one call wakes a thousand
//! processes. mqttcal peers also read `request/<me>/+` and `reply/<me>/+`, and say so with
//! `direct: true` in the requests, replies and `hello` they send. A node sends its
//! requests and replies to a peer that said so on the peer's own topic, and to anyone else
//! (a report-style peer) on the shared topics, as before.
//!
//! What a peer says is taken as it comes: a message from it without `direct` (a
//! report-style program now runs under that name) or its `bye` forgets it, and so does a
//! request sent to its own topic that met silence, so the next goes to the shared topic.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::topics::is_valid_name;

/// Peers remembered at most; past it an arbitrary one is forgotten (it is learnt again
/// from its next message).
const MAX_PEERS: usize = 10_000;

/// The names of the peers that read their own topics.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    names: Mutex<HashSet<String>>,
}

impl Peers {
    /// Whether `name` reads what is addressed to it alone.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.lock().contains(name)
    }

    /// Takes note of what a message from `name` says: `direct` or not.
    pub(crate) fn note(&self, name: &str, direct: bool) {
        if direct && !is_valid_name(name) {
            return;
        }
        let mut names = self.lock();
        if !direct {
            names.remove(name);
        } else if !names.contains(name) {
            if names.len() >= MAX_PEERS {
                if let Some(any) = names.iter().next().cloned() {
                    names.remove(&any);
                }
            }
            names.insert(name.to_owned());
        }
    }

    /// Forgets `name` (it left, or did not answer on its own topic).
    pub(crate) fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_known_from_what_it_last_said() {
        let peers = Peers::default();
        peers.note("labd", true);
        assert!(peers.knows("labd"));
        peers.note("labd", false);
        assert!(!peers.knows("labd"), "a report-style program took the name");
        peers.note("a/b", true);
        assert!(!peers.knows("a/b"), "not a topic level");
        peers.note("datad", true);
        peers.forget("datad");
        assert!(!peers.knows("datad"));
    }

    #[test]
    fn the_set_stays_bounded() {
        let peers = Peers::default();
        for i in 0..MAX_PEERS + 10 {
            peers.note(&format!("n{i}"), true);
        }
        assert_eq!(peers.lock().len(), MAX_PEERS);
        assert!(
            peers.knows(&format!("n{}", MAX_PEERS + 9)),
            "the newest is kept"
        );
    }
}
