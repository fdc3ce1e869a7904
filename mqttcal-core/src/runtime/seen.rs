//! Request ids seen lately, to drop a request delivered twice, bounded whatever the senders
//! do.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// How long a request id is remembered.
const WINDOW: Duration = Duration::from_secs(60);
/// At most this many ids are remembered; past it the oldest are forgotten first. A
/// duplicate is a QoS 1 redelivery that arrives within seconds, so a flood of fresh ids
/// costs memory up to this bound and no more.
const CAPACITY: usize = 10_000;

/// Each `(sender, id)` is kept as a 64-bit hash keyed at random per node, so a sender
/// cannot choose ids that collide (a collision would drop a request as a repeat: with
/// 10,000 ids remembered, one chance in 10^15 per request). The tables are sized once for
/// twice the bound, so replacing old ids with new ones never grows them.
#[derive(Debug)]
pub(crate) struct Seen {
    hasher: RandomState,
    order: VecDeque<(Instant, u64)>,
    keys: HashSet<u64>,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            order: VecDeque::with_capacity(CAPACITY),
            keys: HashSet::with_capacity(2 * CAPACITY),
        }
    }
}

impl Seen {
    /// Remembers `(from, id)`; `true` when it was seen within the window.
    pub(crate) fn check(&mut self, from: &str, id: &str) -> bool {
        let now = Instant::now();
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) < WINDOW && self.order.len() < CAPACITY {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.keys.remove(&k);
            }
        }
        let key = self.hasher.hash_one((from, id));
        if !self.keys.insert(key) {
            return true;
        }
        self.order.push_back((now, key));
        false
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    #[cfg(test)]
    fn allocated(&self) -> (usize, usize) {
        (self.keys.capacity(), self.order.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_seen_and_the_memory_is_bounded() {
        let mut s = Seen::default();
        assert!(!s.check("a", "1"));
        assert!(s.check("a", "1"));
        assert!(!s.check("b", "1"), "the sender is part of the key");
        assert!(!s.check("a\u{0}", "1"), "the parts do not run together");
        let before = s.allocated();
        for round in 0..3 {
            for i in 0..(CAPACITY + 500) {
                assert!(!s.check("flood", &format!("{round}-{i}")));
            }
        }
        assert!(s.len() <= CAPACITY);
        // (The set's reported capacity dips while removed slots await reuse; it never grows.)
        let after = s.allocated();
        assert!(
            after.0 <= before.0 && after.1 == before.1,
            "replacing ids never grows the tables: {before:?} then {after:?}"
        );
        assert!(!s.check("a", "1"), "the oldest ids are forgotten first");
    }
}
