//! Gap detection per sender: a jump in `seq` is a loss, and so is a tail that `bye` or a
//! heartbeat announces but never arrived.

use std::collections::{BTreeMap, HashMap};

/// What is known of one sender's epoch.
#[derive(Debug, Default, Clone)]
struct Stream {
    /// The highest `seq` accounted for, received or counted missing.
    floor: Option<u64>,
    /// Readings counted missing, as ranges `start -> end` (inclusive). A late reading (sent
    /// again after a reconnect, or overtaken by newer ones) fills its hole.
    holes: BTreeMap<u64, u64>,
}

impl Stream {
    /// Counts `from..=to` missing; returns how many.
    fn open_hole(&mut self, from: u64, to: u64) -> u64 {
        if from > to {
            return 0;
        }
        self.holes.insert(from, to);
        (to - from).saturating_add(1)
    }

    /// Takes `seq` out of a hole; true if it was counted missing.
    fn fill(&mut self, seq: u64) -> bool {
        let Some((&start, &end)) = self.holes.range(..=seq).next_back() else {
            return false;
        };
        if seq > end {
            return false;
        }
        self.holes.remove(&start);
        if start < seq {
            self.holes.insert(start, seq - 1);
        }
        if seq < end {
            self.holes.insert(seq + 1, end);
        }
        true
    }
}

/// The state of each sender's stream, and the losses counted so far.
#[derive(Debug, Default)]
pub struct GapTracker {
    streams: HashMap<(String, u64), Stream>,
    missing: HashMap<String, u64>,
}

impl GapTracker {
    /// Takes up a stream whose readings up to `seq` are stored (by an earlier run).
    pub fn resume(&mut self, origin: &str, epoch: u64, seq: u64) {
        let st = self.streams.entry((origin.to_owned(), epoch)).or_default();
        st.floor = Some(st.floor.map_or(seq, |f| f.max(seq)));
    }

    /// Notes a stored reading; returns how many readings before it are newly missing.
    pub fn seen(&mut self, origin: &str, epoch: u64, seq: u64) -> u64 {
        let st = self.streams.entry((origin.to_owned(), epoch)).or_default();
        let missing = self.missing.entry(origin.to_owned()).or_default();
        match st.floor {
            Some(f) if seq <= f => {
                // Late: it fills a hole, or it is a redelivery.
                if st.fill(seq) {
                    *missing = missing.saturating_sub(1);
                }
                0
            }
            floor => {
                let from = floor.map_or(0, |f| f.saturating_add(1));
                let gap = if seq > from {
                    st.open_hole(from, seq - 1)
                } else {
                    0
                };
                st.floor = Some(seq);
                *missing = missing.saturating_add(gap);
                gap
            }
        }
    }

    /// Notes that the sender announced `last_sent` as its last `seq`; returns new losses
    /// (readings still on their way are counted until they arrive).
    pub fn announced(&mut self, origin: &str, epoch: u64, last_sent: u64) -> u64 {
        let st = self.streams.entry((origin.to_owned(), epoch)).or_default();
        let from = st.floor.map_or(0, |f| f.saturating_add(1));
        if st.floor.is_some_and(|f| last_sent <= f) {
            return 0;
        }
        let lost = st.open_hole(from, last_sent);
        st.floor = Some(last_sent);
        let missing = self.missing.entry(origin.to_owned()).or_default();
        *missing = missing.saturating_add(lost);
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
    fn readings_overtaken_by_newer_ones_fill_their_holes() {
        let mut g = GapTracker::default();
        for s in [0, 1, 5, 6] {
            g.seen("labd", 1, s);
        }
        assert_eq!(g.missing()["labd"], 3);
        // 2..=4 come late (republished after a reconnect), in any order.
        for s in [3, 2, 4] {
            assert_eq!(g.seen("labd", 1, s), 0);
        }
        assert_eq!(g.missing()["labd"], 0);
        // A second copy of a late one changes nothing.
        assert_eq!(g.seen("labd", 1, 3), 0);
        assert_eq!(g.missing()["labd"], 0);
    }

    #[test]
    fn a_resumed_stream_counts_only_what_follows_the_stored_readings() {
        let mut g = GapTracker::default();
        g.resume("labd", 1, 7841);
        assert_eq!(g.seen("labd", 1, 7842), 0);
        assert_eq!(g.seen("labd", 1, 7800), 0, "a redelivery");
        assert_eq!(g.seen("labd", 1, 7845), 2);
        // Without it, a fresh tracker counts from 0.
        assert_eq!(GapTracker::default().seen("labd", 1, 7842), 7842);
    }

    /// Absurd claims (a sender, or someone speaking in its name, announcing the largest
    /// `seq` there is) saturate the counts instead of wrapping them or panicking.
    #[test]
    fn counts_saturate_at_the_largest_seq() {
        let mut g = GapTracker::default();
        assert_eq!(g.announced("x", 1, u64::MAX), u64::MAX);
        assert_eq!(g.announced("x", 1, u64::MAX), 0);
        assert_eq!(g.seen("x", 1, u64::MAX), 0);
        assert_eq!(g.announced("x", 2, 5), 6);
        assert_eq!(g.missing()["x"], u64::MAX);
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
