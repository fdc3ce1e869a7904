//! Logbook entries as stored: each keeps the exact bytes it was hashed over and the hash of
//! the entry before it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BoxFuture, StoreError};

/// One stored logbook entry. The columns other than `entry` and `hash` are for searching;
/// `entry` is the canonical text that `hash` covers, and `verify` checks they agree.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LogRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written (s since the Unix epoch).
    pub at: f64,
    /// What it records: `joined`, `left`, `lost`, `system`, `job`, `gap`, `note`, ...
    pub kind: String,
    /// The node it is about or came from.
    pub node: Option<String>,
    /// Who wrote it (manual entries).
    pub author: Option<String>,
    /// The text.
    pub text: String,
    /// Tags.
    pub tags: Value,
    /// References: `standard`, `job`, `certificate`.
    pub refs: Value,
    /// The canonical entry (JSON text) the hash covers.
    pub entry: String,
    /// SHA-256 (hex) of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of `entry`.
    pub hash: String,
}

/// A signed checkpoint of the logbook: the hash of entry `seq`, signed with a key kept
/// outside the database, so a chain rewritten or cut below it is found.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Checkpoint {
    /// The entry.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// Which key signed (first 16 hex digits of the key's SHA-256).
    pub key_id: String,
    /// HMAC-SHA-256 of the checkpoint, hex.
    pub signature: String,
    /// When it was signed.
    pub at: f64,
}

/// What to select from the logbook.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// From this time (inclusive).
    #[serde(default)]
    pub since: Option<f64>,
    /// Up to this time (exclusive).
    #[serde(default)]
    pub until: Option<f64>,
    /// Entries about or from this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Entries with this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Entries with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Entries whose text contains this (case-insensitive).
    #[serde(default)]
    pub text: Option<String>,
    /// Entries referring to this standard, job or certificate.
    #[serde(default)]
    pub reference: Option<String>,
    /// At most this many (default 100, at most 10000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
}

impl LogQuery {
    /// `limit` (default 100) and `offset`, checked.
    pub(crate) fn page(&self) -> Result<(i64, i64), StoreError> {
        crate::page::page(self.limit, self.offset, 100)
    }

    /// The `text` filter as a LIKE pattern, wildcards in it escaped.
    pub(crate) fn text_pattern(&self) -> Option<String> {
        self.text.as_ref().map(|t| {
            let escaped = t
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
    }
}

/// Where the logbook is kept: one writer appends, anyone searches and walks the chain.
pub trait LogbookStore: Send + Sync + std::fmt::Debug {
    /// The newest entry: its `seq` and hash.
    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>>;

    /// Appends an entry (its `seq` must be new: one writer), with the checkpoint that signs
    /// it when one is due, in one transaction: a reader never sees a due checkpoint
    /// missing, and a failure stores neither.
    fn append_log<'a>(
        &'a self,
        e: &'a LogRow,
        checkpoint: Option<&'a Checkpoint>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Entries matching `q`, oldest first.
    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>>;

    /// Up to `limit` entries after `seq`, in order (for walking the chain).
    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>>;

    /// Stores a signed checkpoint.
    fn add_checkpoint<'a>(&'a self, c: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every checkpoint, by entry.
    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>>;
}

/// Why an entry cannot be appended: its `seq` is taken.
pub(crate) fn second_writer(seq: i64) -> StoreError {
    StoreError::Invalid(format!(
        "logbook entry {seq} exists already: is a second logd writing?"
    ))
}
