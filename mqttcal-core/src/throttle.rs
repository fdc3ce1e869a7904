//! Rate-limited warnings: a flood of bad messages writes one line per interval, with a
//! count, instead of one line per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts occurrences per kind and says when a warning is due: the first occurrence at
/// once, then at most one per interval, carrying how many happened since the last one.
///
/// The kinds are `&'static str`, so the map stays as small as the code's list of kinds
/// whatever the senders do.
///
/// ```
/// use std::time::Duration;
/// use mqttcal_core::Throttle;
///
/// let t = Throttle::new(Duration::from_secs(10));
/// assert_eq!(t.hit("malformed"), Some(1)); // the first one is written
/// assert_eq!(t.hit("malformed"), None); // the next ones are counted
/// assert_eq!(t.hit("malformed"), None);
/// assert_eq!(t.hit("shed"), Some(1)); // kinds are independent
/// assert_eq!(t.total("malformed"), 3);
/// ```
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    kinds: Mutex<HashMap<&'static str, Kind>>,
}

#[derive(Debug)]
struct Kind {
    last: Instant,
    since: u64,
    total: u64,
}

impl Throttle {
    /// At most one warning per kind every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `kind`; `Some(n)` when a warning is due now, `n` being the
    /// occurrences since the last warning of that kind, this one included.
    pub fn hit(&self, kind: &'static str) -> Option<u64> {
        self.add(kind, 1)
    }

    /// Counts `n` occurrences of `kind` at once (e.g. messages a transport shed); like
    /// [`Throttle::hit`] otherwise.
    pub fn add(&self, kind: &'static str, n: u64) -> Option<u64> {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        match kinds.get_mut(kind) {
            None => {
                kinds.insert(
                    kind,
                    Kind {
                        last: now,
                        since: 0,
                        total: n,
                    },
                );
                Some(n)
            }
            Some(k) => {
                k.total = k.total.saturating_add(n);
                k.since = k.since.saturating_add(n);
                if now.duration_since(k.last) >= self.every {
                    k.last = now;
                    Some(std::mem::take(&mut k.since))
                } else {
                    None
                }
            }
        }
    }

    /// Every occurrence of `kind` counted so far.
    pub fn total(&self, kind: &str) -> u64 {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds.get(kind).map_or(0, |k| k.total)
    }

    /// The totals of every kind seen, for a status reply.
    pub fn totals(&self) -> std::collections::BTreeMap<String, u64> {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.total))
            .collect()
    }
}

impl Default for Throttle {
    /// One warning per kind every 10 seconds.
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_warning_carries_the_count_since_the_last() {
        let t = Throttle::new(Duration::from_millis(30));
        assert_eq!(t.hit("k"), Some(1));
        for _ in 0..5 {
            assert_eq!(t.hit("k"), None);
        }
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(t.hit("k"), Some(6));
        assert_eq!(t.total("k"), 7);
        assert_eq!(t.totals().get("k"), Some(&7));
    }
}
