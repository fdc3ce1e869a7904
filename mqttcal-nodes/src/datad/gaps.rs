//! Gap detection per sender: a jump in `seq` is a loss, and so is a tail that `bye` or a
//! heartbeat announces but never arrived.

use std::collections::HashMap;

/// What is known of one sender's epoch.
#[derive(Debug, Default, Clone, Copy)]
struct Stream {
    /// Highest `seq` received.
    last: Option<u64>,
    /// Highest `seq` the sender announced as sent.
    announced: Option<u64>,
}

impl Stream {
    /// The highest `seq` accounted for, received or counted missing.
    fn floor(&self) -> Option<u64> {
        match (self.last, self.announced) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The state of each sender's stream, and the losses counted so far.
#[derive(Debug, Default)]
pub struct GapTracker {
    streams: HashMap<(String, u64), Stream>,
    missing: HashMap<String, u64>,
}

impl GapTracker {
    /// Notes a stored reading; returns how many readings before it went missing.
    pub fn seen(&mut self, origin: &str, epoch: u64, seq: u64) -> u64 {
        let st = self.streams.entry((origin.to_owned(), epoch)).or_default();
        if st.last.is_some_and(|l| seq <= l) {
            return 0; // a redelivery
        }
        let floor = st.floor();
        st.last = Some(seq);
        let missing = self.missing.entry(origin.to_owned()).or_default();
        if floor.is_some_and(|f| seq <= f) {
            // Counted missing from an announcement, and here it is after all.
            *missing = missing.saturating_sub(1);
            return 0;
        }
        let gap = floor.map_or(seq, |f| seq - f - 1);
        *missing += gap;
        gap
    }

    /// Notes that the sender announced `last_sent` as its last `seq`; returns new losses.
    pub fn announced(&mut self, origin: &str, epoch: u64, last_sent: u64) -> u64 {
        let st = self.streams.entry((origin.to_owned(), epoch)).or_default();
        let lost = match st.floor() {
            Some(f) if last_sent <= f => return 0,
            Some(f) => last_sent - f,
            None => last_sent + 1,
        };
        st.announced = Some(last_sent);
        *self.missing.entry(origin.to_owned()).or_default() += lost;
        lost
    }

    /// Readings missing per sender.
    pub fn missing(&self) -> &HashMap<String, u64> {
        &self.missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_and_tails_are_counted_once() {
        let mut g = GapTracker::default();
        for s in [0, 1, 2, 5, 6] {
            g.seen("labd", 1, s);
        }
        assert_eq!(g.missing()["labd"], 2);
        // A redelivered reading is no gap.
        assert_eq!(g.seen("labd", 1, 6), 0);
        // bye says 9 was the last: 7, 8, 9 never came.
        assert_eq!(g.announced("labd", 1, 9), 3);
        assert_eq!(g.announced("labd", 1, 9), 0);
        assert_eq!(g.missing()["labd"], 5);
        // A new epoch starts from 0 again.
        assert_eq!(g.seen("labd", 2, 0), 0);
        assert_eq!(g.missing()["labd"], 5);
    }

    #[test]
    fn readings_in_flight_at_a_heartbeat_are_not_lost() {
        let mut g = GapTracker::default();
        g.seen("labd", 1, 0);
        g.seen("labd", 1, 1);
        // The heartbeat says 4 was sent; 2, 3, 4 are still on their way.
        assert_eq!(g.announced("labd", 1, 4), 3);
        for s in [2, 3, 4] {
            assert_eq!(g.seen("labd", 1, s), 0);
        }
        assert_eq!(g.missing()["labd"], 0);
        // Then 5 and 6 are lost.
        assert_eq!(g.seen("labd", 1, 7), 2);
        assert_eq!(g.missing()["labd"], 2);
    }
}
