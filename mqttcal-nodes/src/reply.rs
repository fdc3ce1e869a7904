//! Storage failures as replies: the conversion lives here, at the node's edge, so the store
//! knows nothing of the wire.

use mqttcal_core::{error_chain, NodeError};
use mqttcal_store::StoreError;

/// Bad input is `invalid_params` with the store's message; anything else is `internal`, with
/// the whole chain of causes in the message.
pub(crate) fn store_error(e: StoreError) -> NodeError {
    match e {
        StoreError::Invalid(m) => NodeError::invalid_params(m),
        other => NodeError::internal(error_chain(&other)),
    }
}
