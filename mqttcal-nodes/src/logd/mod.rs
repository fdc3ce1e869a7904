//! logd: the laboratory's event logbook (ISO/IEC 17025), append-only and tamper-evident.
//!
//! Entries come by themselves from `announce` (a node joined, left or was lost), from
//! `system` commands, and from any node's simple messages on the `log` topic (datad's gap
//! reports, calibration job events); people add theirs with `add`. Each entry is stored as
//! the exact canonical text it was hashed over, with the hash of the entry before it: `verify`
//! walks the chain and names the first entry that was altered, removed or inserted.
//! Automatic entries come through a persistent session and are acknowledged only once
//! appended: what is sent while logd or its database is down is recorded when they are back.
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = Arc::from(mqttcal_nodes::store::open("sqlite:lab.db").await?);
//! let node = mqttcal_nodes::logd::start("logd", "", store, None, transport)
//!     .await?
//!     .build()
//!     .start(transport)
//!     .await?;
//! # Ok(()) }
//! ```

use crate::reply::store_error;
use std::sync::Arc;

use mqttcal_core::transport::Transport;
use mqttcal_core::{Envelope, NoParams, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

mod chain;
mod checkpoint;
mod intake;

pub use chain::{verify, Canonical, Signer, Verification, GENESIS};
pub use checkpoint::CheckpointKey;

use mqttcal_messages::{LabMessage, LogEntry, References};
use mqttcal_store::{LogQuery, LogRow, LogbookStore, StoreError};

/// The topic on which nodes send entries for the logbook: simple messages whose fields are
/// a [`LogEntry`].
pub const LOG_TOPIC: &str = match LogEntry::TOPIC {
    Some(t) => t,
    None => "log",
};

/// The `logd` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogdConfig {
    /// `postgres://...` or `sqlite:PATH` (default `sqlite:mqttcal.db`; `MQTTCAL_DATABASE_URL`
    /// overrides it).
    #[serde(default = "default_database")]
    pub database: String,
    /// A file holding the key that signs checkpoints (at least 32 bytes); keep it outside
    /// the database, readable by logd only. Without it no checkpoints are signed.
    #[serde(default)]
    pub checkpoint_key: Option<std::path::PathBuf>,
    /// A signed checkpoint every this many entries (default 100).
    #[serde(default = "default_every")]
    pub checkpoint_every: u32,
}

fn default_every() -> u32 {
    100
}

fn default_database() -> String {
    "sqlite:mqttcal.db".into()
}

impl Default for LogdConfig {
    fn default() -> Self {
        Self {
            database: default_database(),
            checkpoint_key: None,
            checkpoint_every: default_every(),
        }
    }
}

/// A manual entry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEntry {
    /// Who writes it.
    pub author: String,
    /// The text.
    pub text: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What it refers to.
    #[serde(default)]
    pub refs: References,
}

/// The one writer of the chain: entries get consecutive `seq`s and each the hash of the one
/// before.
#[derive(Debug)]
pub struct Logbook {
    store: Arc<dyn LogbookStore>,
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

    /// Signs a checkpoint of `row` when one is due; a failure is logged, and `verify` will
    /// name the missing checkpoint.
    async fn checkpoint(&self, row: &LogRow) {
        let Some(s) = self.signer.as_ref().filter(|s| s.every > 0) else {
            return;
        };
        if row.seq % s.every != 0 {
            return;
        }
        let cp = s.key.sign(row.seq, &row.hash, row.at);
        if let Err(e) = self.store.add_checkpoint(&cp).await {
            tracing::error!(
                "logd: cannot store the checkpoint at entry {}: {e}",
                row.seq
            );
        }
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
        match self.store.append_log(&row).await {
            Ok(()) => {
                *head = Some((row.seq, row.hash.clone()));
                self.checkpoint(&row).await;
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

/// The automatic entry for a message on `announce`, if any.
fn announced(env: &Envelope) -> Option<NewEntry> {
    let (kind, text) = match env.message.as_deref()? {
        "hello" => ("joined", format!("{} joined", env.from)),
        "bye" if env.fields.get("reason").and_then(Value::as_str) == Some("lost") => (
            "lost",
            format!("{} was lost (its connection dropped)", env.from),
        ),
        "bye" => ("left", format!("{} left", env.from)),
        _ => return None,
    };
    Some(NewEntry {
        kind: kind.into(),
        node: Some(env.from.clone()),
        author: None,
        text,
        tags: vec!["announce".into()],
        refs: References::default(),
        source: None,
    })
}

/// The automatic entry for a `system` command.
fn system_command(env: &Envelope) -> Option<NewEntry> {
    let cmd = env.cmd.as_deref()?;
    Some(NewEntry {
        kind: "system".into(),
        node: Some(env.from.clone()),
        author: None,
        text: format!("{} sent `{cmd}` to {}", env.from, env.to),
        tags: vec!["system".into()],
        refs: References::default(),
        source: None,
    })
}

/// An entry a node sent on the `log` topic.
fn logged(env: &Envelope) -> Result<NewEntry, String> {
    let e: LogEntry =
        serde_json::from_value(Value::Object(env.fields.clone())).map_err(|e| e.to_string())?;
    e.validate().map_err(|e| e.to_string())?;
    Ok(NewEntry {
        kind: e.kind,
        node: Some(env.from.clone()),
        author: None,
        text: e.text,
        tags: e.tags,
        refs: e.refs,
        source: None,
    })
}

/// Starts logd's intake of automatic entries (`announce`, `system` and `log`, on the
/// persistent session `{name}-intake`) and returns the logd node named `name` (`add`,
/// `search`, `verify`), to be started on the same broker. The logbook is kept in `store`;
/// with `signer`, a checkpoint is signed every `signer.every` entries.
pub async fn start(
    name: &str,
    prefix: &str,
    store: Arc<dyn LogbookStore>,
    signer: Option<Signer>,
    transport: &dyn Transport,
) -> Result<NodeBuilder, NodeError> {
    let verify_signer = signer.clone();
    let book = Arc::new(Logbook::new(store.clone(), signer));
    let intake = intake::Intake::start(&format!("{name}-intake"), prefix, book.clone(), transport)
        .await
        .map_err(|e| NodeError::internal(mqttcal_core::error_chain(&e)))?;
    let intake = Arc::new(Mutex::new(Some(intake)));
    let (s1, s2) = (store.clone(), store);
    let b1 = book;
    Ok(NodeBuilder::new(name)
        .prefix(prefix)
        .capability(
            "add",
            "Adds a manual entry (author, text, tags, references to a standard, job or certificate)",
            move |p: AddEntry, _| {
                let book = b1.clone();
                async move {
                    if p.author.trim().is_empty() {
                        return Err(NodeError::invalid_params("`author` must not be empty"));
                    }
                    let row = book
                        .append(NewEntry {
                            kind: "note".into(),
                            node: None,
                            author: Some(p.author),
                            text: p.text,
                            tags: p.tags,
                            refs: p.refs,
                            source: None,
                        })
                        .await
                        .map_err(store_error)?;
                    Ok(json!({"seq": row.seq, "hash": row.hash}))
                }
            },
        )
        .capability(
            "search",
            "Entries by time range, node, kind, tag, text and reference, oldest first (paged)",
            move |q: LogQuery, _| {
                let store = s1.clone();
                async move { store.search_log(&q).await.map_err(store_error) }
            },
        )
        .capability(
            "verify",
            "Walks the hash chain and the signed checkpoints; names the first entry altered, removed or inserted",
            move |_: NoParams, _| {
                let store = s2.clone();
                let signer = verify_signer.clone();
                async move { verify(store.as_ref(), signer.as_ref()).await.map_err(store_error) }
            },
        )
        .on_stop(move |_| async move {
            if let Some(i) = intake.lock().await.take() {
                i.stop().await;
            }
        }))
}
