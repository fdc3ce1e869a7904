//! What `#[node]` expands to; not a public API.

pub use std::sync::Arc;
pub use tokio::sync::RwLock;

use crate::NodeBuilder;

/// Implemented by `#[node]` for the type of the impl block.
pub trait Capabilities: Sized + Send + Sync + 'static {
    /// Adds the capabilities of `this` to `builder`.
    fn register(builder: NodeBuilder, this: Arc<RwLock<Self>>) -> NodeBuilder;
}

/// The parameters of a capability: what `NodeBuilder::capability` needs of them, under one
/// name, so a type that lacks a derive gets one message that says what to add.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parameters of a capability: it needs `#[derive(serde::Deserialize, schemars::JsonSchema)]`",
    label = "the parameters of this capability"
)]
pub trait CapabilityParams:
    serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static
{
}

impl<T: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static> CapabilityParams
    for T
{
}

/// `builder.capability(...)` for parameters checked as [`CapabilityParams`].
pub fn capability<P, R, F, Fut>(
    builder: NodeBuilder,
    id: &str,
    description: &str,
    handler: F,
) -> NodeBuilder
where
    P: CapabilityParams,
    R: serde::Serialize + schemars::JsonSchema + 'static,
    F: Fn(P, crate::Context) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, crate::NodeError>> + Send + 'static,
{
    builder.capability(id, description, handler)
}
