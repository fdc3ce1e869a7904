//! logd: the laboratory's event logbook (ISO/IEC 17025), append-only and tamper-evident.
//!
//! Available with the `logd` feature; the `sqlite` and `postgres` features give it its
//! storage backends.
//!
//! Entries come by themselves from `announce` (a node joined, left or was lost), from
//! `system` commands, and from any node's [`LogEntry`](mqttcal_messages::LogEntry) messages on the `log` topic (datad's
//! gap reports, calibration job events); people add theirs with `add`. Each entry is stored as
//! the exact canonical text it was hashed over, with the hash of the entry before it: `verify`
//! walks the chain and names the first entry that was altered, removed or inserted.
//! Automatic entries come through a durable intake ([`mqttcal_core::intake`]) and are
//! acknowledged only once appended: what is sent while logd or its database is down is
//! recorded when they are back.
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! let store = mqttcal_store::open("sqlite:lab.db").await?;
//! let node = mqttcal_nodes::logd::node("logd", store, None).build().start(transport).await?;
//! # node.stop().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use mqttcal_core::{node, Context, NodeBuilder, NodeError};
use mqttcal_messages::References;
use mqttcal_store::{LogQuery, LogRow, LogbookStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod book;
mod chain;
mod checkpoint;
mod entries;
mod intake;
mod presence;

pub use book::{Logbook, NewEntry};
pub use chain::{verify, Canonical, Signer, Verification, GENESIS};
pub use checkpoint::{CheckpointKey, KeyError};
pub use presence::DEFAULT_GRACE;

use crate::reply::store_error;

/// The tag of a manual entry that names who sent it (`sender:alice`).
pub const SENDER_TAG: &str = "sender:";

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
    /// Files of keys that signed earlier checkpoints (after a rotation: the old
    /// `checkpoint-key`); they verify, they do not sign.
    #[serde(default)]
    pub retired_keys: Vec<std::path::PathBuf>,
    /// Seconds a node whose will the broker published may take to come back in the same
    /// run before it is reported lost (default 30).
    #[serde(default = "default_lost_after")]
    pub lost_after_s: f64,
}

fn default_lost_after() -> f64 {
    DEFAULT_GRACE.as_secs_f64()
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
            retired_keys: Vec::new(),
            lost_after_s: default_lost_after(),
        }
    }
}

impl LogdConfig {
    /// The checkpoint signer the configuration asks for, its key read from its file.
    pub fn signer(&self) -> Result<Option<Signer>, KeyError> {
        self.checkpoint_key
            .as_deref()
            .map(|path| {
                let retired = self
                    .retired_keys
                    .iter()
                    .map(|p| CheckpointKey::from_file(p))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Signer::new(
                    CheckpointKey::from_file(path)?,
                    i64::from(self.checkpoint_every.max(1)),
                )
                .retiring(retired))
            })
            .transpose()
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

/// Where a manual entry went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Added {
    /// Its position in the chain.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The logd node's capabilities.
#[derive(Debug)]
pub struct Logd {
    book: Arc<Logbook>,
    signer: Option<Signer>,
}

#[node]
impl Logd {
    /// Adds a manual entry (author, text, tags, references to a standard, job or certificate)
    #[capability]
    async fn add(&self, p: AddEntry, ctx: &Context) -> Result<Added, NodeError> {
        if p.author.trim().is_empty() {
            return Err(NodeError::invalid_params("`author` must not be empty"));
        }
        // Who sent it, hashed with the entry: in the addressed layout the broker ties it
        // to the sender's login, whatever `author` says.
        let mut tags = p.tags;
        if let Some(sender) = ctx.caller() {
            tags.retain(|t| !t.starts_with(SENDER_TAG));
            tags.push(format!("{SENDER_TAG}{sender}"));
        }
        let row = self
            .book
            .append(NewEntry {
                kind: "note".into(),
                node: None,
                author: Some(p.author),
                text: p.text,
                tags,
                refs: p.refs,
                source: None,
            })
            .await
            .map_err(store_error)?;
        Ok(Added {
            seq: row.seq,
            hash: row.hash,
        })
    }

    /// Entries by time range, node, kind, tag, text and reference, oldest first (paged)
    #[capability]
    async fn search(&self, q: LogQuery) -> Result<Vec<LogRow>, NodeError> {
        // Long search texts make a database's LIKE pattern fail (or crawl): refused here.
        for (field, text) in [
            ("text", &q.text),
            ("node", &q.node),
            ("kind", &q.kind),
            ("tag", &q.tag),
            ("reference", &q.reference),
        ] {
            if text
                .as_ref()
                .is_some_and(|t| t.chars().count() > LONGEST_SEARCH)
            {
                return Err(NodeError::invalid_params(format!(
                    "{field}: at most {LONGEST_SEARCH} characters"
                ))
                .with_details(serde_json::json!({"field": field})));
            }
        }
        self.book.store.search_log(&q).await.map_err(store_error)
    }

    /// Walks the hash chain and the signed checkpoints; names the first entry altered, removed or inserted
    #[capability]
    async fn verify(&self) -> Result<Verification, NodeError> {
        verify(self.book.store.as_ref(), self.signer.as_ref())
            .await
            .map_err(store_error)
    }
}

/// The longest text a search takes in each of its text fields.
const LONGEST_SEARCH: usize = 1000;

/// The logd node named `name`, keeping its logbook in `store` and signing a checkpoint every
/// `signer.every` entries when a signer is given. Its intake of automatic entries
/// (`announce`, `system`, `log`) is the persistent session `<name>-intake`.
pub fn node(name: &str, store: Arc<dyn LogbookStore>, signer: Option<Signer>) -> NodeBuilder {
    node_with_grace(name, store, signer, DEFAULT_GRACE)
}

/// Like [`node()`], reporting a node whose will the broker published as `lost` only when it
/// has not come back in the same run within `grace` (default [`DEFAULT_GRACE`]); until
/// then the logbook says `disconnected`, and a node back in the same run (after a broker
/// restart) is `rejoined`, not lost.
pub fn node_with_grace(
    name: &str,
    store: Arc<dyn LogbookStore>,
    signer: Option<Signer>,
    grace: std::time::Duration,
) -> NodeBuilder {
    let book = Arc::new(Logbook::new(store, signer.clone()));
    let presence = Arc::new(presence::Presence::default());
    let (judge_book, judge) = (book.clone(), presence.clone());
    NodeBuilder::new(name)
        .register(Logd {
            book: book.clone(),
            signer,
        })
        .intake(intake::intake(book, presence))
        .background(move |_ctx| async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tick.tick().await;
                for entry in judge.expired(grace) {
                    if let Err(e) = judge_book.append(entry.clone()).await {
                        tracing::warn!("logd: cannot write a loss yet: {e}");
                        judge.retry_later(&entry);
                    }
                }
            }
        })
}
