//! A failed request, from the caller's side.

use std::time::Duration;

use crate::envelope::EncodeError;
use crate::error::NodeError;
use crate::transport::TransportError;

/// A dispatched request passes at most this many nodes.
pub const MAX_HOPS: usize = 4;

/// A failed request, from the caller's side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply came in time.
    #[error("no reply from `{to}` to `{capability}` within {} s", timeout.as_secs_f64())]
    Timeout {
        /// The node asked.
        to: String,
        /// The capability asked for.
        capability: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The node answered with an error.
    #[error("`{from}` answered with error {}: {}", error.code, error.message)]
    Remote {
        /// The node that answered.
        from: String,
        /// Its error.
        error: NodeError,
    },
    /// The parameters are not a JSON object.
    #[error("parameters must serialize to a JSON object")]
    BadParams,
    /// A parameter or data field uses a reserved top-level name.
    #[error("`{0}` is a reserved name and cannot be a parameter or data field")]
    Reserved(String),
    /// The request passed too many nodes.
    #[error("a dispatched request passes at most {MAX_HOPS} nodes")]
    TooManyHops,
    /// The message could not be encoded.
    #[error("cannot encode the message")]
    Encode(#[source] EncodeError),
    /// The transport failed.
    #[error("cannot publish the message")]
    Transport(#[source] TransportError),
    /// The node's outbox could not keep the message (a full disk, a file that went
    /// away): it was not sent.
    #[error("cannot keep the message in the outbox, so it was not sent")]
    Outbox(#[source] std::io::Error),
}

impl From<CallError> for NodeError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout { .. } => NodeError::timeout(e.to_string()),
            CallError::Remote { error, .. } => error,
            CallError::BadParams | CallError::Reserved(_) => {
                NodeError::invalid_params(e.to_string())
            }
            other => NodeError::internal(crate::error::error_chain(&other)),
        }
    }
}
