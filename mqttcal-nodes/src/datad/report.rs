//! The gap report: for each sender's stream, from the stored readings and what the sender
//! announced (both kept in the database, so the report survives restarts of datad), how many
//! readings are missing and whether the tail is known.

use std::collections::HashMap;

use mqttcal_store::StreamSummary;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `gaps`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GapQuery {
    /// Streams active in the last this many days (default 7, at most 3660).
    #[serde(default)]
    pub days: Option<f64>,
    /// Only this sender's streams.
    #[serde(default)]
    pub origin: Option<String>,
    /// List at most this many streams, those with the most missing first (default 1000, at
    /// most 10000); the totals count them all.
    #[serde(default)]
    pub limit: Option<u32>,
}

impl GapQuery {
    /// The window in days when none is given.
    pub(super) const DEFAULT_DAYS: f64 = 7.0;

    /// The window in days, checked; the error names the field.
    pub(super) fn days(&self) -> Result<f64, (&'static str, String)> {
        match self.days {
            None => Ok(Self::DEFAULT_DAYS),
            Some(d) if d.is_finite() && d > 0.0 && d <= 3660.0 => Ok(d),
            Some(_) => Err(("days", "`days` must be more than 0 and at most 3660".into())),
        }
    }

    /// How many streams to list, checked.
    pub(super) fn limit(&self) -> Result<usize, (&'static str, String)> {
        match self.limit {
            None => Ok(1000),
            Some(n @ 1..=10_000) => Ok(n as usize),
            Some(_) => Err(("limit", "`limit` must be from 1 to 10000".into())),
        }
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// The sender said `bye` with its last `seq`: every reading up to it is stored or
    /// counted missing.
    Closed,
    /// The sender's latest run, without `bye` yet: it may still be sending.
    Open,
    /// A later run of the sender followed without `bye` (it was killed, or its `bye` was
    /// lost): readings it numbered after `last` are unknown.
    Cut,
}

/// One sender's epoch in the gap report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamReport {
    /// The sending node.
    pub origin: String,
    /// Its epoch.
    pub epoch: u64,
    /// Readings stored (distinct `seq`s).
    pub stored: u64,
    /// The highest `seq` known to have been sent: stored, or announced by `bye`, a
    /// heartbeat or datad's census.
    pub last: u64,
    /// Readings up to `last` that are not stored.
    pub missing: u64,
    /// Whether the tail is known.
    pub state: StreamState,
    /// For a cut stream: "unknown after seq N of epoch E".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// What `gaps` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapReport {
    /// Readings missing, all streams.
    pub missing: u64,
    /// Streams whose tail is unknown.
    pub unknown_tails: u64,
    /// Streams in the window (all counted in the totals).
    pub streams_total: u64,
    /// The streams listed (at most `limit`): those with the most missing, then by sender
    /// and epoch.
    pub streams: Vec<StreamReport>,
}

/// The report over `summaries` listing at most `limit` streams. A sender's latest run (its
/// stream active last, by the newest reading or announcement) is open unless closed; its
/// earlier runs without `bye` are cut. Activity, not the epoch's value, tells the latest
/// run, so a made-up epoch in the future, or a clock stepped back, cuts no live stream
/// for long.
pub fn gap_report(summaries: &[StreamSummary], limit: usize) -> GapReport {
    let mut latest: HashMap<&str, (f64, u64)> = HashMap::new();
    for s in summaries {
        let entry = latest.entry(&s.origin).or_insert((s.last_seen, s.epoch));
        if (s.last_seen, s.epoch) > *entry {
            *entry = (s.last_seen, s.epoch);
        }
    }
    let mut report = GapReport::default();
    for s in summaries {
        let last = s.head.max(s.announced);
        if last.is_none() && s.stored == 0 {
            continue;
        }
        let last = last.unwrap_or(0);
        let known = last.saturating_add(1);
        let missing = known.saturating_sub(s.stored);
        let state = if s.closed {
            StreamState::Closed
        } else if latest.get(s.origin.as_str()).map(|l| l.1) == Some(s.epoch) {
            StreamState::Open
        } else {
            StreamState::Cut
        };
        let unknown = (state == StreamState::Cut)
            .then(|| format!("unknown after seq {last} of epoch {}", s.epoch));
        report.missing = report.missing.saturating_add(missing);
        report.unknown_tails += u64::from(unknown.is_some());
        report.streams.push(StreamReport {
            origin: s.origin.clone(),
            epoch: s.epoch,
            stored: s.stored,
            last,
            missing,
            state,
            unknown,
        });
    }
    report.streams_total = report.streams.len() as u64;
    if report.streams.len() > limit {
        report.streams.sort_by(|a, b| {
            b.missing
                .cmp(&a.missing)
                .then_with(|| (&a.origin, a.epoch).cmp(&(&b.origin, b.epoch)))
        });
        report.streams.truncate(limit);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        origin: &str,
        epoch: u64,
        stored: u64,
        head: Option<u64>,
        announced: Option<u64>,
        closed: bool,
    ) -> StreamSummary {
        StreamSummary {
            origin: origin.into(),
            epoch,
            stored,
            head,
            announced,
            closed,
            last_seen: epoch as f64,
        }
    }

    #[test]
    fn closed_open_and_cut_streams() {
        let r = gap_report(
            &[
                // bye said 9; 0..=9 less 7 stored: 3 missing.
                summary("labd", 1, 7, Some(8), Some(9), true),
                // Killed: a newer epoch follows, no bye. 0..=5 known, 5 stored.
                summary("labd", 2, 5, Some(5), Some(3), false),
                // The running one: a heartbeat said 20, 11 stored.
                summary("labd", 3, 11, Some(12), Some(20), false),
                // Another sender, one epoch, nothing stored, announced 0: one missing.
                summary("other", 9, 0, None, Some(0), false),
            ],
            1000,
        );
        let states: Vec<_> = r.streams.iter().map(|s| (s.state, s.missing)).collect();
        assert_eq!(
            states,
            [
                (StreamState::Closed, 3),
                (StreamState::Cut, 1),
                (StreamState::Open, 10),
                (StreamState::Open, 1),
            ]
        );
        assert_eq!(r.missing, 15);
        assert_eq!(r.unknown_tails, 1);
        assert_eq!(
            r.streams[1].unknown.as_deref(),
            Some("unknown after seq 5 of epoch 2")
        );
        assert!(r.streams[0].unknown.is_none());
        assert_eq!(r.streams_total, 4);
        // Listing fewer keeps the totals and shows the worst first.
        let top = gap_report(
            &[
                summary("labd", 1, 7, Some(8), Some(9), true),
                summary("labd", 3, 11, Some(12), Some(20), false),
            ],
            1,
        );
        assert_eq!((top.missing, top.streams_total), (13, 2));
        assert_eq!(top.streams.len(), 1);
        assert_eq!(top.streams[0].missing, 10);
    }

    /// The latest run is the one active last, whatever its epoch says: a made-up epoch far
    /// in the future cuts the live stream only until the live one is heard from again.
    #[test]
    fn the_latest_run_is_told_by_activity() {
        let mut live = summary("labd", 5, 10, Some(9), None, false);
        let mut fake = summary("labd", 9_000_000_000_000_000_000, 0, None, Some(0), false);
        live.last_seen = 100.0;
        fake.last_seen = 90.0;
        let r = gap_report(&[live.clone(), fake.clone()], 10);
        assert_eq!(r.streams[0].state, StreamState::Open);
        assert_eq!(r.streams[1].state, StreamState::Cut);
        // A new run that has sent nothing yet (its hello) cuts the one before at once.
        let hello = StreamSummary {
            last_seen: 101.0,
            ..summary("labd", 6, 0, None, None, false)
        };
        let r = gap_report(&[live, hello], 10);
        assert_eq!(r.streams.len(), 1, "a run that sent nothing is not listed");
        assert_eq!(r.streams[0].state, StreamState::Cut);
        assert_eq!(
            r.streams[0].unknown.as_deref(),
            Some("unknown after seq 9 of epoch 5")
        );
        assert_eq!(r.missing, 0);
    }

    /// Tens of thousands of streams (a flood of made-up senders) cost linear time.
    #[test]
    fn a_large_report_is_linear() {
        let many: Vec<_> = (0..50_000u64)
            .map(|i| {
                summary(
                    &format!("fake{}", i % 5000),
                    1000 + i,
                    0,
                    None,
                    Some(i),
                    false,
                )
            })
            .collect();
        let t = std::time::Instant::now();
        let r = gap_report(&many, 1000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(r.streams_total, 50_000);
        assert_eq!(r.streams.len(), 1000);
        assert_eq!(r.unknown_tails, 45_000);
    }

    #[test]
    fn absurd_claims_saturate() {
        let r = gap_report(&[summary("x", 1, 3, Some(2), Some(u64::MAX), false)], 10);
        assert_eq!(r.streams[0].missing, u64::MAX - 3);
        assert_eq!(r.missing, u64::MAX - 3);
    }

    #[test]
    fn the_window_is_checked() {
        assert_eq!(GapQuery::default().days(), Ok(7.0));
        for bad in [0.0, -1.0, f64::NAN, 1e9] {
            let q = GapQuery {
                days: Some(bad),
                ..Default::default()
            };
            assert_eq!(q.days().unwrap_err().0, "days", "{bad}");
        }
        for bad in [0, 10_001] {
            let q = GapQuery {
                limit: Some(bad),
                ..Default::default()
            };
            assert_eq!(q.limit().unwrap_err().0, "limit");
        }
    }
}
