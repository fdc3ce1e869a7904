//! Storage failures, with their causes kept.

/// The cause of a storage failure: the database driver's own error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure.
///
/// The driver's error is kept as the [`source`](std::error::Error::source); print the whole
/// chain to show it. Bad input is [`StoreError::Invalid`], which a node answers as
/// `invalid_params`; the rest are the database's trouble.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open the database `{target}`")]
    Open {
        /// Where (the URL without its password).
        target: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The database was written by a newer mqttcal.
    #[error("the database schema is version {found}, newer than this mqttcal knows ({known}): upgrade mqttcal before opening it")]
    NewerSchema {
        /// Version found.
        found: i64,
        /// Version this build knows.
        known: i64,
    },
    /// A statement failed.
    #[error("database error")]
    Query(#[source] BoxError),
    /// The database refused the data for good: a value it cannot hold (a NUL byte in a
    /// text), a constraint the data breaks. Trying again cannot help.
    #[error("the database refused the data")]
    Rejected(#[source] BoxError),
    /// A stored value could not be read back as its type.
    #[error("stored {what} cannot be read")]
    Corrupt {
        /// Which value, e.g. `budget of result 7`.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Bad input: a query parameter or a record that makes no sense; the message names the
    /// field.
    #[error("{0}")]
    Invalid(String),
    /// `target` names no database this store can keep data in for good.
    #[error("cannot use the database `{target}`: {problem}")]
    Target {
        /// The database asked for.
        target: String,
        /// Why not.
        problem: String,
    },
    /// This build was compiled without the backend `target` needs.
    #[error("`{target}` needs the `{feature}` backend, which this build leaves out (cargo feature `{feature}` of mqttcal-store)")]
    Unsupported {
        /// The database asked for.
        target: String,
        /// The cargo feature that adds its backend.
        feature: &'static str,
    },
}

impl StoreError {
    /// A failed statement, its cause kept.
    pub fn query(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Query(Box::new(e))
    }

    /// True when trying again later may succeed: the database was unreachable or a
    /// statement failed for a reason of its own, not because of the data.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Open { .. } | Self::Query(_))
    }
}

impl From<mqttcal_messages::Invalid> for StoreError {
    fn from(e: mqttcal_messages::Invalid) -> Self {
        Self::Invalid(e.0)
    }
}
