//! Timestamps as the report defines them, and request ids that a sender never reuses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// An instant with microsecond resolution, as carried in `timestamp` and `UTC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros: u64,
}

impl Timestamp {
    /// The current time of the system clock.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_micros(d.as_micros() as u64)
    }

    /// An instant given in microseconds since the Unix epoch.
    pub fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// An instant given in (fractional) seconds since the Unix epoch, rounded to microseconds.
    pub fn from_secs_f64(secs: f64) -> Self {
        Self::from_micros((secs.max(0.0) * 1e6).round() as u64)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> u64 {
        self.micros
    }

    /// Seconds since the Unix epoch, the value of the `timestamp` field.
    pub fn as_secs_f64(self) -> f64 {
        self.micros as f64 / 1e6
    }

    /// The `timestamp` field exactly as it is written in JSON (and so in request ids).
    pub fn json_text(self) -> String {
        // The shortest text that reads back to the same float, as serde_json (with ryu) and
        // Python's json module write it, so a Python peer builds the same request id from it.
        ryu::Buffer::new().format(self.as_secs_f64()).to_owned()
    }

    /// The `UTC` field: `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub fn utc_string(self) -> String {
        self.with_utc(str::to_owned)
    }

    /// Calls `f` with the text of [`Timestamp::utc_string`], written without allocating.
    pub(crate) fn with_utc<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let secs = self.micros / 1_000_000;
        let frac = self.micros % 1_000_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return f(&format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60
            ));
        }
        let mut text = *b"0000-00-00 00:00:00.000000";
        let mut put = |at: usize, width: usize, mut n: u64| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, u64::from(m));
        put(8, 2, u64::from(d));
        put(11, 2, rem / 3600);
        put(14, 2, (rem / 60) % 60);
        put(17, 2, rem % 60);
        put(20, 6, frac);
        f(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A source of strictly increasing timestamps for one sender.
///
/// Two messages of the same sender never carry the same `timestamp`, so request ids
/// (`from` + `-` + `timestamp`) are never reused even when two requests fall in the same
/// microsecond or the system clock steps back.
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// A new clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next timestamp: the current time, or one microsecond after the last one given.
    pub fn next(&self) -> Timestamp {
        let now = Timestamp::now().as_micros();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(last + 1);
            match self.last.compare_exchange_weak(
                last,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Timestamp::from_micros(candidate),
                Err(seen) => last = seen,
            }
        }
    }
}

/// The request id of a request sent by `from` at `timestamp`, as the report defines it.
pub fn request_id(from: &str, timestamp: Timestamp) -> String {
    let mut secs = ryu::Buffer::new();
    let secs = secs.format(timestamp.as_secs_f64());
    let mut id = String::with_capacity(from.len() + 1 + secs.len());
    id.push_str(from);
    id.push('-');
    id.push_str(secs);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_matches_the_report_example() {
        let t = Timestamp::from_secs_f64(1645788432.493238);
        assert_eq!(t.utc_string(), "2022-02-25 11:27:12.493238");
        assert_eq!(t.json_text(), "1645788432.493238");
    }

    #[test]
    fn utc_text_handles_leap_days_and_epoch() {
        assert_eq!(
            Timestamp::from_micros(0).utc_string(),
            "1970-01-01 00:00:00.000000"
        );
        // 2024-02-29 23:59:59.999999
        let t = Timestamp::from_micros(1_709_251_199_999_999);
        assert_eq!(t.utc_string(), "2024-02-29 23:59:59.999999");
        // 2000-03-01 00:00:00
        let t = Timestamp::from_micros(951_868_800_000_000);
        assert_eq!(t.utc_string(), "2000-03-01 00:00:00.000000");
    }

    #[test]
    fn utc_text_agrees_with_the_calendar_arithmetic_over_centuries() {
        let mut micros = 0u64;
        while micros < 253_402_300_800_000_000 {
            let t = Timestamp::from_micros(micros);
            let secs = micros / 1_000_000;
            let rem = secs % 86_400;
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let expected = format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60,
                micros % 1_000_000
            );
            assert_eq!(t.utc_string(), expected);
            micros += 987_654_321_123;
        }
        assert_eq!(
            Timestamp::from_micros(253_402_300_800_000_000).utc_string(),
            "10000-01-01 00:00:00.000000",
            "past year 9999 the year takes five digits"
        );
    }

    #[test]
    fn request_ids_spell_seconds_as_json_does() {
        for micros in [0, 1, 1_645_788_432_493_238, 1_700_000_000_000_000, 999_999] {
            let t = Timestamp::from_micros(micros);
            let json = serde_json::to_string(&t.as_secs_f64()).unwrap();
            assert_eq!(request_id("n", t), format!("n-{json}"));
            assert_eq!(t.json_text(), json);
        }
    }

    #[test]
    fn clock_never_repeats_a_timestamp() {
        let c = Clock::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(request_id("n", c.next())));
        }
    }

    #[test]
    fn whole_seconds_keep_the_python_spelling() {
        assert_eq!(
            request_id("a", Timestamp::from_micros(1_700_000_000_000_000)),
            "a-1700000000.0"
        );
    }
}
