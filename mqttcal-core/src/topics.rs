//! Topic names, with an optional prefix so several labs can share one broker.

/// The topics of the protocol under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (empty: the report's bare names). A non-empty prefix is joined
    /// with `/`.
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The full name of topic `name`.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The protocol name of a full topic, or `None` if it is outside the prefix.
    pub fn strip<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(self.prefix.as_str())
    }
}

/// Simple control messages, e.g. `cmd: "stop"`.
pub const SYSTEM: &str = "system";
/// Requests.
pub const REQUEST: &str = "request";
/// Replies.
pub const REPLY: &str = "reply";
/// Join and leave announcements.
pub const ANNOUNCE: &str = "announce";
/// Measurement triggers and results.
pub const MEAS: &str = "meas";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_joined_and_stripped() {
        let t = Topics::new("lab1/");
        assert_eq!(t.topic(REQUEST), "lab1/request");
        assert_eq!(t.strip("lab1/request"), Some("request"));
        assert_eq!(t.strip("lab2/request"), None);
        assert_eq!(Topics::new("").topic(MEAS), "meas");
    }
}

/// Whether an MQTT topic filter (with `+` and `#` wildcards) matches a topic name.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::filter_matches;

    #[test]
    fn wildcards_match_like_mqtt() {
        assert!(filter_matches("meas", "meas"));
        assert!(filter_matches("lab/+", "lab/meas"));
        assert!(filter_matches("#", "a/b/c"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("meas", "meas2"));
    }
}
