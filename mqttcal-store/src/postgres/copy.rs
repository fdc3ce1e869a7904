//! The fast path of PostgreSQL ingest: a batch of measurements as one binary `COPY`.

use std::pin::pin;

use bytes::Bytes;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, CopyInSink};

use crate::MeasurementRow;

/// The columns a binary `COPY` of measurement rows fills, in order. Available with the
/// `postgres` feature.
pub const COPY_COLUMNS: &str = "(dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)";

const TYPES: [Type; 21] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::JSON,
    Type::FLOAT8,
    Type::TEXT,
    Type::FLOAT8,
    Type::INT4,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSON,
    Type::JSON,
    Type::TEXT,
    Type::FLOAT8,
];

/// What became of a `COPY` attempt.
pub(crate) enum Copied {
    /// Every row stored, committed.
    All(u64),
    /// A row is stored already (a redelivery): nothing was written.
    Duplicate,
}

/// Streams `rows` into a `COPY ... (COPY_COLUMNS) FROM STDIN BINARY` that the caller
/// opened; returns how many rows the server took. Available with the `postgres` feature.
pub async fn write_copy(
    sink: CopyInSink<Bytes>,
    rows: &[&MeasurementRow],
    stored_at: f64,
) -> Result<u64, tokio_postgres::Error> {
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
    for r in rows {
        let values: [&(dyn ToSql + Sync); 21] = [
            &r.dedup_key,
            &r.origin,
            &r.epoch,
            &r.seq,
            &r.sent_at,
            &r.acquired,
            &r.standard,
            &r.src,
            &r.value,
            &r.unit,
            &r.nplc,
            &r.ndigits,
            &r.range,
            &r.mode,
            &r.pol,
            &r.job,
            &r.raw,
            &r.origin_uid,
            &r.environment,
            &r.payload,
            &stored_at,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await
}

/// Writes `rows` with one binary `COPY`, a statement of its own and so a transaction of
/// its own (no `BEGIN` and `COMMIT` round trips). A row whose key is stored already fails
/// the whole `COPY` (nothing is written): the caller then takes the slower path that skips
/// such rows.
pub(crate) async fn copy_rows(
    client: &mut Client,
    rows: &[&MeasurementRow],
    stored_at: f64,
) -> Result<Copied, tokio_postgres::Error> {
    let result = async {
        let sink = client
            .copy_in(&format!(
                "COPY measurements {COPY_COLUMNS} FROM STDIN BINARY"
            ))
            .await?;
        write_copy(sink, rows, stored_at).await
    }
    .await;
    match result {
        Ok(n) => Ok(Copied::All(n)),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Copied::Duplicate),
        Err(e) => Err(e),
    }
}
