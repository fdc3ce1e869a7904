//! Progress of a long call: simple messages on `progress`, sent to the caller.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress messages of one call are sent at most this often, unless the step count
/// reaches another hundredth of the whole or the last step.
const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// What a handler's [`Context::progress`](crate::Context::progress) needs to know of
/// the request it answers.
#[derive(Debug)]
pub(crate) struct CallProgress {
    pub(crate) requestid: String,
    started: Instant,
    /// When the last message went out and the hundredths of the whole it reported.
    last: Mutex<Option<(Instant, u64)>>,
}

impl CallProgress {
    pub(crate) fn new(requestid: String) -> Self {
        Self {
            requestid,
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// Seconds since the call started, and whether step `i` of `n` is worth a message:
    /// the first, the last, a new hundredth of the whole, or 250 ms after the last one.
    pub(crate) fn due(&self, i: u64, n: u64) -> Option<f64> {
        let now = Instant::now();
        // Hundredths done, 101 once the work is done (so the last step is due once); with
        // no count of steps, only time makes a message due.
        let hundredths = match n {
            0 => 0,
            n if i >= n => 101,
            n => i.saturating_mul(100) / n,
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let due = match *last {
            None => true,
            Some((at, h)) => hundredths > h || now.duration_since(at) >= MIN_INTERVAL,
        };
        if !due {
            return None;
        }
        *last = Some((now, hundredths));
        Some(now.duration_since(self.started).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hundredth_and_the_last_step_are_due_and_repeats_are_not() {
        let p = CallProgress::new("r".into());
        assert!(p.due(0, 10).is_some(), "the first");
        assert!(p.due(0, 10).is_none(), "the same step at once");
        for i in 1..=10 {
            assert!(p.due(i, 10).is_some(), "step {i} of 10 is a new tenth");
        }
        let p = CallProgress::new("r".into());
        let sent = (0..=100_000u64)
            .filter(|&i| p.due(i, 100_000).is_some())
            .count();
        assert!(
            (100..=102).contains(&sent),
            "{sent} messages for 100,000 fast steps"
        );
        // The end is due once; no count of steps, or steps past the end, only with time.
        assert!(p.due(100_000, 100_000).is_none());
        assert!(p.due(200_000, 100_000).is_none());
        let p = CallProgress::new("r".into());
        assert!(p.due(0, 0).is_some());
        assert!(
            (0..1000).all(|i| p.due(i, 0).is_none()),
            "n = 0: by time only"
        );
    }
}
