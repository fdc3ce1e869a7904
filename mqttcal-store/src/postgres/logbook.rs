//! PostgreSQL: the logbook.

use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use super::{plain, PostgresStore};
use crate::logbook::second_writer;
use crate::{BoxFuture, Checkpoint, LogQuery, LogRow, LogbookStore, StoreError};

const COLUMNS: &str = "seq, at, kind, node, author, text, tags, refs, entry, prev_hash, hash";

fn row_of(r: &Row) -> LogRow {
    LogRow {
        seq: r.get(0),
        at: r.get(1),
        kind: r.get(2),
        node: r.get(3),
        author: r.get(4),
        text: r.get(5),
        tags: r.get(6),
        refs: r.get(7),
        entry: r.get(8),
        prev_hash: r.get(9),
        hash: r.get(10),
    }
}

impl LogbookStore for PostgresStore {
    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
                .query_opt(
                    "SELECT seq, hash FROM logbook ORDER BY seq DESC LIMIT 1",
                    &[],
                )
                .await
                .map_err(plain)?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn append_log<'a>(
        &'a self,
        e: &'a LogRow,
        checkpoint: Option<&'a Checkpoint>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let insert = format!("INSERT INTO logbook ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
            let entry: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
                &e.seq,
                &e.at,
                &e.kind,
                &e.node,
                &e.author,
                &e.text,
                &e.tags,
                &e.refs,
                &e.entry,
                &e.prev_hash,
                &e.hash,
            ];
            let done = match checkpoint {
                None => c.execute(&insert, &entry).await,
                // One statement: both rows or neither (the foreign key is checked at its end).
                Some(cp) => {
                    let both = format!(
                        "WITH entry AS ({insert} RETURNING seq) INSERT INTO logbook_checkpoints (seq, hash, key_id, signature, at) SELECT seq, $12, $13, $14, $15 FROM entry"
                    );
                    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                        entry.to_vec();
                    let extra: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                        [&cp.hash, &cp.key_id, &cp.signature, &cp.at];
                    params.extend(extra);
                    c.execute(&both, &params).await
                }
            };
            done.map_err(|err| match err.code() {
                Some(c) if *c == SqlState::UNIQUE_VIOLATION => second_writer(e.seq),
                _ => plain(err),
            })?;
            Ok(())
        })
    }

    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>> {
        Box::pin(async move {
            let (limit, offset) = q.page()?;
            let text = q.text_pattern();
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM logbook
                     WHERE ($1::float8 IS NULL OR at >= $1) AND ($2::float8 IS NULL OR at < $2)
                       AND ($3::text IS NULL OR node = $3) AND ($4::text IS NULL OR kind = $4)
                       AND ($5::text IS NULL OR tags @> jsonb_build_array($5::text))
                       AND ($6::text IS NULL OR lower(text) LIKE $6)
                       AND ($7::text IS NULL OR $7 IN (refs->>'standard', refs->>'job', refs->>'certificate'))
                     ORDER BY seq LIMIT $8 OFFSET $9"
                ),
                &[&q.since, &q.until, &q.node, &q.kind, &q.tag, &text, &q.reference, &limit, &offset],
            )
            .await
            .map_err(plain)?;
            Ok(rows.iter().map(row_of).collect())
        })
    }

    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
                .query(
                    &format!("SELECT {COLUMNS} FROM logbook WHERE seq > $1 ORDER BY seq LIMIT $2"),
                    &[&after, &limit],
                )
                .await
                .map_err(plain)?;
            Ok(rows.iter().map(row_of).collect())
        })
    }

    fn add_checkpoint<'a>(&'a self, cp: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            c.execute(
            "INSERT INTO logbook_checkpoints (seq, hash, key_id, signature, at) VALUES ($1, $2, $3, $4, $5)",
            &[&cp.seq, &cp.hash, &cp.key_id, &cp.signature, &cp.at],
        )
        .await
        .map_err(plain)?;
            Ok(())
        })
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
                .query(
                    "SELECT seq, hash, key_id, signature, at FROM logbook_checkpoints ORDER BY seq",
                    &[],
                )
                .await
                .map_err(plain)?;
            Ok(rows
                .iter()
                .map(|r| Checkpoint {
                    seq: r.get(0),
                    hash: r.get(1),
                    key_id: r.get(2),
                    signature: r.get(3),
                    at: r.get(4),
                })
                .collect())
        })
    }
}
