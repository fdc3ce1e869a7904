//! SQLite: the logbook.

use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;

use super::logbook::{Checkpoint, LogQuery, LogRow};
use super::sqlite::SqliteStore;
use super::StoreError;

fn plain(e: rusqlite::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

const COLUMNS: &str = "seq, at, kind, node, author, text, tags, refs, entry, prev_hash, hash";

fn json(text: String) -> rusqlite::Result<Value> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

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

impl SqliteStore {
    pub(super) async fn lite_log_head(&self) -> Result<Option<(i64, String)>, StoreError> {
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
    }

    pub(super) async fn lite_append_log(&self, e: &LogRow) -> Result<(), StoreError> {
        let e = e.clone();
        self.blocking(move |c| {
            c.execute(
                &format!("INSERT INTO logbook ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![e.seq, e.at, e.kind, e.node, e.author, e.text, e.tags.to_string(), e.refs.to_string(), e.entry, e.prev_hash, e.hash],
            )
            .map_err(|err| match &err {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Invalid(format!(
                        "logbook entry {} exists already: is a second logd writing?",
                        e.seq
                    ))
                }
                _ => plain(err),
            })?;
            Ok(())
        })
        .await
    }

    pub(super) async fn lite_search_log(&self, q: &LogQuery) -> Result<Vec<LogRow>, StoreError> {
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
    }

    pub(super) async fn lite_log_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
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
    }

    pub(super) async fn lite_add_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
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
    }

    pub(super) async fn lite_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
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
    }
}
