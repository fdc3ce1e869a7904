//! PostgreSQL: measurements, one binary `COPY` per batch.

use super::copy::{copy_rows, Copied};
use super::{plain, PostgresStore};
use crate::measurements::{clamp_i64, join_streams, merge_ends, COLUMNS};
use crate::{
    now, BoxFuture, JsonText, MeasurementQuery, MeasurementRow, MeasurementStore, StoreError,
    StreamEnd, StreamHead, StreamSummary,
};

/// The highest `seq` of each stream (`$1` origins, `$2` epochs), stored or announced.
const KNOWN_LAST: &str = "SELECT u.o, u.e, GREATEST(
       (SELECT MAX(seq) FROM measurements m WHERE m.origin = u.o AND m.epoch = u.e),
       (SELECT announced FROM streams s WHERE s.origin = u.o AND s.epoch = u.e))
     FROM unnest($1::text[], $2::int8[]) AS u(o, e)";

/// What senders announced, a batch at a time (one row per stream: see `merge_ends`).
const NOTE_ENDS: &str = "INSERT INTO streams (origin, epoch, announced, closed, updated_at)
     SELECT u.o, u.e, u.a, u.c, $5
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bool[]) AS u(o, e, a, c)
     ON CONFLICT (origin, epoch) DO UPDATE SET
       announced = GREATEST(streams.announced, EXCLUDED.announced),
       closed = streams.closed OR EXCLUDED.closed,
       updated_at = EXCLUDED.updated_at";

/// Per stream with a reading sent since `$1`: its `seq`s, the highest, the newest send time.
/// A reading with `epoch` and `seq` is keyed by (`from`, `epoch`, `seq`), so a plain count
/// is the count of distinct `seq`s (and much cheaper: about 1.4 s per million readings).
const COUNT_STREAMS: &str = "SELECT origin, epoch, COUNT(*), MAX(seq), MAX(sent_at)
     FROM measurements
     WHERE seq IS NOT NULL AND (origin, epoch) IN
       (SELECT DISTINCT origin, epoch FROM measurements
        WHERE sent_at >= $1 AND epoch IS NOT NULL AND ($2::text IS NULL OR origin = $2))
     GROUP BY origin, epoch";

const INSERT_BATCH: &str = "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)
     SELECT u.*, $21 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::float8[], $6::float8[], $7::text[], $8::json[], $9::float8[], $10::text[], $11::float8[], $12::int4[], $13::float8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::json[], $19::json[], $20::text[]) AS u
     ON CONFLICT (dedup_key) DO NOTHING";

/// A batch of rows, column by column.
#[derive(Default)]
struct Columns<'a> {
    dedup_key: Vec<&'a str>,
    origin: Vec<&'a str>,
    epoch: Vec<Option<i64>>,
    seq: Vec<Option<i64>>,
    sent_at: Vec<f64>,
    acquired: Vec<Option<f64>>,
    standard: Vec<Option<&'a str>>,
    src: Vec<Option<&'a JsonText>>,
    value: Vec<f64>,
    unit: Vec<Option<&'a str>>,
    nplc: Vec<Option<f64>>,
    ndigits: Vec<Option<i32>>,
    range: Vec<Option<f64>>,
    mode: Vec<Option<&'a str>>,
    pol: Vec<Option<&'a str>>,
    job: Vec<Option<&'a str>>,
    raw: Vec<Option<&'a str>>,
    origin_uid: Vec<Option<&'a JsonText>>,
    environment: Vec<Option<&'a JsonText>>,
    payload: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [&'a MeasurementRow]) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.dedup_key.push(&r.dedup_key);
            c.origin.push(&r.origin);
            c.epoch.push(r.epoch);
            c.seq.push(r.seq);
            c.sent_at.push(r.sent_at);
            c.acquired.push(r.acquired);
            c.standard.push(r.standard.as_deref());
            c.src.push(r.src.as_ref());
            c.value.push(r.value);
            c.unit.push(r.unit.as_deref());
            c.nplc.push(r.nplc);
            c.ndigits.push(r.ndigits);
            c.range.push(r.range);
            c.mode.push(r.mode.as_deref());
            c.pol.push(r.pol.as_deref());
            c.job.push(r.job.as_deref());
            c.raw.push(r.raw.as_deref());
            c.origin_uid.push(r.origin_uid.as_ref());
            c.environment.push(r.environment.as_ref());
            c.payload.push(&r.payload);
        }
        c
    }
}

impl MeasurementStore for PostgresStore {
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [&'a MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = guard.as_mut().expect("connected");
            let stored_at = now();
            // Fast path: one binary COPY, as fast as PostgreSQL takes rows.
            if let Copied::All(n) = copy_rows(client, rows, stored_at).await.map_err(plain)? {
                return Ok(n);
            }
            // A redelivered reading is in the batch: one statement that skips stored keys.
            // The columns travel as arrays and `unnest` turns them back into rows.
            let c = Columns::of(rows);
            let tx = client.transaction().await.map_err(plain)?;
            let inserted = tx
                .execute(
                    INSERT_BATCH,
                    &[
                        &c.dedup_key,
                        &c.origin,
                        &c.epoch,
                        &c.seq,
                        &c.sent_at,
                        &c.acquired,
                        &c.standard,
                        &c.src,
                        &c.value,
                        &c.unit,
                        &c.nplc,
                        &c.ndigits,
                        &c.range,
                        &c.mode,
                        &c.pol,
                        &c.job,
                        &c.raw,
                        &c.origin_uid,
                        &c.environment,
                        &c.payload,
                        &stored_at,
                    ],
                )
                .await
                .map_err(plain)?;
            tx.commit().await.map_err(plain)?;
            Ok(inserted)
        })
    }

    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let n: i64 = client
                .query_one("SELECT COUNT(*) FROM measurements", &[])
                .await
                .map_err(plain)?
                .get(0);
            Ok(n as u64)
        })
    }

    fn query_measurements<'a>(
        &'a self,
        query: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>> {
        Box::pin(async move {
            let (limit, offset) = query.page()?;
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let rows = client
                .query(
                    &format!("SELECT {COLUMNS}
                     FROM measurements
                     WHERE ($1::text IS NULL OR standard = $1) AND ($2::text IS NULL OR origin = $2) AND ($3::text IS NULL OR job = $3)
                       AND ($4::float8 IS NULL OR sent_at >= $4) AND ($5::float8 IS NULL OR sent_at < $5)
                     ORDER BY sent_at, id LIMIT $6 OFFSET $7"),
                    &[&query.standard, &query.origin, &query.job, &query.since, &query.until, &limit, &offset],
                )
                .await
                .map_err(plain)?;
            Ok(rows
                .iter()
                .map(|r| MeasurementRow {
                    dedup_key: r.get(0),
                    origin: r.get(1),
                    epoch: r.get(2),
                    seq: r.get(3),
                    sent_at: r.get(4),
                    acquired: r.get(5),
                    standard: r.get(6),
                    src: r.get(7),
                    value: r.get(8),
                    unit: r.get(9),
                    nplc: r.get(10),
                    ndigits: r.get(11),
                    range: r.get(12),
                    mode: r.get(13),
                    pol: r.get(14),
                    job: r.get(15),
                    raw: r.get(16),
                    origin_uid: r.get(17),
                    environment: r.get(18),
                    payload: r.get(19),
                })
                .collect())
        })
    }

    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let since = now() - days * 86_400.0;
            let rows = client
                .query(
                    "SELECT origin, epoch, MAX(seq) FROM measurements
                     WHERE sent_at >= $1 AND epoch IS NOT NULL AND seq IS NOT NULL
                     GROUP BY origin, epoch",
                    &[&since],
                )
                .await
                .map_err(plain)?;
            Ok(rows
                .iter()
                .map(|r| StreamHead {
                    origin: r.get(0),
                    epoch: r.get::<_, i64>(1) as u64,
                    seq: r.get::<_, i64>(2) as u64,
                })
                .collect())
        })
    }

    fn note_stream_ends<'a>(
        &'a self,
        ends: &'a [StreamEnd],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let ends = merge_ends(ends);
            if ends.is_empty() {
                return Ok(());
            }
            let origins: Vec<&str> = ends.iter().map(|e| e.origin.as_str()).collect();
            let epochs: Vec<i64> = ends.iter().map(|e| clamp_i64(e.epoch)).collect();
            let announced: Vec<Option<i64>> =
                ends.iter().map(|e| e.announced.map(clamp_i64)).collect();
            let closed: Vec<bool> = ends.iter().map(|e| e.closed).collect();
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            client
                .execute(NOTE_ENDS, &[&origins, &epochs, &announced, &closed, &now()])
                .await
                .map_err(plain)?;
            Ok(())
        })
    }

    fn streams_known_last<'a>(
        &'a self,
        streams: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<Vec<StreamHead>, StoreError>> {
        Box::pin(async move {
            let (origins, epochs): (Vec<&str>, Vec<i64>) = streams
                .iter()
                .filter_map(|(o, e)| Some((o.as_str(), i64::try_from(*e).ok()?)))
                .unzip();
            if origins.is_empty() {
                return Ok(Vec::new());
            }
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let rows = client
                .query(KNOWN_LAST, &[&origins, &epochs])
                .await
                .map_err(plain)?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    Some(StreamHead {
                        origin: r.get(0),
                        epoch: u64::try_from(r.get::<_, i64>(1)).ok()?,
                        seq: u64::try_from(r.get::<_, Option<i64>>(2)?).ok()?,
                    })
                })
                .collect())
        })
    }

    fn stream_summaries<'a>(
        &'a self,
        days: f64,
        origin: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<StreamSummary>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let since = now() - days * 86_400.0;
            let counted = client
                .query(COUNT_STREAMS, &[&since, &origin])
                .await
                .map_err(plain)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect();
            let ends = client
                .query(
                    "SELECT origin, epoch, announced, closed, updated_at FROM streams
                     WHERE ($2::text IS NULL OR origin = $2) AND (updated_at >= $1
                        OR (origin, epoch) IN (SELECT DISTINCT origin, epoch FROM measurements
                                               WHERE sent_at >= $1 AND epoch IS NOT NULL))",
                    &[&since, &origin],
                )
                .await
                .map_err(plain)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect();
            Ok(join_streams(counted, ends))
        })
    }
}
