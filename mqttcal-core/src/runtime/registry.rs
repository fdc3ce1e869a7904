//! The capabilities of one node with their handlers, in registration order.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::capability::{allowed_names, parse_params, schema_of, CapabilityInfo};
use crate::context::Context;
use crate::error::NodeError;
use crate::transport::BoxFuture;

pub(crate) type HandlerFn = Arc<
    dyn Fn(Map<String, Value>, Context) -> BoxFuture<'static, Result<Value, NodeError>>
        + Send
        + Sync,
>;

/// A registered capability.
#[derive(Clone)]
pub(crate) struct Capability {
    pub(crate) info: CapabilityInfo,
    pub(crate) handler: HandlerFn,
    /// At most this many calls at once; `None`: only the node's limit applies.
    pub(crate) concurrency: Option<usize>,
}

impl std::fmt::Debug for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capability")
            .field("info", &self.info)
            .finish()
    }
}

/// Builds a capability from a typed async function.
pub(crate) fn make<P, R, F, Fut>(id: &str, description: &str, f: F) -> Capability
where
    P: DeserializeOwned + JsonSchema + Send + 'static,
    R: Serialize + JsonSchema + 'static,
    F: Fn(P, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, NodeError>> + Send + 'static,
{
    let params = schema_of::<P>();
    let allowed = allowed_names(&params).map(Arc::new);
    let f = Arc::new(f);
    let handler: HandlerFn = Arc::new(move |fields, ctx| {
        let parsed = parse_params::<P>(fields, allowed.as_deref());
        let f = f.clone();
        Box::pin(async move {
            let result = f(parsed?, ctx).await?;
            serde_json::to_value(result)
                .map_err(|e| NodeError::internal(format!("cannot encode the result: {e}")))
        })
    });
    Capability {
        info: CapabilityInfo {
            id: id.to_owned(),
            description: description.to_owned(),
            params,
            result: schema_of::<R>(),
        },
        handler,
        concurrency: None,
    }
}

/// The capabilities of one node, in registration order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registry {
    order: Vec<String>,
    by_id: HashMap<String, Capability>,
}

impl Registry {
    pub(crate) fn insert(&mut self, cap: Capability) {
        let id = cap.info.id.clone();
        assert!(
            !self.by_id.contains_key(&id),
            "capability `{id}` is registered twice"
        );
        self.order.push(id.clone());
        self.by_id.insert(id, cap);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Capability> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Capability> {
        self.by_id.get_mut(id)
    }

    /// The ids, in registration order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    pub(crate) fn infos(&self) -> Vec<CapabilityInfo> {
        self.order
            .iter()
            .map(|id| self.by_id[id].info.clone())
            .collect()
    }
}
