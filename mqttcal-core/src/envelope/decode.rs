//! Reading a payload's top level in one pass: the reserved names go straight to their
//! slots, the rest into the fields, and a repeated name is noted.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::RESERVED;

/// The reserved names, in the order of [`RESERVED`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Field {
    Timestamp,
    Utc,
    From,
    To,
    Request,
    Requestid,
    Reply,
    Error,
    Cmd,
    Message,
    Seq,
    Epoch,
    Via,
    Direct,
}

/// How many reserved names there are.
const COUNT: usize = Field::Direct as usize + 1;

/// The values of the reserved names, and the other fields.
pub(super) struct Slots {
    pub(super) values: [Option<Value>; COUNT],
    pub(super) fields: Map<String, Value>,
}

impl Slots {
    /// Moves the reserved names of `map` to their slots.
    pub(super) fn from_map(mut fields: Map<String, Value>) -> Self {
        let values = std::array::from_fn(|i| fields.remove(RESERVED[i]));
        Self { values, fields }
    }
}

/// A payload's top level.
pub(super) enum TopLevel {
    Object(Box<Slots>),
    Duplicate(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

/// A name at the top level: reserved (its index in [`RESERVED`]) or not.
enum Key {
    Reserved(usize),
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Key, E> {
        Ok(match RESERVED.iter().position(|r| *r == name) {
            Some(i) => Key::Reserved(i),
            None => Key::Other(name.to_owned()),
        })
    }

    fn visit_string<E>(self, name: String) -> Result<Key, E> {
        Ok(match RESERVED.iter().position(|r| *r == name) {
            Some(i) => Key::Reserved(i),
            None => Key::Other(name),
        })
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        let mut slots = Box::new(Slots {
            values: Default::default(),
            fields: Map::new(),
        });
        let mut duplicate: Option<String> = None;
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let repeated = match &key {
                Key::Reserved(i) => slots.values[*i].is_some(),
                Key::Other(name) => slots.fields.contains_key(name),
            };
            if repeated || duplicate.is_some() {
                // The rest is read (and dropped) so that the JSON is still checked whole.
                access.next_value::<IgnoredAny>()?;
                duplicate.get_or_insert_with(|| match key {
                    Key::Reserved(i) => RESERVED[i].to_owned(),
                    Key::Other(name) => name,
                });
                continue;
            }
            let value = access.next_value::<Value>()?;
            match key {
                Key::Reserved(i) => slots.values[i] = Some(value),
                Key::Other(name) => {
                    slots.fields.insert(name, value);
                }
            }
        }
        Ok(match duplicate {
            Some(key) => TopLevel::Duplicate(key),
            None => TopLevel::Object(slots),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<TopLevel, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_indexes_its_reserved_name() {
        let names = [
            (Field::Timestamp, "timestamp"),
            (Field::Utc, "UTC"),
            (Field::From, "from"),
            (Field::To, "to"),
            (Field::Request, "request"),
            (Field::Requestid, "requestid"),
            (Field::Reply, "reply"),
            (Field::Error, "error"),
            (Field::Cmd, "cmd"),
            (Field::Message, "message"),
            (Field::Seq, "seq"),
            (Field::Epoch, "epoch"),
            (Field::Via, "via"),
            (Field::Direct, "direct"),
        ];
        for (field, name) in names {
            assert_eq!(RESERVED[field as usize], name);
        }
        assert_eq!(RESERVED.len(), COUNT);
    }
}
