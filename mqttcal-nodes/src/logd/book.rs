//! The one writer of the chain: entries get consecutive `seq`s and each the hash of the one
//! before; checkpoints are signed as they fall due.

use std::sync::Arc;

use mqttcal_messages::References;
use mqttcal_store::{Checkpoint, LogRow, LogbookStore, StoreError};
use serde_json::json;
use tokio::sync::Mutex;

use super::chain::{Canonical, Signer, GENESIS};

/// The one writer of the chain: entries get consecutive `seq`s and each the hash of the one
/// before.
#[derive(Debug)]
pub struct Logbook {
    pub(super) store: Arc<dyn LogbookStore>,
    head: Mutex<Option<(i64, String)>>,
    signer: Option<Signer>,
}

/// A new entry's content.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Kind.
    pub kind: String,
    /// Node.
    pub node: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// Text.
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
    /// References.
    pub refs: References,
    /// The message it was made from, for automatic entries (see [`Canonical::source`]).
    pub source: Option<String>,
}

impl Logbook {
    /// The logbook kept in `store`, signing checkpoints with `signer` if given.
    pub fn new(store: Arc<dyn LogbookStore>, signer: Option<Signer>) -> Self {
        Self {
            store,
            head: Mutex::new(None),
            signer,
        }
    }

    /// The checkpoint of `row` when one is due.
    fn checkpoint(&self, row: &LogRow) -> Option<Checkpoint> {
        let s = self.signer.as_ref().filter(|s| s.every > 0)?;
        (row.seq % s.every == 0).then(|| s.key.sign(row.seq, &row.hash, row.at))
    }

    /// Appends an entry; returns it as stored.
    pub async fn append(&self, e: NewEntry) -> Result<LogRow, StoreError> {
        if e.text.trim().is_empty() {
            return Err(StoreError::Invalid("`text` must not be empty".into()));
        }
        let mut head = self.head.lock().await;
        let (last, prev) = match head.clone() {
            Some(h) => h,
            None => self
                .store
                .log_head()
                .await?
                .unwrap_or_else(|| (0, GENESIS.to_owned())),
        };
        let row = Canonical {
            seq: last + 1,
            at: mqttcal_core::clock::Timestamp::now().as_secs_f64(),
            kind: e.kind,
            node: e.node,
            author: e.author,
            text: e.text,
            tags: json!(e.tags),
            refs: serde_json::to_value(&e.refs).unwrap_or_else(|_| json!({})),
            source: e.source,
            prev_hash: prev,
        }
        .seal();
        let checkpoint = self.checkpoint(&row);
        match self.store.append_log(&row, checkpoint.as_ref()).await {
            Ok(()) => {
                *head = Some((row.seq, row.hash.clone()));
                Ok(row)
            }
            Err(err) => {
                // Read the head again next time: another writer may have moved it.
                *head = None;
                Err(err)
            }
        }
    }
}
