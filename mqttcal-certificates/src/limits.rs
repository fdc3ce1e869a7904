//! The limits every field of a certificate keeps (list sizes, text length and characters),
//! checked by walking the data as serde sees it: every field is reached, one added later
//! included, without building a copy of the data. A field's path (`results[3].name`) is
//! spelled out only when it breaks a limit.

use serde::ser::{self, Serialize};

use crate::check::{plain_text, CertificateError, LONGEST_TEXT, MOST};

/// Checks every string and list of `data`; the first field that breaks a limit.
pub(crate) fn check_limits(data: &impl Serialize) -> Result<(), CertificateError> {
    let mut walker = Walker { path: Vec::new() };
    data.serialize(&mut walker).map_err(|stop| stop.0)
}

/// One step of a field's path.
enum Step {
    Field(&'static str),
    Index(usize),
    Key(String),
}

struct Walker {
    path: Vec<Step>,
}

/// The first limit broken, which stops the walk.
#[derive(Debug)]
struct Stop(CertificateError);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Stop(CertificateError {
            field: String::new(),
            problem: msg.to_string(),
        })
    }
}

impl Walker {
    /// The path spelled out, as the other checks name fields.
    fn spelled(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            match step {
                Step::Field(k) => push_key(&mut out, k),
                Step::Key(k) => push_key(&mut out, k),
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn text(&self, s: &str) -> Result<(), Stop> {
        // The common case first: printable ASCII that is not too long needs no path.
        if s.len() <= LONGEST_TEXT && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Ok(());
        }
        plain_text(&self.spelled(), s).map_err(Stop)
    }

    /// Within a value of `step`.
    fn within<T: Serialize + ?Sized>(&mut self, step: Step, value: &T) -> Result<(), Stop> {
        self.path.push(step);
        let done = value.serialize(&mut *self);
        self.path.pop();
        done
    }
}

fn push_key(out: &mut String, k: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(k);
}

/// A list, a tuple or a map being walked: the index of its next entry, and the most it
/// may hold (from [`MOST`], by the list's field name).
struct Entries<'a> {
    walker: &'a mut Walker,
    next: usize,
    most: Option<usize>,
}

impl<'a> Entries<'a> {
    fn new(walker: &'a mut Walker, len: Option<usize>) -> Result<Self, Stop> {
        let most = match walker.path.last() {
            Some(Step::Field(name)) => MOST.iter().find(|(n, _)| n == name).map(|(_, m)| *m),
            _ => None,
        };
        let entries = Entries {
            walker,
            next: 0,
            most,
        };
        if let Some(n) = len {
            entries.fits(n)?;
        }
        Ok(entries)
    }

    fn fits(&self, n: usize) -> Result<(), Stop> {
        match self.most {
            Some(most) if n > most => Err(Stop(CertificateError {
                field: self.walker.spelled(),
                problem: format!("{n} entries; at most {most}"),
            })),
            _ => Ok(()),
        }
    }

    fn entry<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let i = self.next;
        self.next += 1;
        self.fits(self.next)?;
        self.walker.within(Step::Index(i), value)
    }
}

/// Lists, tuples and their struct and variant forms: each element is an entry.
macro_rules! entries {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Entries<'_> {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
                self.entry(value)
            }
            fn end(self) -> Result<(), Stop> {
                Ok(())
            }
        }
    )*};
}

entries!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Entries<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        // A key is text a reader may see, and it names the entry in the path.
        let key = serde_json::to_value(key).map_err(ser::Error::custom)?;
        let key = match key {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        self.walker.text(&key)?;
        self.next += 1;
        self.fits(self.next)?;
        self.walker.path.push(Step::Key(key));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let done = value.serialize(&mut *self.walker);
        self.walker.path.pop();
        done
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Walker {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.within(Step::Field(key), value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Walker {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.within(Step::Field(key), value)
    }
    fn end(self) -> Result<(), Stop> {
        self.path.pop();
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Walker {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Entries<'a>;
    type SerializeTuple = Entries<'a>;
    type SerializeTupleStruct = Entries<'a>;
    type SerializeTupleVariant = Entries<'a>;
    type SerializeMap = Entries<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_char(self, c: char) -> Result<(), Stop> {
        self.text(c.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, s: &str) -> Result<(), Stop> {
        self.text(s)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.within(Step::Field(variant), value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Entries<'a>, Stop> {
        Entries::new(self, len)
    }
    fn serialize_tuple(self, len: usize) -> Result<Entries<'a>, Stop> {
        Entries::new(self, Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Entries<'a>, Stop> {
        Entries::new(self, Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Entries<'a>, Stop> {
        Entries::new(self, Some(len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Entries<'a>, Stop> {
        Entries::new(self, len)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        // The variant's fields are named under the variant, as serde_json writes them.
        self.path.push(Step::Field(variant));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example;

    fn refused(change: impl Fn(&mut crate::CertificateData)) -> CertificateError {
        let mut data = example();
        change(&mut data);
        check_limits(&data).expect_err("limits hold")
    }

    #[test]
    fn the_example_keeps_every_limit() {
        check_limits(&example()).unwrap();
    }

    #[test]
    fn a_broken_limit_names_its_field_by_path() {
        let e = refused(|d| {
            let r = d.results[0].clone();
            d.results.push(r);
            d.results[1].name = "a\u{7}b".into();
        });
        assert_eq!(e.field, "results[1].name", "{e}");
        assert!(e.problem.contains("U+0007"), "{e}");
        let e = refused(|d| d.customer.address.city = "\u{2067}Roma".into());
        assert_eq!(e.field, "customer.address.city", "{e}");
        let e = refused(|d| d.method.norms.push("n".repeat(LONGEST_TEXT + 1)));
        assert_eq!(e.field, "method.norms[1]", "{e}");
        assert!(e.problem.contains("4001 characters"), "{e}");
        let e = refused(|d| d.item.model = Some("x\u{0}".into()));
        assert_eq!(e.field, "item.model", "{e}");
    }

    #[test]
    fn a_list_over_its_most_is_refused_by_name() {
        let e = refused(|d| {
            let c = d.conditions[0].clone();
            d.conditions = vec![c; 101];
        });
        assert_eq!(e.field, "conditions", "{e}");
        assert!(e.problem.contains("101 entries; at most 100"), "{e}");
        // At the bound it holds.
        let mut data = example();
        let c = data.conditions[0].clone();
        data.conditions = vec![c; 100];
        check_limits(&data).unwrap();
    }

    #[test]
    fn text_beyond_ascii_is_checked_in_full() {
        let mut data = example();
        data.customer.name = "Ωμέγα Лаборатория Müller".into();
        check_limits(&data).unwrap();
        let e = refused(|d| d.customer.name = "é".repeat(LONGEST_TEXT + 1));
        assert_eq!(e.field, "customer.name", "{e}");
        // 4000 two-byte characters are 8000 bytes and still within the limit.
        let mut data = example();
        data.customer.name = "é".repeat(LONGEST_TEXT);
        check_limits(&data).unwrap();
    }
}
