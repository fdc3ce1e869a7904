//! Topic names, with an optional prefix so several labs can share one broker, in one of two
//! layouts.
//!
//! The **shared** layout is the report's: one topic per kind of message (`request`,
//! `reply`, `meas`, ...), every node reads every request and every reply, and `from` is
//! whatever the sender wrote. The **addressed** layout (production mode, docs/deploying.md)
//! puts the sender's name in every topic, and the addressee's in control topics, so that a
//! broker ACL with `%u` patterns binds each message to the login that sent it:
//!
//! | message | shared | addressed |
//! |---|---|---|
//! | request, reply, stop | `request` | `request/<to>/<from>` (`<to>` is `*` for a broadcast) |
//! | data, announcements, logbook | `meas` | `meas/<from>` |
//!
//! A receiver in the addressed layout drops a message whose `from` (or `to`) differs from
//! its topic's.
//!
//! ```
//! use mqttcal_core::topics::{Layout, Topics, REQUEST, MEAS};
//!
//! let t = Topics::with_layout("lab1", Layout::Addressed);
//! assert_eq!(t.outgoing(REQUEST, "cli", "labd"), "lab1/request/labd/cli");
//! assert_eq!(t.outgoing(MEAS, "labd", "*"), "lab1/meas/labd");
//! let got = t.parse("lab1/request/labd/cli").unwrap();
//! assert_eq!((got.name, got.to, got.from), ("request", Some("labd"), Some("cli")));
//! ```

/// How topics are laid out; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The report's topics; every client reads every request and reply.
    #[default]
    Shared,
    /// The sender's name (and the addressee's, for control topics) in the topic, for a
    /// broker ACL to check.
    Addressed,
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shared" => Ok(Self::Shared),
            "addressed" => Ok(Self::Addressed),
            _ => Err(format!("`{s}` is neither `shared` nor `addressed`")),
        }
    }
}

/// A received topic, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The protocol name (`request`, `meas`, ...).
    pub name: &'a str,
    /// The addressee the topic names (addressed layout, control topics).
    pub to: Option<&'a str>,
    /// The sender the topic names (addressed layout).
    pub from: Option<&'a str>,
}

impl Incoming<'_> {
    /// Whether a message saying it is `from` `from` and addressed `to` fits this topic: in
    /// the addressed layout the broker's ACL vouches for the topic, not for the payload.
    pub fn matches(&self, from: &str, to: &str) -> bool {
        self.from.is_none_or(|f| f == from) && self.to.is_none_or(|t| t == to)
    }
}

/// The topics of the protocol under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    layout: Layout,
}

/// Whether protocol topic `name` carries an addressee in the addressed layout.
fn is_control(name: &str) -> bool {
    matches!(name, REQUEST | REPLY | SYSTEM)
}

impl Topics {
    /// Topics under `prefix` (empty: the report's bare names) in the shared layout. A
    /// non-empty prefix is joined with `/`.
    pub fn new(prefix: &str) -> Self {
        Self::with_layout(prefix, Layout::Shared)
    }

    /// Topics under `prefix` in `layout`.
    pub fn with_layout(prefix: &str, layout: Layout) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            layout,
        }
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The full name of topic `name` in the shared layout, or of a filter under the prefix.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The topic a message of kind `name` from `from` to `to` goes on.
    pub fn outgoing(&self, name: &str, from: &str, to: &str) -> String {
        match self.layout {
            Layout::Shared => self.topic(name),
            Layout::Addressed if is_control(name) => format!("{}{name}/{to}/{from}", self.prefix),
            Layout::Addressed => format!("{}{name}/{from}", self.prefix),
        }
    }

    /// The topic of a request or reply from `from` to `to` alone, `<name>/<to>/<from>`:
    /// in the shared layout, where mqttcal peers that said they read it (the `direct`
    /// field) send each other their requests and replies, instead of to everyone.
    pub fn direct(&self, name: &str, from: &str, to: &str) -> String {
        format!("{}{name}/{to}/{from}", self.prefix)
    }

    /// The filters that node `me` subscribes to for messages of kind `name`: in the
    /// addressed layout, control messages to `me` (and broadcasts, except replies), data
    /// from anyone; in the shared layout the report's topic, and for requests and replies
    /// also those to `me` alone ([`Topics::direct`]) when `me` can be a topic level.
    pub fn filters(&self, name: &str, me: &str) -> Vec<String> {
        match self.layout {
            Layout::Shared if (name == REQUEST || name == REPLY) && is_valid_name(me) => {
                vec![self.topic(name), format!("{}{name}/{me}/+", self.prefix)]
            }
            Layout::Shared => vec![self.topic(name)],
            Layout::Addressed if name == REPLY => vec![format!("{}{name}/{me}/+", self.prefix)],
            Layout::Addressed if is_control(name) => vec![
                format!("{}{name}/{me}/+", self.prefix),
                format!("{}{name}/*/+", self.prefix),
            ],
            Layout::Addressed => vec![format!("{}{name}/+", self.prefix)],
        }
    }

    /// Takes a received topic apart; `None` if it is outside the prefix or not of the
    /// layout's shape.
    pub fn parse<'a>(&self, full: &'a str) -> Option<Incoming<'a>> {
        let rest = full.strip_prefix(self.prefix.as_str())?;
        match self.layout {
            Layout::Shared => match rest.split_once('/') {
                // A request or reply to one node alone: `<name>/<to>/<from>`.
                Some((name @ (REQUEST | REPLY), pair)) => {
                    let (to, from) = pair.split_once('/')?;
                    if to.is_empty() || from.is_empty() || from.contains('/') {
                        return None;
                    }
                    Some(Incoming {
                        name,
                        to: Some(to),
                        from: Some(from),
                    })
                }
                _ => Some(Incoming {
                    name: rest,
                    to: None,
                    from: None,
                }),
            },
            Layout::Addressed => {
                let mut parts = rest.split('/');
                let name = parts.next()?;
                let (to, from) = if is_control(name) {
                    (Some(parts.next()?), parts.next()?)
                } else {
                    (None, parts.next()?)
                };
                if parts.next().is_some() || from.is_empty() {
                    return None;
                }
                Some(Incoming {
                    name,
                    to,
                    from: Some(from),
                })
            }
        }
    }

    /// The protocol name of a full topic, or `None` if it is outside the prefix.
    pub fn strip<'a>(&self, full: &'a str) -> Option<&'a str> {
        self.parse(full).map(|t| t.name)
    }
}

/// Whether `name` can be a topic level that names a node (the addressed layout, and the
/// topics to one node alone of the shared layout): 1 to 256 bytes, no `/`, `+`, `#` or `*`
/// (topic levels and wildcards), and no control character or Unicode non-character
/// (a broker closes the connection of a client that publishes such a topic).
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && !name.contains(['/', '+', '#', '*'])
        && !name.chars().any(|c| c.is_control() || is_noncharacter(c))
}

/// The longest name [`is_valid_name`] accepts, in bytes.
pub const MAX_NAME: usize = 256;

/// U+FDD0 to U+FDEF, and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let n = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
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
/// Progress of long work (a long call, a calibration job), QoS 0: see
/// [`Context::progress`](crate::Context::progress).
pub const PROGRESS: &str = "progress";

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

    #[test]
    fn addressed_topics_name_the_sender_and_the_addressee() {
        let t = Topics::with_layout("", Layout::Addressed);
        assert_eq!(t.outgoing(REPLY, "labd", "cli"), "reply/cli/labd");
        assert_eq!(t.outgoing(SYSTEM, "admin", "*"), "system/*/admin");
        assert_eq!(t.outgoing(ANNOUNCE, "labd", "*"), "announce/labd");
        assert_eq!(
            t.filters(REQUEST, "labd"),
            ["request/labd/+", "request/*/+"]
        );
        assert_eq!(t.filters(REPLY, "labd"), ["reply/labd/+"]);
        assert_eq!(t.filters(MEAS, "datad"), ["meas/+"]);
        let m = t.parse("meas/labd").unwrap();
        assert_eq!((m.name, m.to, m.from), (MEAS, None, Some("labd")));
        // Shapes that do not fit are not messages of the layout.
        for bad in [
            "meas",
            "meas/",
            "meas/a/b",
            "request/labd",
            "request/labd/a/b",
        ] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
        assert!(is_valid_name("labd-2") && is_valid_name("prüfstand"));
        assert!(!is_valid_name("a/b") && !is_valid_name("*") && !is_valid_name(""));
        for bad in [
            "x\u{1}",
            "x\u{7f}",
            "x\u{85}",
            "x\u{fffe}",
            "x\u{fdd0}",
            "x\u{1ffff}",
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert!(is_valid_name(&"n".repeat(MAX_NAME)) && !is_valid_name(&"n".repeat(MAX_NAME + 1)));
    }

    #[test]
    fn shared_topics_carry_requests_and_replies_to_one_node_alone() {
        let t = Topics::new("lab1");
        assert_eq!(t.direct(REQUEST, "cli", "labd"), "lab1/request/labd/cli");
        assert_eq!(
            t.filters(REQUEST, "labd"),
            ["lab1/request", "lab1/request/labd/+"]
        );
        assert_eq!(t.filters(REPLY, "cli"), ["lab1/reply", "lab1/reply/cli/+"]);
        assert_eq!(t.filters(SYSTEM, "labd"), ["lab1/system"]);
        assert_eq!(t.filters(MEAS, "labd"), ["lab1/meas"]);
        // A name that cannot be a topic level reads the report's topics only.
        assert_eq!(t.filters(REQUEST, "a/b"), ["lab1/request"]);
        let r = t.parse("lab1/reply/cli/labd").unwrap();
        assert_eq!((r.name, r.to, r.from), (REPLY, Some("cli"), Some("labd")));
        let shared = t.parse("lab1/request").unwrap();
        assert_eq!((shared.name, shared.to, shared.from), (REQUEST, None, None));
        assert_eq!(t.parse("lab1/meas").unwrap().name, MEAS);
        for bad in ["lab1/request/labd", "lab1/reply/a/b/c", "lab1/request//x"] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
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
