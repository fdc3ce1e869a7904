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
//! report-style program now runs under that name) or its `bye` forgets it; a `bye` for an
//! earlier run than the `hello` heard (told by its `epoch`: a restarted node closing the
//! run it was killed in) does not. A request that
//! said `direct` and met silence makes the peer *quiet* for [`QUIET`]: requests to it go
//! to the shared topic without `direct`, and what it says is not taken up, so a peer
//! whose own topic does not get through (an ACL, a bridge, a report-style program echoing
//! our fields) costs one timeout per period, not every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::topics::is_valid_name;

/// Peers remembered at most, in each table; past it an arbitrary one is forgotten (it is
/// learnt again from its next message). Names are at most 256 bytes.
const MAX_PEERS: usize = 10_000;

/// How long a peer that met a request with silence is asked the report's way.
pub(crate) const QUIET: Duration = Duration::from_secs(600);

/// The names of the peers that read their own topics, and of those that lately did not
/// answer there.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    /// The peers that read their own topics, with the epoch of the `hello` they said so in.
    direct: HashMap<String, Option<u64>>,
    quiet: HashMap<String, Instant>,
}

impl Tables {
    fn is_quiet(&mut self, name: &str) -> bool {
        match self.quiet.get(name) {
            Some(since) if since.elapsed() < QUIET => true,
            Some(_) => {
                self.quiet.remove(name);
                false
            }
            None => false,
        }
    }
}

/// How a request goes to a peer: see [`Peers::asking`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asking {
    /// On the peer's own topic.
    pub(crate) own_topic: bool,
    /// Saying `direct` (not while the peer is quiet).
    pub(crate) say_direct: bool,
}

impl Peers {
    /// Whether `name` reads what is addressed to it alone.
    #[cfg(test)]
    fn knows(&self, name: &str) -> bool {
        self.lock().direct.contains_key(name)
    }

    /// Whether `name` met a request of ours with silence within [`QUIET`].
    pub(crate) fn is_quiet(&self, name: &str) -> bool {
        self.lock().is_quiet(name)
    }

    /// How to ask `name`, under one lock: on its own topic, and whether to say `direct`.
    pub(crate) fn asking(&self, name: &str) -> Asking {
        let mut t = self.lock();
        let quiet = t.is_quiet(name);
        Asking {
            own_topic: !quiet && t.direct.contains_key(name),
            say_direct: !quiet,
        }
    }

    /// Takes note of what a message from `name` says: `direct` or not; `hello` is the
    /// epoch of a `hello`.
    pub(crate) fn note(&self, name: &str, direct: bool, hello: Option<u64>) {
        let mut t = self.lock();
        if !direct {
            t.direct.remove(name);
            return;
        }
        if let Some(epoch) = t.direct.get_mut(name) {
            if hello.is_some() {
                *epoch = hello;
            }
            return;
        }
        if !is_valid_name(name) {
            return;
        }
        if t.quiet
            .get(name)
            .is_some_and(|since| since.elapsed() < QUIET)
        {
            return;
        }
        bounded_insert(&mut t.direct, name.to_owned(), hello);
    }

    /// Forgets `name`: it said `bye` (for its run of `epoch`); a `bye` for a run older than
    /// the one whose `hello` was heard is not its leaving.
    pub(crate) fn forget(&self, name: &str, epoch: Option<u64>) {
        let mut t = self.lock();
        if let (Some(Some(current)), Some(epoch)) = (t.direct.get(name), epoch) {
            if epoch < *current {
                return;
            }
        }
        t.direct.remove(name);
    }

    /// `name` met a request that said `direct` with silence: ask it the report's way for a
    /// while.
    pub(crate) fn silent(&self, name: &str) {
        let mut t = self.lock();
        t.direct.remove(name);
        if !t.quiet.contains_key(name) && t.quiet.len() >= MAX_PEERS {
            let now = Instant::now();
            t.quiet
                .retain(|_, since| now.duration_since(*since) < QUIET);
            if t.quiet.len() >= MAX_PEERS {
                if let Some(any) = t.quiet.keys().next().cloned() {
                    t.quiet.remove(&any);
                }
            }
        }
        t.quiet.insert(name.to_owned(), Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Inserts `name`, forgetting an arbitrary other one when the table is full.
fn bounded_insert(table: &mut HashMap<String, Option<u64>>, name: String, epoch: Option<u64>) {
    if table.len() >= MAX_PEERS {
        if let Some(any) = table.keys().next().cloned() {
            table.remove(&any);
        }
    }
    table.insert(name, epoch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_known_from_what_it_last_said() {
        let peers = Peers::default();
        peers.note("labd", true, None);
        assert!(peers.knows("labd"));
        peers.note("labd", false, None);
        assert!(!peers.knows("labd"), "a report-style program took the name");
        peers.note("a/b", true, None);
        assert!(!peers.knows("a/b"), "not a topic level");
        peers.note("x\u{1}", true, None);
        assert!(
            !peers.knows("x\u{1}"),
            "a broker refuses control characters"
        );
        peers.note(&"n".repeat(300), true, None);
        assert!(!peers.knows(&"n".repeat(300)), "too long");
        peers.note("datad", true, Some(20));
        peers.forget("datad", Some(10));
        assert!(
            peers.knows("datad"),
            "a restarted node closing its earlier run has not left"
        );
        peers.forget("datad", Some(20));
        assert!(!peers.knows("datad"));
        peers.note("ctrld", true, None);
        peers.forget("ctrld", Some(1));
        assert!(
            !peers.knows("ctrld"),
            "no hello heard: any bye is its leaving"
        );
    }

    #[test]
    fn a_peer_that_met_a_request_with_silence_is_asked_the_reports_way_for_a_while() {
        let peers = Peers::default();
        peers.note("calc", true, None);
        peers.silent("calc");
        assert!(!peers.knows("calc") && peers.is_quiet("calc"));
        peers.note("calc", true, None);
        assert!(
            !peers.knows("calc"),
            "what it says waits for the quiet to end"
        );
    }

    #[test]
    fn the_tables_stay_bounded() {
        let peers = Peers::default();
        for i in 0..MAX_PEERS + 10 {
            peers.note(&format!("n{i}"), true, None);
            peers.silent(&format!("q{i}"));
        }
        assert_eq!(peers.lock().direct.len(), MAX_PEERS);
        assert_eq!(peers.lock().quiet.len(), MAX_PEERS);
        assert!(
            peers.knows(&format!("n{}", MAX_PEERS + 9)),
            "the newest is kept"
        );
    }
}
