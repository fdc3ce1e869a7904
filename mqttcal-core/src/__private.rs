//! What `#[node]` expands to; not a public API.

pub use std::sync::Arc;
pub use tokio::sync::RwLock;

use crate::NodeBuilder;

/// Implemented by `#[node]` for the type of the impl block.
pub trait Capabilities: Sized + Send + Sync + 'static {
    /// Adds the capabilities of `this` to `builder`.
    fn register(builder: NodeBuilder, this: Arc<RwLock<Self>>) -> NodeBuilder;
}
