//! SQLite: the logbook.

use rusqlite::{params, OptionalExtension, Row};

use super::{json, plain, SqliteStore};
use crate::logbook::second_writer;
use crate::{BoxFuture, Checkpoint, LogQuery, LogRow, LogbookStore, StoreError};

const COLUMNS: &str = "seq, at, kind, node, author, text, tags, refs, entry, prev_hash, hash";

fn row_of(r: &Row) -> rusqlite::Result<LogRow> {
    Ok(LogRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        kind: r.get(2)?,
        node: r.get(3)?,
        author: r.get(4)?,
        text: r.get(5)?,
        tags: json(r.get(6)?)?,
        refs: json(r.get(7)?)?,
        entry: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

impl LogbookStore for SqliteStore {
    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>> {
        Box::pin(async move {
            self.blocking(|c| {
                c.query_row(
                    "SELECT seq, hash FROM logbook ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(plain)
            })
            .await
        })
    }

    fn append_log<'a>(
        &'a self,
        e: &'a LogRow,
        checkpoint: Option<&'a Checkpoint>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let e = e.clone();
            let cp = checkpoint.cloned();
            self.blocking(move |c| {
            // One transaction: the entry and its checkpoint, or neither.
            let tx = c.unchecked_transaction().map_err(plain)?;
            tx.execute(
                &format!("INSERT INTO logbook ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![e.seq, e.at, e.kind, e.node, e.author, e.text, e.tags.to_string(), e.refs.to_string(), e.entry, e.prev_hash, e.hash],
            )
            .map_err(|err| match &err {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    second_writer(e.seq)
                }
                _ => plain(err),
            })?;
            if let Some(cp) = cp {
                tx.execute(
                    "INSERT INTO logbook_checkpoints (seq, hash, key_id, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![cp.seq, cp.hash, cp.key_id, cp.signature, cp.at],
                )
                .map_err(plain)?;
            }
            tx.commit().map_err(plain)?;
            Ok(())
        })
        .await
        })
    }

    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>> {
        Box::pin(async move {
            let (limit, offset) = q.page()?;
            let text = q.text_pattern();
            let q = q.clone();
            self.blocking(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM logbook
                     WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2)
                       AND (?3 IS NULL OR node = ?3) AND (?4 IS NULL OR kind = ?4)
                       AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(logbook.tags) WHERE value = ?5))
                       AND (?6 IS NULL OR lower(text) LIKE ?6 ESCAPE '\\')
                       AND (?7 IS NULL OR ?7 IN (json_extract(refs, '$.standard'), json_extract(refs, '$.job'), json_extract(refs, '$.certificate')))
                     ORDER BY seq LIMIT ?8 OFFSET ?9"
                ))
                .map_err(plain)?;
            let rows = stmt
                .query_map(
                    params![q.since, q.until, q.node, q.kind, q.tag, text, q.reference, limit, offset],
                    row_of,
                )
                .map_err(plain)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(plain)?;
            Ok(rows)
        })
        .await
        })
    }

    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>> {
        Box::pin(async move {
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM logbook WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                    ))
                    .map_err(plain)?;
                let rows = stmt
                    .query_map(params![after, limit], row_of)
                    .map_err(plain)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(plain)?;
                Ok(rows)
            })
            .await
        })
    }

    fn add_checkpoint<'a>(&'a self, cp: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let cp = cp.clone();
            self.blocking(move |c| {
            c.execute(
                "INSERT INTO logbook_checkpoints (seq, hash, key_id, signature, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![cp.seq, cp.hash, cp.key_id, cp.signature, cp.at],
            )
            .map_err(plain)?;
            Ok(())
        })
        .await
        })
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        Box::pin(async move {
            self.blocking(|c| {
                let mut stmt = c
                .prepare(
                    "SELECT seq, hash, key_id, signature, at FROM logbook_checkpoints ORDER BY seq",
                )
                .map_err(plain)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(Checkpoint {
                            seq: r.get(0)?,
                            hash: r.get(1)?,
                            key_id: r.get(2)?,
                            signature: r.get(3)?,
                            at: r.get(4)?,
                        })
                    })
                    .map_err(plain)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(plain)?;
                Ok(rows)
            })
            .await
        })
    }
}
