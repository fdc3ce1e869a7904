//! The hash chain: canonical entry bytes, their hash, and the walk that checks them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkpoint::CheckpointKey;
use mqttcal_store::{Checkpoint, LogRow, LogbookStore, StoreError};

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
    /// The message an automatic entry was made from (sender, `epoch`/`seq` or timestamp), so
    /// that a message delivered again is recorded once; absent from manual entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Hash of the entry before.
    pub prev_hash: String,
}

use mqttcal_messages::sha256_hex;

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
    /// Signed checkpoints that matched the chain.
    pub checkpoints: u64,
    /// Entries after the last signed checkpoint (all of them when none is signed): a
    /// rewrite of these, hashes and all, shows only once a checkpoint covers them.
    pub unsigned: u64,
}

/// Who signs checkpoints, and how often; and the keys that signed earlier ones.
///
/// Keys are rotated by making a new key the signing key and keeping the old one among the
/// retired keys: checkpoints it signed still verify, new ones are signed with the new key.
///
/// ```
/// use mqttcal_nodes::logd::{CheckpointKey, Signer};
///
/// let old = CheckpointKey::new(vec![1; 32]).unwrap();
/// let new = CheckpointKey::new(vec![2; 32]).unwrap();
/// let signer = Signer::new(new, 100).retiring(vec![old]);
/// assert_eq!(signer.retired.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Signer {
    /// The key that signs new checkpoints.
    pub key: CheckpointKey,
    /// A checkpoint every this many entries.
    pub every: i64,
    /// Keys that signed earlier checkpoints: they verify, they do not sign.
    pub retired: Vec<CheckpointKey>,
}

impl Signer {
    /// Signs with `key` every `every` entries (at least 1); no retired keys.
    pub fn new(key: CheckpointKey, every: i64) -> Self {
        Self {
            key,
            every: every.max(1),
            retired: Vec::new(),
        }
    }

    /// With `retired`, the keys that signed earlier checkpoints.
    #[must_use]
    pub fn retiring(mut self, retired: Vec<CheckpointKey>) -> Self {
        self.retired = retired;
        self
    }

    /// The key (signing or retired) whose id is `id`.
    fn key_for(&self, id: &str) -> Option<&CheckpointKey> {
        std::iter::once(&self.key)
            .chain(&self.retired)
            .find(|k| k.id() == id)
    }
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

/// Why a checkpoint does not hold for the entry it signs (`hash` as stored, if any).
fn check_checkpoint(
    cp: &Checkpoint,
    hash: Option<&str>,
    signer: Option<&Signer>,
) -> Option<String> {
    if let Some(s) = signer {
        match s.key_for(&cp.key_id) {
            None => {
                return Some(format!(
                    "the checkpoint at entry {} names key {}, which is neither the signing key {} nor a retired one (forged, or signed with a key missing from `retired-keys`)",
                    cp.seq,
                    cp.key_id,
                    s.key.id()
                ))
            }
            Some(k) if !k.verifies(cp) => {
                return Some(format!(
                    "the checkpoint at entry {} does not verify with key {}: forged",
                    cp.seq, cp.key_id
                ))
            }
            Some(_) => {}
        }
    }
    match hash {
        None => Some(format!(
            "entry {} is missing, though a checkpoint signed it: the logbook was cut",
            cp.seq
        )),
        Some(h) if h != cp.hash => Some(format!(
            "entry {} is not the one its signed checkpoint names: the chain was rewritten",
            cp.seq
        )),
        Some(_) => None,
    }
}

/// Walks the whole chain in order, one page at a time, checks the signed checkpoints
/// against it, and names the first broken entry.
pub async fn verify(
    store: &dyn LogbookStore,
    signer: Option<&Signer>,
) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1000;
    // One consistent view while logd goes on writing: the head first, then the checkpoints
    // (an entry and its checkpoint are committed together, so every entry up to this head
    // has its checkpoint by now), then the chain up to that head and no further.
    let last = store.log_head().await?.map_or(0, |(seq, _)| seq);
    let checkpoints = store.checkpoints().await?;
    let mut pending = checkpoints.iter().peekable();
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    let mut entries = 0;
    let mut matched = 0;
    let mut last_signed = 0i64;
    let broken =
        |at: i64, problem: String, entries: u64, head: Option<String>, matched: u64| Verification {
            ok: false,
            entries,
            first_broken: Some(at),
            problem: Some(problem),
            head,
            checkpoints: matched,
            unsigned: 0,
        };
    loop {
        let page = store.log_page(expected - 1, PAGE).await?;
        let rows: Vec<&LogRow> = page.iter().take_while(|r| r.seq <= last).collect();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if let Some(problem) = check(row, expected, &prev) {
                return Ok(broken(
                    expected,
                    format!("entry {expected}: {problem}"),
                    entries,
                    (entries > 0).then(|| prev.clone()),
                    matched,
                ));
            }
            while let Some(cp) = pending.next_if(|cp| cp.seq <= row.seq) {
                let hash = (cp.seq == row.seq).then_some(row.hash.as_str());
                if let Some(problem) = check_checkpoint(cp, hash, signer) {
                    return Ok(broken(
                        cp.seq,
                        problem,
                        entries,
                        Some(prev.clone()),
                        matched,
                    ));
                }
                matched += 1;
                last_signed = cp.seq;
            }
            prev.clone_from(&row.hash);
            expected += 1;
            entries += 1;
        }
    }
    let head = (entries > 0).then(|| prev.clone());
    // Checkpoints beyond the end: the chain was cut after they were signed; unless their
    // entries were appended while this ran (the head has moved past them).
    if let Some(cp) = pending.next() {
        let now = store.log_head().await?.map_or(0, |(seq, _)| seq);
        if cp.seq > now || now <= last {
            let problem = check_checkpoint(cp, None, signer).unwrap_or_default();
            return Ok(broken(cp.seq, problem, entries, head, matched));
        }
    }
    // Every due checkpoint must be there: deleting them is no way around them.
    if let Some(s) = signer.filter(|s| s.every > 0) {
        let mut due = s.every;
        let have: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
        while due <= entries as i64 {
            if !have.contains(&due) {
                return Ok(broken(
                    due,
                    format!("the checkpoint at entry {due} is missing"),
                    entries,
                    head,
                    matched,
                ));
            }
            due += s.every;
        }
    }
    Ok(Verification {
        ok: true,
        entries,
        first_broken: None,
        problem: None,
        head,
        checkpoints: matched,
        unsigned: entries.saturating_sub(u64::try_from(last_signed).unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mqttcal_messages::References;

    use super::*;
    use crate::logd::{Logbook, NewEntry};

    /// `verify` sees one consistent logbook while logd goes on writing: an entry appended
    /// during the walk is never taken for a cut, its checkpoint never for a missing one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_while_entries_are_appended_finds_nothing_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let target = format!("sqlite:{}", dir.path().join("log.db").display());
        let store: Arc<dyn LogbookStore> = mqttcal_store::open(&target).await.unwrap();
        let signer = Signer::new(CheckpointKey::new(vec![3; 32]).unwrap(), 2);
        let book = Arc::new(Logbook::new(store.clone(), Some(signer.clone())));
        let writer = {
            let book = book.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    book.append(NewEntry {
                        kind: "note".into(),
                        node: None,
                        author: Some("QA".into()),
                        text: format!("entry {i}"),
                        tags: vec![],
                        refs: References::default(),
                        source: None,
                    })
                    .await
                    .unwrap();
                }
            })
        };
        let mut runs = 0;
        while !writer.is_finished() {
            let v = verify(store.as_ref(), Some(&signer)).await.unwrap();
            assert!(v.ok, "run {runs}: {v:?}");
            runs += 1;
        }
        writer.await.unwrap();
        let v = verify(store.as_ref(), Some(&signer)).await.unwrap();
        assert!(v.ok && v.entries == 400 && v.checkpoints == 200, "{v:?}");
        assert_eq!(v.unsigned, 0, "every entry is under a checkpoint");
        assert!(runs > 1, "verify ran during the writes");
        book.append(NewEntry {
            kind: "note".into(),
            node: None,
            author: None,
            text: "after the last checkpoint".into(),
            tags: vec![],
            refs: References::default(),
            source: None,
        })
        .await
        .unwrap();
        let v = verify(store.as_ref(), Some(&signer)).await.unwrap();
        assert_eq!((v.entries, v.unsigned), (401, 1), "{v:?}");
    }
}
