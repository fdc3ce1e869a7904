//! Binary values, which travel base64-encoded inside JSON messages as the report says.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that serialize as a base64 string (standard alphabet, with padding).
///
/// ```
/// use mqttcal_messages::Base64;
/// let b = Base64(vec![0, 159, 146, 150]);
/// assert_eq!(serde_json::to_string(&b).unwrap(), "\"AJ+Slg==\"");
/// let back: Base64 = serde_json::from_str("\"AJ+Slg==\"").unwrap();
/// assert_eq!(back, b);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(Base64)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

impl JsonSchema for Base64 {
    fn schema_name() -> Cow<'static, str> {
        "Base64".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "contentEncoding": "base64",
            "description": "binary data, base64-encoded"
        })
    }
}

impl From<Vec<u8>> for Base64 {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_base64_is_a_clear_error() {
        let err = serde_json::from_str::<Base64>("\"%%%\"").unwrap_err();
        assert!(err.to_string().starts_with("invalid base64"), "{err}");
    }
}
