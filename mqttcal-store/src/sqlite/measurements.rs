//! SQLite: measurements.

use rusqlite::params;

use super::{plain, SqliteStore};
use crate::measurements::{clamp_i64, join_streams, merge_ends, COLUMNS};
use crate::{
    now, BoxFuture, MeasurementQuery, MeasurementRow, MeasurementStore, StoreError, StreamEnd,
    StreamHead, StreamSummary,
};

/// The rows of `sql`, each made by `row`.
fn rows<T>(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    c.prepare(sql)
        .map_err(plain)?
        .query_map(params, row)
        .map_err(plain)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(plain)
}

/// A row's first five columns.
fn five<A, B, C, D, E>(r: &rusqlite::Row<'_>) -> rusqlite::Result<(A, B, C, D, E)>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
    C: rusqlite::types::FromSql,
    D: rusqlite::types::FromSql,
    E: rusqlite::types::FromSql,
{
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// The streams with a reading sent since `?1`, of sender `?2` if it is not NULL.
const RECENT: &str =
    "(origin, epoch) IN (SELECT DISTINCT origin, epoch FROM measurements WHERE sent_at >= ?1 AND epoch IS NOT NULL AND (?2 IS NULL OR origin = ?2))";

impl MeasurementStore for SqliteStore {
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [&'a MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let rows: Vec<MeasurementRow> = rows.iter().map(|r| (*r).clone()).collect();
        Box::pin(self.blocking(move |c| {
            let tx = c.transaction().map_err(plain)?;
            let mut inserted = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
                         ON CONFLICT (dedup_key) DO NOTHING",
                    )
                    .map_err(plain)?;
                let stored_at = now();
                for r in &rows {
                    inserted += stmt
                        .execute(params![
                            r.dedup_key, r.origin, r.epoch, r.seq, r.sent_at, r.acquired, r.standard,
                            r.src, r.value, r.unit, r.nplc, r.ndigits, r.range, r.mode, r.pol,
                            r.job, r.raw, r.origin_uid, r.environment, r.payload, stored_at
                        ])
                        .map_err(plain)? as u64;
                }
            }
            tx.commit().map_err(plain)?;
            Ok(inserted)
        }))
    }

    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.blocking(|c| {
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
                .map_err(plain)?;
            Ok(n as u64)
        }))
    }

    fn query_measurements<'a>(
        &'a self,
        query: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>> {
        let query = query.clone();
        Box::pin(async move {
            let (limit, offset) = query.page()?;
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        &format!("SELECT {COLUMNS}
                         FROM measurements
                         WHERE (?1 IS NULL OR standard = ?1) AND (?2 IS NULL OR origin = ?2) AND (?3 IS NULL OR job = ?3)
                           AND (?4 IS NULL OR sent_at >= ?4) AND (?5 IS NULL OR sent_at < ?5)
                         ORDER BY sent_at, id LIMIT ?6 OFFSET ?7"),
                    )
                    .map_err(plain)?;
                let rows = stmt
                    .query_map(
                        params![query.standard, query.origin, query.job, query.since, query.until, limit, offset],
                        |r| {
                            Ok(MeasurementRow {
                                dedup_key: r.get(0)?,
                                origin: r.get(1)?,
                                epoch: r.get(2)?,
                                seq: r.get(3)?,
                                sent_at: r.get(4)?,
                                acquired: r.get(5)?,
                                standard: r.get(6)?,
                                src: r.get(7)?,
                                value: r.get(8)?,
                                unit: r.get(9)?,
                                nplc: r.get(10)?,
                                ndigits: r.get(11)?,
                                range: r.get(12)?,
                                mode: r.get(13)?,
                                pol: r.get(14)?,
                                job: r.get(15)?,
                                raw: r.get(16)?,
                                origin_uid: r.get(17)?,
                                environment: r.get(18)?,
                                payload: r.get(19)?,
                            })
                        },
                    )
                    .map_err(plain)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(plain)
            })
            .await
        })
    }

    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>> {
        let since = now() - days * 86_400.0;
        Box::pin(self.blocking(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT origin, epoch, MAX(seq) FROM measurements
                     WHERE sent_at >= ?1 AND epoch IS NOT NULL AND seq IS NOT NULL
                     GROUP BY origin, epoch",
                )
                .map_err(plain)?;
            let heads = stmt
                .query_map([since], |r| {
                    Ok(StreamHead {
                        origin: r.get(0)?,
                        epoch: r.get::<_, i64>(1)? as u64,
                        seq: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(plain)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(plain)?;
            Ok(heads)
        }))
    }

    fn note_stream_ends<'a>(
        &'a self,
        ends: &'a [StreamEnd],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let ends = merge_ends(ends);
        Box::pin(self.blocking(move |c| {
            if ends.is_empty() {
                return Ok(());
            }
            let at = now();
            let tx = c.transaction().map_err(plain)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO streams (origin, epoch, announced, closed, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (origin, epoch) DO UPDATE SET
                           announced = MAX(COALESCE(streams.announced, excluded.announced),
                                           COALESCE(excluded.announced, streams.announced)),
                           closed = streams.closed OR excluded.closed,
                           updated_at = excluded.updated_at",
                    )
                    .map_err(plain)?;
                for e in &ends {
                    stmt.execute(params![
                        e.origin,
                        clamp_i64(e.epoch),
                        e.announced.map(clamp_i64),
                        e.closed,
                        at
                    ])
                    .map_err(plain)?;
                }
            }
            tx.commit().map_err(plain)
        }))
    }

    fn streams_known_last<'a>(
        &'a self,
        streams: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<Vec<StreamHead>, StoreError>> {
        let streams = streams.to_vec();
        Box::pin(self.blocking(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT (SELECT MAX(seq) FROM measurements WHERE origin = ?1 AND epoch = ?2),
                            (SELECT announced FROM streams WHERE origin = ?1 AND epoch = ?2)",
                )
                .map_err(plain)?;
            let mut found = Vec::new();
            for (origin, epoch) in streams {
                let Ok(e) = i64::try_from(epoch) else {
                    continue;
                };
                let (head, announced): (Option<i64>, Option<i64>) = stmt
                    .query_row(params![origin, e], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(plain)?;
                if let Some(seq) = head.max(announced).and_then(|l| u64::try_from(l).ok()) {
                    found.push(StreamHead { origin, epoch, seq });
                }
            }
            Ok(found)
        }))
    }

    fn stream_summaries<'a>(
        &'a self,
        days: f64,
        origin: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<StreamSummary>, StoreError>> {
        let origin = origin.map(str::to_owned);
        let since = now() - days * 86_400.0;
        Box::pin(self.blocking(move |c| {
            let counted = rows(
                c,
                &format!(
                    "SELECT origin, epoch, COUNT(*), MAX(seq), MAX(sent_at)
                     FROM measurements WHERE seq IS NOT NULL AND {RECENT}
                     GROUP BY origin, epoch"
                ),
                params![since, origin],
                five,
            )?;
            let ends = rows(
                c,
                &format!(
                    "SELECT origin, epoch, announced, closed, updated_at FROM streams
                     WHERE (?2 IS NULL OR origin = ?2) AND (updated_at >= ?1 OR {RECENT})"
                ),
                params![since, origin],
                five,
            )?;
            Ok(join_streams(counted, ends))
        }))
    }
}
