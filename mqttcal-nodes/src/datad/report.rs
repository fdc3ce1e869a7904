//! The gap report: for each sender's stream, from the stored readings and what the sender
//! announced (both kept in the database, so the report survives restarts of datad), how many
//! readings are missing and whether the tail is known.

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
}

impl GapQuery {
    /// The window in days, checked.
    pub(super) fn days(&self) -> Result<f64, String> {
        match self.days {
            None => Ok(7.0),
            Some(d) if d.is_finite() && d > 0.0 && d <= 3660.0 => Ok(d),
            Some(d) => Err(format!(
                "`days` must be more than 0 and at most 3660, not {d}"
            )),
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
    /// The sender's newest epoch, without `bye` yet: it may still be sending.
    Open,
    /// A newer epoch of the sender followed without `bye` (it was killed, or its `bye` was
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
    /// Each stream, by sender and epoch.
    pub streams: Vec<StreamReport>,
}

/// The report over `summaries`, each sender's newest epoch counted open unless closed.
pub fn gap_report(summaries: &[StreamSummary]) -> GapReport {
    let newest = |origin: &str| {
        summaries
            .iter()
            .filter(|s| s.origin == origin)
            .map(|s| s.epoch)
            .max()
    };
    let mut report = GapReport::default();
    for s in summaries {
        let last = s.head.max(s.announced).unwrap_or(0);
        let known = if s.head.is_none() && s.announced.is_none() {
            0
        } else {
            last.saturating_add(1)
        };
        let missing = known.saturating_sub(s.stored);
        let state = if s.closed {
            StreamState::Closed
        } else if newest(&s.origin) == Some(s.epoch) {
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
            last_seen: 0.0,
        }
    }

    #[test]
    fn closed_open_and_cut_streams() {
        let r = gap_report(&[
            // bye said 9; 0..=9 less 7 stored: 3 missing.
            summary("labd", 1, 7, Some(8), Some(9), true),
            // Killed: a newer epoch follows, no bye. 0..=5 known, 5 stored.
            summary("labd", 2, 5, Some(5), Some(3), false),
            // The running one: a heartbeat said 20, 11 stored.
            summary("labd", 3, 11, Some(12), Some(20), false),
            // Another sender, one epoch, nothing stored, announced 0: one missing.
            summary("other", 9, 0, None, Some(0), false),
        ]);
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
    }

    #[test]
    fn absurd_claims_saturate() {
        let r = gap_report(&[summary("x", 1, 3, Some(2), Some(u64::MAX), false)]);
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
            assert!(q.days().unwrap_err().contains("`days`"), "{bad}");
        }
    }
}
