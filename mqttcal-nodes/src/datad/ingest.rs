//! datad's durable intake: readings on `meas` and last `seq`s on `announce`, decoded (in one
//! pass where the reading has its usual shape), committed in batches, then acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mqttcal_core::envelope::Envelope;
use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake, IntakeStats};
use mqttcal_core::topics;
use mqttcal_core::transport::BoxFuture;
use mqttcal_core::{error_chain, Context, Throttle};
use mqttcal_messages::LogEntry;
use mqttcal_store::{MeasurementRow, Store, StreamEnd};
use serde::Serialize;

use super::decode::measurement_row;
use super::decode_fast::parse_common;
use super::gaps::GapTracker;
use super::DatadConfig;

/// How far back a starting datad looks for the streams it takes up.
const RESUME_DAYS: f64 = 7.0;

/// Counters of the ingest.
#[derive(Debug, Default, Clone, Serialize, schemars::JsonSchema)]
pub struct StatsSnapshot {
    /// Rows this run of datad committed (`query` and `export` read all the database holds).
    pub stored: u64,
    /// Redelivered readings that were stored already.
    pub duplicates: u64,
    /// Messages set aside: not readings (and no `cmd`), or readings the database refused
    /// for good; logged and acknowledged.
    pub rejected: u64,
    /// Commands on `meas` (triggers for other nodes), ignored.
    pub ignored: u64,
    /// Readings missing per sender, from gaps in `seq` and announced tails.
    pub missing: HashMap<String, u64>,
    /// Transactions that stored readings.
    pub batches: u64,
    /// Failed attempts to write a batch (database unreachable), retried.
    pub retries: u64,
    /// Rows committed per second, over the last second or more of ingest.
    pub rate_per_s: f64,
    /// Seconds from the newest reading's send time to its commit, last batch.
    pub lag_s: f64,
}

/// Shared ingest statistics.
#[derive(Debug, Default)]
pub struct IngestStats {
    inner: Mutex<StatsSnapshot>,
    intake: OnceLock<Arc<IntakeStats>>,
}

impl IngestStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(i) = self.intake.get() {
            let c = i.counters();
            s.rejected += c.set_aside;
            s.retries = c.retries;
        }
        s
    }

    fn update(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// What the intake hands to the writer, in arrival order.
// Nearly every item is a row; boxing them would cost an allocation per reading.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Ingested {
    /// A reading to store.
    Row(MeasurementRow),
    /// A sender's last `seq` on `meas`, from `bye` (`closed`), a heartbeat or the census;
    /// or the start of a run (`hello`, no `seq` yet).
    Announced {
        origin: String,
        epoch: u64,
        last: Option<u64>,
        closed: bool,
    },
    /// A message with its place in a sender's stream that is no reading datad can store:
    /// not stored, counted as rejected, and as arrived (it is no gap).
    Unreadable {
        origin: String,
        epoch: u64,
        seq: u64,
    },
}

impl Ingested {
    /// The sender.
    fn origin(&self) -> &str {
        match self {
            Ingested::Row(r) => &r.origin,
            Ingested::Announced { origin, .. } | Ingested::Unreadable { origin, .. } => origin,
        }
    }

    /// The sender's stream the item belongs to, if any.
    fn stream(&self) -> Option<(&str, u64)> {
        match self {
            Ingested::Row(r) => match (r.epoch, r.seq) {
                (Some(epoch), Some(_)) => Some((&r.origin, epoch as u64)),
                _ => None,
            },
            Ingested::Announced { origin, epoch, .. }
            | Ingested::Unreadable { origin, epoch, .. } => Some((origin, *epoch)),
        }
    }
}

/// datad's intake: the session `<node>-ingest` on `meas` and `announce`.
pub(super) fn intake(
    config: &DatadConfig,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
) -> Intake<Ingested> {
    let counts = stats.clone();
    let intake = Intake::new(
        move |name: &str, payload: &[u8]| decode(name, payload, &counts),
        Writer {
            store,
            stats: stats.clone(),
            gaps: GapTracker::default(),
            warnings: Throttle::new(Duration::from_secs(10)),
            gap_log: GapLog::default(),
            resumed: false,
            window: (Instant::now(), 0),
            shared: config.share.is_some(),
        },
    )
    .subscribe(topics::MEAS)
    .subscribe(topics::ANNOUNCE);
    let intake = if config.labs {
        intake
            .subscribe(&format!("+/{}", topics::MEAS))
            .subscribe(&format!("+/{}", topics::ANNOUNCE))
    } else {
        intake
    };
    let intake = intake
        .client_suffix("ingest")
        .batch(config.batch.max(1), Duration::from_millis(config.batch_ms));
    let intake = match &config.share {
        Some(group) => intake.shared(group),
        None => intake,
    };
    let _ = stats.intake.set(intake.stats());
    intake
}

/// One message, of this site (`meas`) or of a bridged lab (`<lab>/meas`, whose sender is
/// then `<lab>/<from>`).
fn decode(name: &str, payload: &[u8], stats: &IngestStats) -> Decoded<Ingested> {
    match name.split_once('/') {
        Some((lab, kind @ (topics::MEAS | topics::ANNOUNCE))) if topics::is_valid_name(lab) => {
            match decode_here(kind, payload, stats) {
                Decoded::Item(item) => Decoded::Item(in_lab(lab, item)),
                other => other,
            }
        }
        Some(_) => Decoded::SetAside(format!(
            "`{name}` is not a lab's `meas` or `announce` (one topic level, a valid name, per lab)"
        )),
        // A sender of this site whose name holds `/` could pass for a lab's
        // (`<lab>/<from>`) and take its readings' keys: set aside.
        None => match decode_here(name, payload, stats) {
            Decoded::Item(item) if item.origin().contains('/') => Decoded::SetAside(format!(
                "the sender `{}` holds `/`, which only a bridged lab's readings carry",
                item.origin()
            )),
            other => other,
        },
    }
}

/// An item of lab `lab`: its sender, and so its stream and its readings' keys, carry the
/// lab (node names hold no `/`, so `<lab>/<from>` is never a name of this site).
fn in_lab(lab: &str, item: Ingested) -> Ingested {
    match item {
        Ingested::Row(mut r) => {
            r.origin = format!("{lab}/{}", r.origin);
            r.dedup_key = format!("{lab}/{}", r.dedup_key);
            Ingested::Row(r)
        }
        Ingested::Announced {
            origin,
            epoch,
            last,
            closed,
        } => Ingested::Announced {
            origin: format!("{lab}/{origin}"),
            epoch,
            last,
            closed,
        },
        Ingested::Unreadable { origin, epoch, seq } => Ingested::Unreadable {
            origin: format!("{lab}/{origin}"),
            epoch,
            seq,
        },
    }
}

/// One message: a reading (the usual shape in one pass), a sender's last `seq`, or nothing.
fn decode_here(name: &str, payload: &[u8], stats: &IngestStats) -> Decoded<Ingested> {
    if name == topics::MEAS {
        if let Some(row) = parse_common(payload) {
            return Decoded::Item(Ingested::Row(row));
        }
    }
    // The intake set aside anything over the node's size limit before this point.
    let env = match Envelope::decode(payload, usize::MAX) {
        Ok(env) => env,
        Err(e) => return Decoded::SetAside(format!("not a message: {}", error_chain(&e))),
    };
    // The database keeps no NUL in a text: such a sender's stream could not be written, and
    // would fail the statement that keeps the other senders' stream ends with it.
    if env.from.contains('\0') {
        return Decoded::SetAside(
            "`from` holds a NUL character, which the database cannot keep".into(),
        );
    }
    if name == topics::ANNOUNCE {
        let last = env
            .fields
            .get("seqs")
            .and_then(|s| s.get(topics::MEAS))
            .and_then(|v| v.as_u64());
        // A clean `bye` closes the stream; a will (`reason: lost`) carries no `seqs`; a
        // `hello` starts a run, which ends the tail of the sender's run before.
        let closed = env.message.as_deref() == Some("bye") && !env.fields.contains_key("reason");
        let hello = env.message.as_deref() == Some("hello");
        // The database keeps integers up to 2^63 - 1, as for readings.
        if env
            .epoch
            .max(last)
            .is_some_and(|n| i64::try_from(n).is_err())
        {
            return Decoded::SetAside("`epoch` or the announced `seq` exceeds 2^63 - 1".into());
        }
        return match env.epoch {
            Some(epoch) if last.is_some() || hello => Decoded::Item(Ingested::Announced {
                origin: env.from,
                epoch,
                last,
                closed,
            }),
            _ => Decoded::Skip,
        };
    }
    match measurement_row(&env, payload) {
        Ok(row) => Decoded::Item(Ingested::Row(row)),
        Err(_) if env.cmd.is_some() => {
            stats.update(|s| s.ignored += 1);
            Decoded::Skip
        }
        Err(e) => match (env.epoch, env.seq) {
            // In its stream (the database could have kept its place): it arrived, no gap.
            (Some(epoch), Some(seq)) if i64::try_from(epoch.max(seq)).is_ok() => {
                tracing::warn!(from = %env.from, seq, "datad: not stored: {e}");
                stats.update(|s| s.rejected += 1);
                Decoded::Item(Ingested::Unreadable {
                    origin: env.from,
                    epoch,
                    seq,
                })
            }
            _ => Decoded::SetAside(format!("from {}: {e}", env.from)),
        },
    }
}

/// Writes batches in order: commit, count gaps, report them to the logbook.
struct Writer {
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    gaps: GapTracker,
    /// One warning about missing readings per 10 s, with the count of the others.
    warnings: Throttle,
    /// Gap reports for the logbook, at most [`GAP_ENTRIES`] per [`GAP_WINDOW`].
    gap_log: GapLog,
    /// Whether the streams stored by an earlier run were taken up.
    resumed: bool,
    window: (Instant, u64),
    /// One of several instances sharing the stream: gaps in `seq` are not counted here
    /// (this instance sees only its share), the database counts them.
    shared: bool,
}

impl Commit<Ingested> for Writer {
    fn commit<'a>(
        &'a mut self,
        items: &'a [Ingested],
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), CommitError>> {
        Box::pin(self.write(items, ctx))
    }
}

impl Writer {
    async fn write(&mut self, items: &[Ingested], ctx: &Context) -> Result<(), CommitError> {
        if self.shared {
            return self.write_share(items).await;
        }
        if !self.resumed {
            self.resume().await;
        }
        // A stream the gap counter does not know (new, or forgotten to make room) is taken up
        // where the database has it, before this batch is written: its readings are not
        // counted missing twice.
        // A batch holds few streams, mostly one run after another: each is looked at once.
        let mut streams = std::collections::HashSet::new();
        let mut previous = None;
        for stream in items.iter().filter_map(Ingested::stream) {
            if previous != Some(stream) {
                streams.insert(stream);
                previous = Some(stream);
            }
        }
        let unknown: Vec<(String, u64)> = streams
            .into_iter()
            .filter(|(origin, epoch)| !self.gaps.knows(origin, *epoch))
            .map(|(origin, epoch)| (origin.to_owned(), epoch))
            .collect();
        if !unknown.is_empty() {
            match self.store.streams_known_last(&unknown).await {
                Ok(heads) => {
                    for h in heads {
                        self.gaps.resume(&h.origin, h.epoch, h.seq);
                    }
                }
                Err(e) if e.is_transient() => return Err(CommitError::retry(e)),
                Err(e) => tracing::warn!(
                    "datad: cannot read where the streams end: {}",
                    error_chain(&e)
                ),
            }
        }
        // What senders announced is kept first: a retry writes it again, harmlessly.
        self.keep_stream_ends(items).await?;
        let rows = rows_of(items);
        let inserted = match self.insert(&rows).await {
            Ok(n) => n,
            Err(e @ CommitError::Refused(_)) => {
                // Refused for good: alone, it arrived and is set aside, no gap.
                if let [r] = rows.as_slice() {
                    if let (Some(epoch), Some(seq)) = (r.epoch, r.seq) {
                        self.gaps.seen(&r.origin, epoch as u64, seq as u64);
                    }
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // Gaps, in arrival order: an announcement counts against what arrived before it.
        let mut lost_by: Vec<(String, u64, &'static str)> = Vec::new();
        for item in items {
            let (origin, lost, how) = match item {
                Ingested::Row(r) => match (r.epoch, r.seq) {
                    (Some(epoch), Some(seq)) => (
                        &r.origin,
                        self.gaps.seen(&r.origin, epoch as u64, seq as u64),
                        "a jump in seq",
                    ),
                    _ => continue,
                },
                Ingested::Announced {
                    origin,
                    epoch,
                    last: Some(last),
                    ..
                } => (
                    origin,
                    self.gaps.announced(origin, *epoch, *last),
                    "announced as sent, not received",
                ),
                Ingested::Announced { last: None, .. } => continue,
                Ingested::Unreadable { origin, epoch, seq } => (
                    origin,
                    self.gaps.seen(origin, *epoch, *seq),
                    "a jump in seq",
                ),
            };
            if lost > 0 {
                if let Some(n) = self.warnings.hit("gap") {
                    tracing::warn!(
                        origin,
                        lost,
                        "datad: readings missing ({how}){}",
                        more_since(n)
                    );
                }
                match lost_by
                    .iter_mut()
                    .find(|(o, _, h)| o == origin && *h == how)
                {
                    Some(entry) => entry.1 += lost,
                    None => lost_by.push((origin.clone(), lost, how)),
                }
            }
        }
        for entry in self.gap_log.admit(lost_by) {
            log_gap(ctx, &entry).await;
        }
        self.count(&rows, inserted);
        Ok(())
    }

    /// One instance's share of the stream: stored as it comes, gaps left to the database.
    async fn write_share(&mut self, items: &[Ingested]) -> Result<(), CommitError> {
        self.keep_stream_ends(items).await?;
        let rows = rows_of(items);
        let inserted = self.insert(&rows).await?;
        self.count(&rows, inserted);
        Ok(())
    }

    /// Keeps the last `seq` each sender announced, and whether a `bye` closed its stream.
    async fn keep_stream_ends(&self, items: &[Ingested]) -> Result<(), CommitError> {
        let ends: Vec<StreamEnd> = items
            .iter()
            .filter_map(|i| match i {
                Ingested::Announced {
                    origin,
                    epoch,
                    last,
                    closed,
                } => Some(StreamEnd {
                    origin: origin.clone(),
                    epoch: *epoch,
                    announced: *last,
                    closed: *closed,
                }),
                _ => None,
            })
            .collect();
        if ends.is_empty() {
            return Ok(());
        }
        match self.store.note_stream_ends(&ends).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_transient() => Err(CommitError::retry(e)),
            Err(e) => {
                tracing::warn!(
                    "datad: cannot keep what senders announced: {}",
                    error_chain(&e)
                );
                Ok(())
            }
        }
    }

    /// Inserts the rows (those stored already are skipped): how many were new.
    async fn insert(&self, rows: &[&MeasurementRow]) -> Result<u64, CommitError> {
        if rows.is_empty() {
            return Ok(0);
        }
        match self.store.insert_measurements(rows).await {
            Ok(n) => Ok(n),
            Err(e) if e.is_transient() => Err(CommitError::retry(e)),
            Err(e) => Err(CommitError::refused(e)),
        }
    }

    /// Takes up each sender's stream where the stored readings end, so readings stored by
    /// an earlier run are not counted missing.
    async fn resume(&mut self) {
        match self.store.stream_heads(RESUME_DAYS).await {
            Ok(heads) => {
                for h in heads {
                    self.gaps.resume(&h.origin, h.epoch, h.seq);
                }
                self.resumed = true;
            }
            Err(e) => tracing::warn!(
                "datad: cannot read where the streams end ({}); tried again at the next batch",
                error_chain(&e)
            ),
        }
    }

    fn count(&mut self, rows: &[&MeasurementRow], inserted: u64) {
        let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
        let newest = rows.iter().map(|r| r.sent_at).fold(0.0, f64::max);
        let missing = self.gaps.missing().clone();
        self.window.1 += rows.len() as u64;
        let elapsed = self.window.0.elapsed().as_secs_f64();
        let rate = (elapsed >= 1.0).then(|| self.window.1 as f64 / elapsed);
        if rate.is_some() {
            self.window = (Instant::now(), 0);
        }
        self.stats.update(|s| {
            s.stored += inserted;
            s.duplicates += rows.len() as u64 - inserted;
            s.batches += u64::from(!rows.is_empty());
            s.missing = missing;
            if let Some(rate) = rate {
                s.rate_per_s = rate;
            }
            if newest > 0.0 {
                s.lag_s = (now - newest).max(0.0);
            }
        });
    }
}

/// Gap reports written to the logbook per [`GAP_WINDOW`] at most; the rest are summed into
/// one entry when the next window begins, so made-up senders cannot flood the logbook.
const GAP_ENTRIES: u32 = 20;
/// See [`GAP_ENTRIES`].
const GAP_WINDOW: Duration = Duration::from_secs(10);

/// Limits the gap reports datad writes to the logbook.
#[derive(Debug)]
struct GapLog {
    window: Instant,
    written: u32,
    /// Held back in this window: reports and the readings they counted.
    held: (u64, u64),
}

impl Default for GapLog {
    fn default() -> Self {
        Self {
            window: Instant::now(),
            written: 0,
            held: (0, 0),
        }
    }
}

impl GapLog {
    /// The logbook texts to write for `reports` (sender, readings lost, how).
    fn admit(&mut self, reports: Vec<(String, u64, &'static str)>) -> Vec<String> {
        let mut out = Vec::new();
        if self.window.elapsed() >= GAP_WINDOW {
            if self.held.0 > 0 {
                out.push(format!(
                    "{} readings missing in {} more reports (held back: more than {GAP_ENTRIES} gap reports in {} s; datad's `gaps` has them all)",
                    self.held.1,
                    self.held.0,
                    GAP_WINDOW.as_secs()
                ));
            }
            *self = Self::default();
        }
        for (origin, lost, how) in reports {
            if self.written < GAP_ENTRIES {
                self.written += 1;
                out.push(format!("{lost} readings from {origin} missing ({how})"));
            } else {
                self.held.0 += 1;
                self.held.1 = self.held.1.saturating_add(lost);
            }
        }
        out
    }
}

/// ", and N more since the last warning" when `n` counts more than this one.
fn more_since(n: u64) -> String {
    if n > 1 {
        format!(" ({} more since the last such warning)", n - 1)
    } else {
        String::new()
    }
}

/// A gap report for the logbook; never waits long (the logbook is best effort here, `stats`
/// and `gaps` keep the count).
async fn log_gap(ctx: &Context, text: &str) {
    let entry = LogEntry {
        tags: vec!["datad".into(), "gap".into()],
        ..LogEntry::new("gap", text)
    };
    let send = ctx.send(LogEntry::TOPIC, "*", &entry);
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), send).await {
        tracing::warn!(
            "datad: cannot report a gap to the logbook: {}",
            error_chain(&e)
        );
    }
}

/// The readings among `items`.
fn rows_of(items: &[Ingested]) -> Vec<&MeasurementRow> {
    items
        .iter()
        .filter_map(|i| match i {
            Ingested::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_reports_beyond_the_limit_are_summed_into_one() {
        let mut log = GapLog::default();
        let reports = |n: usize| -> Vec<(String, u64, &'static str)> {
            (0..n)
                .map(|i| (format!("s{i}"), 2, "a jump in seq"))
                .collect()
        };
        assert_eq!(log.admit(reports(15)).len(), 15);
        assert_eq!(log.admit(reports(15)).len(), 5);
        assert!(log.admit(reports(100)).is_empty());
        // The next window begins with the sum of what was held back.
        log.window -= GAP_WINDOW;
        let texts = log.admit(reports(1));
        assert_eq!(texts.len(), 2);
        assert!(
            texts[0].starts_with("220 readings missing in 110 more reports"),
            "{}",
            texts[0]
        );
        assert_eq!(texts[1], "2 readings from s0 missing (a jump in seq)");
    }

    #[test]
    fn a_labs_reading_carries_its_lab_in_its_origin_and_key() {
        let stats = IngestStats::default();
        let payload = br#"{"from":"labd","to":"*","seq":7,"epoch":3,"timestamp":1764000000.5,"DC-measurement":1.25}"#;
        let row = |name: &str| match decode(name, payload, &stats) {
            Decoded::Item(Ingested::Row(r)) => Some((r.origin, r.dedup_key)),
            _ => None,
        };
        let (here, here_key) = row("meas").unwrap();
        let (there, there_key) = row("lab-a/meas").unwrap();
        assert_eq!((here.as_str(), there.as_str()), ("labd", "lab-a/labd"));
        assert_eq!(there_key, format!("lab-a/{here_key}"));
        let hello =
            br#"{"from":"labd","to":"*","message":"hello","epoch":3,"timestamp":1764000000.5}"#;
        assert!(matches!(
            decode("lab-b/announce", hello, &stats),
            Decoded::Item(Ingested::Announced { origin, .. }) if origin == "lab-b/labd"
        ));
        let posing = br#"{"from":"lab-a/labd","to":"*","seq":7,"epoch":3,"timestamp":1764000000.5,"DC-measurement":1.25}"#;
        assert!(matches!(
            decode("meas", posing, &stats),
            Decoded::SetAside(_)
        ));
        let bye = br#"{"from":"lab-a/labd","to":"*","message":"bye","epoch":3,"seqs":{"meas":7}}"#;
        assert!(matches!(
            decode("announce", bye, &stats),
            Decoded::SetAside(_)
        ));
        for odd in ["a/b/meas", "lab\u{1}/meas", "lab-a/request", "/meas"] {
            assert!(
                matches!(decode(odd, payload, &stats), Decoded::SetAside(_)),
                "{odd}"
            );
        }
    }

    /// What the database cannot keep in a stream's row is set aside at decoding: otherwise
    /// it fails the statement that keeps the other senders' stream ends with it.
    #[test]
    fn announcements_the_database_cannot_keep_are_set_aside() {
        let stats = IngestStats::default();
        let nul =
            br#"{"from":"evil\u0000x","to":"*","message":"heartbeat","epoch":1,"seqs":{"meas":5}}"#;
        let huge = br#"{"from":"labd","to":"*","message":"bye","epoch":3,"seqs":{"meas":18446744073709551615}}"#;
        let unreadable =
            br#"{"from":"evil\u0000x","to":"*","seq":7,"epoch":3,"DC-measurement":"x"}"#;
        for (name, payload) in [
            ("announce", &nul[..]),
            ("announce", huge),
            ("meas", unreadable),
        ] {
            assert!(
                matches!(decode(name, payload, &stats), Decoded::SetAside(_)),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        let fine = br#"{"from":"labd","to":"*","message":"bye","epoch":3,"seqs":{"meas":9}}"#;
        assert!(matches!(
            decode("announce", fine, &stats),
            Decoded::Item(Ingested::Announced {
                last: Some(9),
                closed: true,
                ..
            })
        ));
    }
}
