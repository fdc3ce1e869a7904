//! Why a message was refused before it was used.

/// A message whose fields are well-formed JSON but make no sense together (a negative
/// uncertainty, an empty id, a correction without a reason). The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub(crate) fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

pub(crate) fn finite(name: &str, x: f64) -> Result<(), Invalid> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(invalid(format!("`{name}` must be a finite number")))
    }
}

pub(crate) fn not_empty(name: &str, s: &str) -> Result<(), Invalid> {
    if s.trim().is_empty() {
        Err(invalid(format!("`{name}` must not be empty")))
    } else {
        Ok(())
    }
}

/// Whether `c` has no place in a text meant for people and records: a control character,
/// one that reorders text on display (bidirectional marks, overrides and isolates, which
/// can make a serial number or a name read as something else), or an invisible one (zero
/// widths, the byte-order mark, line and paragraph separators, soft hyphen, tag
/// characters), which makes two different texts look the same.
///
/// ```
/// assert!(mqttcal_messages::is_unsafe_char('\u{202E}'));
/// assert!(mqttcal_messages::is_unsafe_char('\0'));
/// assert!(mqttcal_messages::is_unsafe_char('\u{200B}'));
/// assert!(!mqttcal_messages::is_unsafe_char('é'));
/// ```
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{E0000}'..='\u{E007F}'
        )
}
