//! Error codes carried in error replies, and the error type of capability handlers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The code of an error reply.
///
/// The set is small and fixed so that a caller can tell a bad request from a failing
/// instrument from a timeout. Codes this version does not know are kept as
/// [`ErrorCode::Other`], so a newer peer never breaks an older client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The node has no capability with that id.
    UnknownCapability,
    /// The parameters do not match the capability's schema.
    InvalidParams,
    /// The node or one of its resources is busy.
    Busy,
    /// The work did not finish in time.
    Timeout,
    /// The caller may not use this capability.
    Forbidden,
    /// The work was cancelled, e.g. because the node is stopping.
    Cancelled,
    /// A bug or an unexpected condition inside the node.
    Internal,
    /// An instrument reported a fault (its error queue, an overload): the instrument was
    /// reached and answered.
    Hardware,
    /// An instrument could not be reached: no connection, no answer in time, a garbled
    /// answer. Distinct from [`ErrorCode::Hardware`]: check the cable, not the instrument.
    Link,
    /// The message is not a well-formed request (e.g. `requestid` not a string): the
    /// sender named itself and a request id, so it is told instead of left waiting.
    InvalidRequest,
    /// The reply would exceed the largest message size; nothing of it was sent.
    TooLarge,
    /// The request is valid but a rule of the lab forbids it now: an overdue reference, an
    /// instrument that is not the one registered, an item with a job running.
    Refused,
    /// A code this version does not know.
    Other(String),
}

impl ErrorCode {
    /// The code as it travels on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::UnknownCapability => "unknown_capability",
            Self::InvalidParams => "invalid_params",
            Self::Busy => "busy",
            Self::Timeout => "timeout",
            Self::Forbidden => "forbidden",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
            Self::Hardware => "hardware",
            Self::Link => "link",
            Self::InvalidRequest => "invalid_request",
            Self::TooLarge => "too_large",
            Self::Refused => "refused",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "unknown_capability" => Self::UnknownCapability,
            "invalid_params" => Self::InvalidParams,
            "busy" => Self::Busy,
            "timeout" => Self::Timeout,
            "forbidden" => Self::Forbidden,
            "cancelled" => Self::Cancelled,
            "internal" => Self::Internal,
            "hardware" => Self::Hardware,
            "link" => Self::Link,
            "invalid_request" => Self::InvalidRequest,
            "too_large" => Self::TooLarge,
            "refused" => Self::Refused,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// An error returned by a capability handler; it travels as the `error` object of a reply.
///
/// ```
/// use mqttcal_core::NodeError;
/// let e = NodeError::invalid_params("parameter `channel` must be below 8");
/// assert_eq!(e.code.as_str(), "invalid_params");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Optional machine-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl NodeError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds machine-readable details.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `invalid_params`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParams, message)
    }

    /// `hardware`: the instrument answered, reporting a fault.
    pub fn hardware(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Hardware, message)
    }

    /// `link`: the instrument could not be reached or did not answer.
    pub fn link(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Link, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// `invalid_request`: the message itself is malformed.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `too_large`: the reply does not fit the largest message size.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    /// `busy`.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Busy, message)
    }

    /// `timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Timeout, message)
    }

    /// `cancelled`.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Cancelled, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `refused`: valid, but a rule of the lab forbids it now.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Refused, message)
    }

    /// `unknown_capability`.
    pub fn unknown_capability(id: &str) -> Self {
        Self::new(
            ErrorCode::UnknownCapability,
            format!("no capability `{id}` on this node"),
        )
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for NodeError {}

/// An error and its causes, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_survive_a_round_trip() {
        let e: NodeError =
            serde_json::from_str(r#"{"code":"quota_exceeded","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Other("quota_exceeded".into()));
        let back = serde_json::to_string(&e).unwrap();
        assert_eq!(back, r#"{"code":"quota_exceeded","message":"m"}"#);
    }

    #[test]
    fn every_known_code_parses_back_to_itself() {
        for code in [
            ErrorCode::UnknownCapability,
            ErrorCode::InvalidParams,
            ErrorCode::Busy,
            ErrorCode::Timeout,
            ErrorCode::Forbidden,
            ErrorCode::Cancelled,
            ErrorCode::Internal,
            ErrorCode::Hardware,
            ErrorCode::Link,
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }
}
