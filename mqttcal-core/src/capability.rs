//! Capabilities as `map` lists them: an id, a description, JSON Schemas of parameters and
//! result; and the strict parsing of parameters against them.

use std::collections::BTreeSet;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::NodeError;

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

/// The JSON Schema of `T`, as a JSON value.
pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

/// The names a parameter object may carry, when its schema lists them and allows no others.
pub(crate) fn allowed_names(schema: &Value) -> Option<BTreeSet<String>> {
    let props = schema.get("properties")?.as_object()?;
    match schema.get("additionalProperties") {
        None | Some(Value::Bool(false)) => Some(props.keys().cloned().collect()),
        Some(_) => None,
    }
}

/// Deserializes typed parameters from a request's fields, strictly: an unknown parameter
/// or a wrong type is `invalid_params` naming the parameter.
pub(crate) fn parse_params<P: DeserializeOwned>(
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
        // serde names a missing field only in its text, at the level of the object.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(|name| {
                if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                }
            });
        match (path.as_str(), missing) {
            (_, Some(field)) => NodeError::invalid_params(format!("missing parameter `{field}`"))
                .with_details(serde_json::json!({ "field": field })),
            (".", None) => NodeError::invalid_params(inner),
            _ => NodeError::invalid_params(format!("parameter `{path}`: {inner}"))
                .with_details(serde_json::json!({ "field": path })),
        }
    })
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
            err.message.contains("missing parameter `channel`"),
            "{}",
            err.message
        );
        assert_eq!(err.details.unwrap()["field"], "channel");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            read: Read,
        }
        let err = parse_params::<Outer>(fields(serde_json::json!({"read": {}})), None).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "read.channel");
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
