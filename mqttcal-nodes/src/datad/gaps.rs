//! Gap detection per sender: a jump in `seq` is a loss, and so is a tail that `bye` or a
//! heartbeat announces but never arrived.

use std::collections::{BTreeMap, HashMap};

/// Streams (sender and epoch) tracked at most; past it the least recently active tenth is
/// forgotten (its next reading starts it afresh). Senders choose their names and epochs,
/// so without a bound a flood of made-up ones would grow the tracker without end.
pub(super) const MAX_STREAMS: usize = 10_000;
/// Holes tracked per stream at most; past it the oldest is forgotten: its readings stay
/// counted missing, and a late one no longer fills it.
pub(super) const MAX_HOLES: usize = 10_000;
/// Senders with their own missing count at most; the counts of any more are added under
/// [`OTHER_SENDERS`].
pub(super) const MAX_SENDERS: usize = 10_000;
/// The key under which the missing counts of senders past [`MAX_SENDERS`] add up.
pub(super) const OTHER_SENDERS: &str = "(other senders)";

/// What is known of one sender's epoch.
#[derive(Debug, Default, Clone)]
struct Stream {
    /// The highest `seq` accounted for, received or counted missing.
    floor: Option<u64>,
    /// Readings counted missing, as ranges `start -> end` (inclusive). A late reading (sent
    /// again after a reconnect, or overtaken by newer ones) fills its hole.
    holes: BTreeMap<u64, u64>,
    /// When the stream was last touched, in the tracker's own count of events.
    touched: u64,
}

impl Stream {
    /// Counts `from..=to` missing; returns how many.
    fn open_hole(&mut self, from: u64, to: u64) -> u64 {
        if from > to {
            return 0;
        }
        self.holes.insert(from, to);
        if self.holes.len() > MAX_HOLES {
            self.holes.pop_first();
        }
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
    clock: u64,
}

impl GapTracker {
    /// The stream of `origin`'s `epoch`, made room for if it is new.
    fn stream(&mut self, origin: &str, epoch: u64) -> &mut Stream {
        self.clock += 1;
        let key = (origin.to_owned(), epoch);
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // The least recently active tenth goes at once, so a flood of new streams
            // costs a sort per thousand of them, not a scan each.
            let mut by_age: Vec<u64> = self.streams.values().map(|st| st.touched).collect();
            let cut = MAX_STREAMS / 10;
            by_age.select_nth_unstable(cut);
            let limit = by_age[cut];
            self.streams.retain(|_, st| st.touched > limit);
        }
        let st = self.streams.entry(key).or_default();
        st.touched = self.clock;
        st
    }

    /// The missing count of `origin`, or of every sender past the bound.
    fn missing_of(&mut self, origin: &str) -> &mut u64 {
        let key = if self.missing.contains_key(origin) || self.missing.len() < MAX_SENDERS - 1 {
            origin
        } else {
            OTHER_SENDERS
        };
        self.missing.entry(key.to_owned()).or_default()
    }

    /// Whether the stream of `origin`'s `epoch` is tracked (it may have been forgotten to
    /// make room, or never seen).
    pub fn knows(&self, origin: &str, epoch: u64) -> bool {
        self.streams.contains_key(&(origin.to_owned(), epoch))
    }

    /// Takes up a stream whose readings up to `seq` are stored (by an earlier run).
    pub fn resume(&mut self, origin: &str, epoch: u64, seq: u64) {
        let st = self.stream(origin, epoch);
        st.floor = Some(st.floor.map_or(seq, |f| f.max(seq)));
    }

    /// Notes a stored reading; returns how many readings before it are newly missing.
    pub fn seen(&mut self, origin: &str, epoch: u64, seq: u64) -> u64 {
        let st = self.stream(origin, epoch);
        let (filled, gap) = match st.floor {
            // Late: it fills a hole, or it is a redelivery.
            Some(f) if seq <= f => (st.fill(seq), 0),
            floor => {
                let from = floor.map_or(0, |f| f.saturating_add(1));
                let gap = if seq > from {
                    st.open_hole(from, seq - 1)
                } else {
                    0
                };
                st.floor = Some(seq);
                (false, gap)
            }
        };
        let missing = self.missing_of(origin);
        if filled {
            *missing = missing.saturating_sub(1);
        }
        *missing = missing.saturating_add(gap);
        gap
    }

    /// Notes that the sender announced `last_sent` as its last `seq`; returns new losses
    /// (readings still on their way are counted until they arrive).
    pub fn announced(&mut self, origin: &str, epoch: u64, last_sent: u64) -> u64 {
        let st = self.stream(origin, epoch);
        let from = st.floor.map_or(0, |f| f.saturating_add(1));
        if st.floor.is_some_and(|f| last_sent <= f) {
            return 0;
        }
        let lost = st.open_hole(from, last_sent);
        st.floor = Some(last_sent);
        let missing = self.missing_of(origin);
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
    fn made_up_senders_epochs_and_holes_cannot_grow_the_tracker_without_end() {
        let mut g = GapTracker::default();
        for i in 0..(MAX_STREAMS as u64 + 100) {
            g.seen(&format!("s{i}"), i, 3);
        }
        assert!(g.streams.len() <= MAX_STREAMS);
        assert!(g.missing.len() <= MAX_SENDERS);
        // Every loss is still counted, the surplus senders under one key.
        let total: u64 = g.missing().values().sum();
        assert_eq!(total, 3 * (MAX_STREAMS as u64 + 100));
        assert!(g.missing()[OTHER_SENDERS] >= 3 * 100);
        // Every other seq: a hole each, bounded.
        for s in 0..(2 * MAX_HOLES as u64 + 10) {
            g.seen("holes", 1, 2 * s);
        }
        let st = &g.streams[&("holes".to_owned(), 1)];
        assert!(st.holes.len() <= MAX_HOLES);
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
