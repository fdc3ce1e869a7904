//! JSON kept as the text it arrived in: checked to be JSON, stored and read back without
//! being parsed into a tree and written out again (the ingest hot path).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value as text (`src`, `OriginUID`, `environment` of a reading). Two are equal when
/// they hold the same JSON, whatever the spacing.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// `text`, if it is one JSON value.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.to_owned()).map(Self)
    }

    /// The text of `v`.
    pub fn from_value(v: &Value) -> Self {
        Self(serde_json::value::to_raw_value(v).expect("a JSON value writes as JSON"))
    }

    /// The text, exactly as kept.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).expect("checked to be JSON")
    }
}

impl From<&RawValue> for JsonText {
    fn from(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl schemars::JsonSchema for JsonText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonText".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "description": "any JSON value, kept as it came" })
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self)
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use std::error::Error;

    use bytes::{BufMut, BytesMut};
    use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

    use super::JsonText;

    /// The version byte that starts PostgreSQL's binary `jsonb`.
    pub(super) const JSONB_VERSION: u8 = 1;

    impl ToSql for JsonText {
        fn to_sql(
            &self,
            ty: &Type,
            out: &mut BytesMut,
        ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
            if *ty == Type::JSONB {
                out.put_u8(JSONB_VERSION);
            }
            out.put_slice(self.get().as_bytes());
            Ok(IsNull::No)
        }

        fn accepts(ty: &Type) -> bool {
            matches!(*ty, Type::JSON | Type::JSONB)
        }

        to_sql_checked!();
    }

    impl<'a> FromSql<'a> for JsonText {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
            let text = match (ty, raw.split_first()) {
                (t, Some((&JSONB_VERSION, rest))) if *t == Type::JSONB => rest,
                (t, _) if *t == Type::JSONB => return Err("unknown jsonb version".into()),
                _ => raw,
            };
            Ok(Self::parse(std::str::from_utf8(text)?)?)
        }

        fn accepts(ty: &Type) -> bool {
            matches!(*ty, Type::JSON | Type::JSONB)
        }
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::ToSql for JsonText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(self.get().as_bytes()),
        ))
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::types::FromSql for JsonText {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Self::parse(v.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_json_is_equal_whatever_the_spacing() {
        let a = JsonText::parse(r#"["Z1", "Z2"]"#).unwrap();
        let b = JsonText::from_value(&json!(["Z1", "Z2"]));
        assert_eq!(a, b);
        assert_eq!(a.get(), r#"["Z1", "Z2"]"#, "kept as it came");
        assert_ne!(a, JsonText::from_value(&json!(["Z1"])));
        assert!(JsonText::parse("[1,").unwrap_err().is_eof());
    }

    #[test]
    fn serialises_as_the_json_it_holds() {
        let t = JsonText::parse(r#"{"t": 23.02}"#).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), json!({"t": 23.02}));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn binary_jsonb_carries_a_version_byte() {
        use bytes::BytesMut;
        use tokio_postgres::types::{FromSql, ToSql, Type};
        let t = JsonText::parse(r#"{"a":1}"#).unwrap();
        let mut out = BytesMut::new();
        t.to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        assert_eq!(JsonText::from_sql(&Type::JSONB, &out).unwrap(), t);
        let mut out = BytesMut::new();
        t.to_sql(&Type::JSON, &mut out).unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
        let err = JsonText::from_sql(&Type::JSONB, b"\x02{}").unwrap_err();
        assert_eq!(err.to_string(), "unknown jsonb version");
    }
}
