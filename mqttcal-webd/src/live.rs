//! What webd hears on the data topics, handed to every page that streams it.

use std::sync::Arc;

use mqttcal_core::{envelope::Envelope, topics, NodeBuilder};
use tokio::sync::broadcast;

/// The topics webd streams to pages (read-only).
pub(crate) const TOPICS: [&str; 3] = [topics::ANNOUNCE, topics::MEAS, "progress"];

/// How many messages a page's stream may fall behind before it loses the oldest (and is
/// told how many).
pub(crate) const BACKLOG: usize = 4096;

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
                    if let Ok(json) = serde_json::to_string(&env) {
                        let _ = tx.send(Heard {
                            topic,
                            json: json.into(),
                        });
                    }
                }
                std::future::ready(())
            });
        }
        builder
    }
}
