//! # mqttcal-store
//!
//! Storage of a calibration lab: measurements, the ISO/IEC 17025 records (equipment
//! register, calibration histories, results, certificates), jobs with their measurement
//! configurations, and the logbook. One trait per concern ([`MeasurementStore`],
//! [`RecordStore`], [`JobStore`], [`LogbookStore`]); [`Store`] is all four, which each
//! backend implements once. Versioned migrations are applied when a database is opened.
//! Storage knows no MQTT: the nodes turn messages into rows and errors into replies.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mqttcal_store::StoreError> {
//! use mqttcal_store::{open, MeasurementQuery};
//! let store = open("sqlite:lab.db").await?; // or "postgres://user@host/db"
//! let q = MeasurementQuery { standard: Some("Z1".into()), ..Default::default() };
//! let rows = store.query_measurements(&q).await?;
//! # let _ = rows;
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | [`sqlite::SqliteStore`]: a database file, bundled SQLite |
//! | `postgres` (default) | [`postgres::PostgresStore`]: PostgreSQL through tokio-postgres, binary `COPY` ingest |

// Built without a backend (a lab bringing its own), the helpers the backends share go
// unused.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod error;
mod jobs;
mod json_text;
mod logbook;
mod measurements;
mod page;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::{BoxError, StoreError};
pub use jobs::{ConfigRecord, JobQuery, JobStore, StoredJob};
pub use json_text::JsonText;
pub use logbook::{Checkpoint, LogQuery, LogRow, LogbookStore};
pub use measurements::{
    MeasurementQuery, MeasurementRow, MeasurementStore, StreamEnd, StreamHead, StreamSummary,
};
pub use records::{RecordStore, StoredResult};

/// A boxed future, so the store traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The schema version this build knows.
pub const SCHEMA_VERSION: i64 = 8;

/// A whole lab database: every concern, plus its schema version.
pub trait Store: MeasurementStore + RecordStore + JobStore + LogbookStore {
    /// The schema version of the database.
    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>>;
}

/// Opens `target`: `postgres://...` (PostgreSQL) or `sqlite:PATH` / a plain path (SQLite),
/// applying pending migrations. A backend this build leaves out is
/// [`StoreError::Unsupported`]; a target that would keep nothing for good (an in-memory
/// SQLite database, an empty path) or that names another kind of database is
/// [`StoreError::Target`].
pub async fn open(target: &str) -> Result<Arc<dyn Store>, StoreError> {
    check_target(target)?;
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(postgres::PostgresStore::connect(target).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::Unsupported {
            target: redact(target),
            feature: "postgres",
        });
    }
    let path = target.strip_prefix("sqlite:").unwrap_or(target);
    #[cfg(feature = "sqlite")]
    return Ok(Arc::new(sqlite::SqliteStore::open(path).await?));
    #[cfg(not(feature = "sqlite"))]
    Err(StoreError::Unsupported {
        target: path.to_owned(),
        feature: "sqlite",
    })
}

/// Refuses what [`open`] must not take for a database file.
fn check_target(target: &str) -> Result<(), StoreError> {
    let refuse = |problem: &str| {
        Err(StoreError::Target {
            target: redact(target),
            problem: problem.to_owned(),
        })
    };
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        return Ok(());
    }
    let path = match target.strip_prefix("sqlite:") {
        Some(p) => p,
        None => {
            // `mysql:x`, `http://...`: a scheme this store does not know, not a file name.
            let scheme = target.split_once(':').map(|(s, _)| s);
            if scheme.is_some_and(|s| {
                s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
            }) {
                return refuse("unknown kind of database: use postgres://... or sqlite:PATH");
            }
            target
        }
    };
    if path.trim().is_empty() {
        return refuse("no file name after `sqlite:`");
    }
    if path == ":memory:" || path.starts_with("file:") || path.contains('?') {
        return refuse("an SQLite database in memory or with URI parameters keeps nothing for good: give a file path");
    }
    Ok(())
}

/// `target` with any password removed, for messages.
pub fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &target[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &target[..s + 3], &target[at..]),
                None => target.to_owned(),
            }
        }
        _ => target.to_owned(),
    }
}

/// Now, in seconds since the Unix epoch.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_that_keep_nothing_or_name_other_databases_are_refused() {
        for bad in [
            "sqlite:",
            "sqlite::memory:",
            ":memory:",
            "mysql:x",
            "http://h/db",
            "sqlite:/p/ok.db?mode=ro",
            "sqlite:file:x.db",
        ] {
            assert!(
                matches!(
                    super::check_target(bad),
                    Err(super::StoreError::Target { .. })
                ),
                "{bad}"
            );
        }
        for good in [
            "sqlite:lab.db",
            "lab.db",
            "/var/lib/mqttcal/lab.db",
            "postgres://u@h/db",
            "postgresql://h/db",
            "./a:b.db",
        ] {
            assert!(super::check_target(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("lab.db"), "lab.db");
    }
}
