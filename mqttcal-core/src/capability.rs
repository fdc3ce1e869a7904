//! Capabilities: an id, a description, JSON Schemas of parameters and result, a handler.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::error::NodeError;
use crate::transport::BoxFuture;

/// One entry of a `map` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapabilityInfo {
    /// The capability id, the `request` field of a request.
    pub id: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the parameters (the request's top-level fields).
    #[serde(default)]
    pub params: Value,
    /// JSON Schema of the reply value.
    #[serde(default)]
    pub result: Value,
}

/// Parameters of a capability that takes none.
///
/// Any parameter sent to such a capability is `invalid_params`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl JsonSchema for NoParams {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoParams".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "properties": {}, "additionalProperties": false })
    }
}

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
}

impl std::fmt::Debug for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capability")
            .field("info", &self.info)
            .finish()
    }
}

/// The JSON Schema of `T`, as a JSON value.
pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// The names a parameter object may carry, when its schema lists them and allows no others.
fn allowed_names(schema: &Value) -> Option<BTreeSet<String>> {
    let props = schema.get("properties")?.as_object()?;
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(false)) => Some(props.keys().cloned().collect()),
        Some(_) => None,
    }
}

/// Deserializes typed parameters from a request's fields, strictly: an unknown parameter
/// or a wrong type is `invalid_params` naming the parameter.
fn parse_params<P: DeserializeOwned>(
    fields: Map<String, Value>,
    allowed: Option<&BTreeSet<String>>,
) -> Result<P, NodeError> {
    if let Some(allowed) = allowed {
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(*k)) {
            let expected = if allowed.is_empty() {
                "this capability takes no parameters".to_owned()
            } else {
                let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
                format!("expected one of: {}", names.join(", "))
            };
            return Err(NodeError::invalid_params(format!(
                "unknown parameter `{unknown}` ({expected})"
            ))
            .with_details(serde_json::json!({ "field": unknown })));
        }
    }
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            NodeError::invalid_params(inner)
        } else {
            NodeError::invalid_params(format!("parameter `{path}`: {inner}"))
                .with_details(serde_json::json!({ "field": path }))
        }
    })
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

    pub(crate) fn infos(&self) -> Vec<CapabilityInfo> {
        self.order
            .iter()
            .map(|id| self.by_id[id].info.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Read {
        channel: u8,
        #[serde(default)]
        nplc: Option<f64>,
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_unknown_parameter_is_named() {
        let allowed = allowed_names(&schema_of::<Read>());
        let err = parse_params::<Read>(
            fields(serde_json::json!({"channel": 1, "NPLCx": 2})),
            allowed.as_ref(),
        )
        .unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::InvalidParams);
        assert!(err.message.contains("`NPLCx`"), "{}", err.message);
    }

    #[test]
    fn a_wrong_type_names_the_parameter() {
        let allowed = allowed_names(&schema_of::<Read>());
        let err = parse_params::<Read>(
            fields(serde_json::json!({"channel": "one"})),
            allowed.as_ref(),
        )
        .unwrap_err();
        assert!(
            err.message.starts_with("parameter `channel`:"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_missing_parameter_is_named() {
        let err = parse_params::<Read>(fields(serde_json::json!({})), None).unwrap_err();
        assert!(
            err.message.contains("missing field `channel`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn no_params_refuses_any_parameter() {
        let allowed = allowed_names(&schema_of::<NoParams>());
        assert!(parse_params::<NoParams>(Map::new(), allowed.as_ref()).is_ok());
        let err = parse_params::<NoParams>(fields(serde_json::json!({"x": 1})), allowed.as_ref())
            .unwrap_err();
        assert!(
            err.message.contains("takes no parameters"),
            "{}",
            err.message
        );
    }

    #[test]
    fn free_form_parameters_are_not_filtered() {
        assert_eq!(allowed_names(&schema_of::<Map<String, Value>>()), None);
    }
}
