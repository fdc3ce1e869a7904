//! Storage failures as replies: the conversion lives here, at the node's edge, so the store
//! knows nothing of the wire.

use mqttcal_core::{error_chain, NodeError};
use mqttcal_store::StoreError;

/// Bad input is `invalid_params`: the store's message, or the database's refusal of a value
/// (a NUL byte for PostgreSQL) with its cause; anything else is `internal`, with the whole
/// chain of causes in the message.
pub(crate) fn store_error(e: StoreError) -> NodeError {
    match e {
        StoreError::Invalid(m) => NodeError::invalid_params(m),
        e @ StoreError::Rejected(_) => NodeError::invalid_params(error_chain(&e)),
        other => NodeError::internal(error_chain(&other)),
    }
}
