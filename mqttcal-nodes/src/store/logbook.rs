//! Logbook entries as stored: each keeps the exact bytes it was hashed over and the hash of
//! the entry before it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub(crate) fn page(&self) -> Result<(i64, i64), super::StoreError> {
        super::page(self.limit, self.offset, 100)
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
