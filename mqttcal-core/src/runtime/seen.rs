//! Request ids seen lately, to drop a request delivered twice, bounded whatever the senders
//! do.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a request id is remembered.
const WINDOW: Duration = Duration::from_secs(60);
/// At most this many ids are remembered; past it the oldest are forgotten first. A
/// duplicate is a QoS 1 redelivery that arrives within seconds, so a flood of fresh ids
/// costs memory up to this bound and no more.
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct Seen {
    order: VecDeque<(Instant, String)>,
    keys: HashSet<String>,
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
        let key = format!("{from}\u{0}{id}");
        if self.keys.contains(&key) {
            return true;
        }
        self.keys.insert(key.clone());
        self.order.push_back((now, key));
        false
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
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
        for i in 0..(CAPACITY + 500) {
            s.check("flood", &i.to_string());
        }
        assert!(s.len() <= CAPACITY);
        assert!(!s.check("a", "1"), "the oldest ids are forgotten first");
    }
}
