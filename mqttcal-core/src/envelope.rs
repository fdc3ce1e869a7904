//! The JSON message envelope of the wire protocol: I/O-free encode and decode.
//!
//! Every message is one JSON object. The mandatory fields (`timestamp`, `UTC`, `from`, `to`)
//! and the reserved names sit beside the optional fields at the top level, as in the report.
//! Decoding is lenient (a missing `timestamp`/`UTC` is accepted, unknown fields are kept);
//! encoding always writes the four mandatory fields.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::clock::Timestamp;
use crate::error::NodeError;

/// The default largest message, in bytes, that is encoded or decoded.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Top-level names with a meaning of their own; they are never capability parameters.
pub const RESERVED: &[&str] = &[
    "timestamp",
    "UTC",
    "from",
    "to",
    "request",
    "requestid",
    "reply",
    "error",
    "cmd",
    "message",
    "seq",
    "epoch",
    "via",
    "direct",
];

/// Whether `name` is a reserved top-level name.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// Why a payload is not a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the payload.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The payload is not JSON.
    #[error("payload is not valid JSON")]
    NotJson(#[source] serde_json::Error),
    /// The payload is JSON but not an object.
    #[error("payload is JSON but not an object")]
    NotObject,
    /// A top-level name appears twice. JSON leaves the meaning open and readers differ
    /// (most keep the last), so a second `to` or `request` could slip past a filter that
    /// read the first: refused.
    #[error("the name `{0}` appears twice")]
    DuplicateKey(String),
    /// A mandatory field is missing.
    #[error("missing mandatory field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

/// What kind of message an envelope is, by the fields it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Carries `request`: a reply is expected.
    Request,
    /// Carries `requestid` and `reply`: the answer to a request.
    Reply,
    /// Carries `message` (e.g. `hello`, `bye`): an announcement.
    Announce,
    /// Anything else: a simple message (a command, data).
    Simple,
}

/// One message of the wire protocol.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Envelope {
    /// Send time; `None` when a report-style sender left it out.
    pub timestamp: Option<Timestamp>,
    /// The `UTC` text as received (re-derived from `timestamp` on output).
    pub utc: Option<String>,
    /// The sender's name.
    pub from: String,
    /// The receiver's name, or `*`.
    pub to: String,
    /// The capability requested.
    pub request: Option<String>,
    /// The request id (requests and replies).
    pub requestid: Option<String>,
    /// The reply value; `Some(Value::Null)` for a reply whose value is null.
    pub reply: Option<Value>,
    /// Our extension: the error of a failed request.
    pub error: Option<NodeError>,
    /// A command of a simple message (e.g. `stop`, `measure`).
    pub cmd: Option<String>,
    /// An announcement (`hello`, `bye`).
    pub message: Option<String>,
    /// Per-sender, per-topic sequence number of a data message.
    pub seq: Option<u64>,
    /// Changes at every start of the sender.
    pub epoch: Option<u64>,
    /// Nodes a dispatched request passed through.
    pub via: Vec<String>,
    /// Our extension, on requests: the sender also reads what is addressed to it alone
    /// (`request/<from>/+` and `reply/<from>/+`), so the reply goes there instead of to
    /// every client on `reply`.
    pub direct: bool,
    /// Every other top-level field: parameters, data, unknown fields.
    pub fields: Map<String, Value>,
}

/// The field of a `bye` that a later run of a node sends to close an earlier run's stream
/// (after that run was killed): not the node's leaving. See [`Envelope::closes_earlier_run`].
pub const EARLIER_RUN: &str = "earlier_run";

impl Envelope {
    /// A message from `from` to `to` with no other field.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            ..Self::default()
        }
    }

    /// What kind of message this is.
    pub fn kind(&self) -> Kind {
        if self.request.is_some() {
            Kind::Request
        } else if self.requestid.is_some() && (self.reply.is_some() || self.error.is_some()) {
            Kind::Reply
        } else if self.message.is_some() {
            Kind::Announce
        } else {
            Kind::Simple
        }
    }

    /// Whether this is the `bye` a later run of its sender sends to close an earlier run's
    /// stream ([`EARLIER_RUN`]): no leaving, only that run's end.
    pub fn closes_earlier_run(&self) -> bool {
        self.message.as_deref() == Some("bye")
            && self.fields.get(EARLIER_RUN) == Some(&serde_json::Value::Bool(true))
    }

    /// Whether the message is addressed to `name` (directly or by broadcast).
    pub fn is_for(&self, name: &str) -> bool {
        self.to == "*" || self.to == name
    }

    /// Decodes a payload, refusing one larger than `limit` bytes before parsing it.
    pub fn decode(payload: &[u8], limit: usize) -> Result<Self, DecodeError> {
        if payload.len() > limit {
            return Err(DecodeError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        match serde_json::from_slice(payload).map_err(DecodeError::NotJson)? {
            decode::TopLevel::Object(slots) => Self::from_slots(*slots),
            decode::TopLevel::Duplicate(key) => Err(DecodeError::DuplicateKey(key)),
            decode::TopLevel::Other => Err(DecodeError::NotObject),
        }
    }

    /// Builds an envelope from a decoded JSON object.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, DecodeError> {
        Self::from_slots(decode::Slots::from_map(map))
    }

    /// The envelope of the reserved fields' values and the other fields.
    fn from_slots(slots: decode::Slots) -> Result<Self, DecodeError> {
        use decode::Field as F;
        let decode::Slots { mut values, fields } = slots;
        let mut take = |f: F| values[f as usize].take();
        let timestamp = match take(F::Timestamp) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if s.is_finite() && s >= 0.0 => Some(Timestamp::from_secs_f64(s)),
                _ => return Err(wrong("timestamp", "a non-negative number of seconds")),
            },
            Some(_) => return Err(wrong("timestamp", "a number of seconds")),
        };
        let env = Self {
            timestamp,
            utc: opt_string(take(F::Utc), "UTC")?,
            from: opt_string(take(F::From), "from")?.ok_or(DecodeError::Missing("from"))?,
            to: opt_string(take(F::To), "to")?.ok_or(DecodeError::Missing("to"))?,
            request: opt_string(take(F::Request), "request")?,
            requestid: opt_string(take(F::Requestid), "requestid")?,
            reply: take(F::Reply),
            error: match take(F::Error) {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    serde_json::from_value(v)
                        .map_err(|_| wrong("error", "an object with `code` and `message`"))?,
                ),
            },
            cmd: opt_string(take(F::Cmd), "cmd")?,
            message: opt_string(take(F::Message), "message")?,
            seq: opt_u64(take(F::Seq), "seq")?,
            epoch: opt_u64(take(F::Epoch), "epoch")?,
            via: match take(F::Via) {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => {
                    serde_json::from_value(v).map_err(|_| wrong("via", "an array of node names"))?
                }
            },
            direct: match take(F::Direct) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(wrong("direct", "true or false")),
            },
            fields,
        };
        Ok(env)
    }

    /// Encodes the message, stamping it with `now` when it has no timestamp yet.
    pub fn encode(&self, limit: usize) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(256);
        write::envelope(self, &mut out).map_err(EncodeError::Json)?;
        if out.len() > limit {
            return Err(EncodeError::TooLarge {
                size: out.len(),
                limit,
            });
        }
        // A message may wait in a queue for a while (thousands of them under a flood): give
        // back what doubling the buffer left unused (shrinking reallocates in place).
        if out.capacity() - out.len() > out.len() / 4 {
            out.shrink_to_fit();
        }
        Ok(out)
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the encoded message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A value could not be written as JSON.
    #[error("message cannot be written as JSON")]
    Json(#[source] serde_json::Error),
}

fn wrong(field: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::WrongType { field, expected }
}

fn opt_string(value: Option<Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(field, "a string")),
    }
}

fn opt_u64(value: Option<Value>, field: &'static str) -> Result<Option<u64>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong(field, "a non-negative integer")),
        Some(_) => Err(wrong(field, "a non-negative integer")),
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ts = self.timestamp.unwrap_or_else(Timestamp::now);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("timestamp", &ts.as_secs_f64())?;
        ts.with_utc(|utc| m.serialize_entry("UTC", utc))?;
        m.serialize_entry("from", &self.from)?;
        m.serialize_entry("to", &self.to)?;
        if let Some(v) = &self.request {
            m.serialize_entry("request", v)?;
        }
        if let Some(v) = &self.requestid {
            m.serialize_entry("requestid", v)?;
        }
        if self.reply.is_some() || self.error.is_some() {
            m.serialize_entry("reply", self.reply.as_ref().unwrap_or(&Value::Null))?;
        }
        if let Some(v) = &self.error {
            m.serialize_entry("error", v)?;
        }
        if let Some(v) = &self.cmd {
            m.serialize_entry("cmd", v)?;
        }
        if let Some(v) = &self.message {
            m.serialize_entry("message", v)?;
        }
        if let Some(v) = &self.seq {
            m.serialize_entry("seq", v)?;
        }
        if let Some(v) = &self.epoch {
            m.serialize_entry("epoch", v)?;
        }
        if !self.via.is_empty() {
            m.serialize_entry("via", &self.via)?;
        }
        if self.direct {
            m.serialize_entry("direct", &true)?;
        }
        for (k, v) in &self.fields {
            if !is_reserved(k) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

mod decode;
mod write;

#[cfg(test)]
mod tests;
