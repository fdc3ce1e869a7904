//! The hash chain: canonical entry bytes, their hash, and the walk that checks them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{LogRow, Store, StoreError};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry's content, in the order it is hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canonical {
    /// Position in the chain.
    pub seq: i64,
    /// Time written.
    pub at: f64,
    /// Kind.
    pub kind: String,
    /// Node.
    pub node: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Text.
    pub text: String,
    /// Tags.
    pub tags: Value,
    /// References.
    pub refs: Value,
    /// Hash of the entry before.
    pub prev_hash: String,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::store::hex(&Sha256::digest(bytes))
}

impl Canonical {
    /// The stored row: the canonical text, its hash and the searchable columns.
    pub fn seal(self) -> LogRow {
        let entry = serde_json::to_string(&self).expect("an entry serializes");
        let hash = sha256_hex(entry.as_bytes());
        LogRow {
            seq: self.seq,
            at: self.at,
            kind: self.kind,
            node: self.node,
            author: self.author,
            text: self.text,
            tags: self.tags,
            refs: self.refs,
            entry,
            prev_hash: self.prev_hash,
            hash,
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Verification {
    /// True when every entry checks out.
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// The first entry that does not check out.
    pub first_broken: Option<i64>,
    /// Why.
    pub problem: Option<String>,
    /// Hash of the last good entry.
    pub head: Option<String>,
}

/// Why `row` does not follow an entry whose hash is `prev` at `expected_seq`.
fn check(row: &LogRow, expected_seq: i64, prev: &str) -> Option<String> {
    if row.seq != expected_seq {
        return Some(format!(
            "entry {expected_seq} is missing (the next one stored is {})",
            row.seq
        ));
    }
    if sha256_hex(row.entry.as_bytes()) != row.hash {
        return Some("its stored bytes do not match its hash".into());
    }
    let c: Canonical = match serde_json::from_str(&row.entry) {
        Ok(c) => c,
        Err(e) => return Some(format!("its stored bytes are not an entry: {e}")),
    };
    if c.prev_hash != prev || row.prev_hash != prev {
        return Some(format!(
            "it does not follow entry {} (the chain was cut or rewritten)",
            expected_seq - 1
        ));
    }
    let differs = [
        ("seq", c.seq != row.seq),
        ("at", c.at.to_bits() != row.at.to_bits()),
        ("kind", c.kind != row.kind),
        ("node", c.node != row.node),
        ("author", c.author != row.author),
        ("text", c.text != row.text),
        ("tags", c.tags != row.tags),
        ("refs", c.refs != row.refs),
    ];
    differs
        .iter()
        .find(|(_, d)| *d)
        .map(|(name, _)| format!("column `{name}` differs from the hashed entry"))
}

/// Walks the whole chain in order, one page at a time, and names the first broken entry.
pub async fn verify(store: &dyn Store) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1000;
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    let mut entries = 0;
    loop {
        let page = store.log_page(expected - 1, PAGE).await?;
        if page.is_empty() {
            return Ok(Verification {
                ok: true,
                entries,
                first_broken: None,
                problem: None,
                head: (entries > 0).then_some(prev),
            });
        }
        for row in &page {
            if let Some(problem) = check(row, expected, &prev) {
                return Ok(Verification {
                    ok: false,
                    entries,
                    first_broken: Some(expected),
                    problem: Some(format!("entry {expected}: {problem}")),
                    head: (entries > 0).then_some(prev),
                });
            }
            prev.clone_from(&row.hash);
            expected += 1;
            entries += 1;
        }
    }
}
