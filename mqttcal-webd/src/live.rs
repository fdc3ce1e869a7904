//! What webd hears on the data topics, handed to every page that streams it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mqttcal_core::{envelope::Envelope, topics, NodeBuilder};
use tokio::sync::broadcast;

/// The topics webd streams to pages (read-only).
pub(crate) const TOPICS: [&str; 3] = [topics::ANNOUNCE, topics::MEAS, "progress"];

/// How many messages a page's stream may fall behind before it loses the oldest (and is
/// told how many): a second of readings at 1,000 a second.
pub(crate) const BACKLOG: usize = 1024;

/// The largest message passed on to pages (readings, announcements and progress are far
/// smaller); larger ones are counted and left out, so the backlog holds 16 MiB at most.
pub(crate) const LARGEST: usize = 16 * 1024;

/// Messages left out for their size, since the start.
static TOO_LARGE: AtomicU64 = AtomicU64::new(0);

/// One message heard, encoded once for every stream.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    /// Its topic (one of [`TOPICS`]).
    pub(crate) topic: &'static str,
    /// The message as JSON.
    pub(crate) json: Arc<str>,
}

/// The fan-out of heard messages to the pages' streams.
#[derive(Debug, Clone)]
pub(crate) struct Hub(broadcast::Sender<Heard>);

impl Hub {
    pub(crate) fn new() -> Self {
        Self(broadcast::channel(BACKLOG).0)
    }

    /// A stream's receiver.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Heard> {
        self.0.subscribe()
    }

    /// `builder` with handlers that pass the data topics on.
    pub(crate) fn listen(&self, mut builder: NodeBuilder) -> NodeBuilder {
        for topic in TOPICS {
            let tx = self.0.clone();
            builder = builder.on_topic(topic, move |env: Envelope, _ctx| {
                // Nobody streaming: nothing to encode.
                if tx.receiver_count() > 0 {
                    match serde_json::to_string(&env) {
                        Ok(json) if json.len() <= LARGEST => {
                            let _ = tx.send(Heard {
                                topic,
                                json: json.into(),
                            });
                        }
                        Ok(json) => {
                            let n = TOO_LARGE.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_power_of_two() {
                                tracing::warn!(
                                    topic,
                                    from = %env.from.escape_debug(),
                                    bytes = json.len(),
                                    too_large = n,
                                    "a message over {LARGEST} bytes is not passed on to the pages"
                                );
                            }
                        }
                        Err(_) => {}
                    }
                }
                std::future::ready(())
            });
        }
        builder
    }
}
