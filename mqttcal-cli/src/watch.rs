//! `watch`: live traffic, one message per line.

use std::io::Write;

use clap::Args;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::topics::{Topics, ANNOUNCE, REPLY, REQUEST, SYSTEM};
use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};

use super::connect::Settings;
use super::Failure;

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Topics to watch (MQTT filters, under the prefix; `request`, `reply` and `system`
    /// include those to one node alone) [default: every topic]
    topics: Vec<String>,
    /// Print each message as raw JSON instead of a summary line
    #[arg(long)]
    json: bool,
    /// Stop after this many messages
    #[arg(long)]
    count: Option<usize>,
    /// Show housekeeping too: `ping` and `map` to every node (datad's census, a browser's
    /// node list) with their replies, and heartbeats
    #[arg(long)]
    all: bool,
}

pub(crate) async fn watch(a: WatchArgs, settings: Settings) -> Result<(), Failure> {
    let topics = Topics::new(&settings.config.prefix);
    let filters: Vec<Subscription> = if a.topics.is_empty() {
        vec![Subscription::new(topics.topic("#"), QoS::AtMostOnce)]
    } else {
        // A control topic also carries messages to one node alone, `<name>/<to>/<from>`
        // (between mqttcal peers, and in the addressed layout): watch those too.
        a.topics
            .iter()
            .flat_map(|t| {
                let mut filters = vec![topics.topic(t)];
                if matches!(t.as_str(), REQUEST | REPLY | SYSTEM) {
                    filters.push(topics.topic(&format!("{t}/+/+")));
                }
                filters
            })
            .map(|f| Subscription::new(f, QoS::AtMostOnce))
            .collect()
    };
    let name = format!("cli-watch-{}", std::process::id());
    let link = settings
        .quick_transport()
        .connect(SessionSpec::new(name, filters))
        .await;
    let mut link = match link {
        Ok(l) => l,
        Err(e) => return Err(settings.unreachable(&e).await),
    };
    let mut seen = 0usize;
    let limit = settings.config.mqtt.max_message_size;
    let mut quiet = Housekeeping::default();
    while let Some(ev) = link.events.recv().await {
        let Event::Message { topic, payload, .. } = ev else {
            continue;
        };
        let name = topics.strip(&topic).unwrap_or(&topic);
        let name = name.split('/').next().unwrap_or(name);
        if !a.all && quiet.hides(name, &payload, limit) {
            continue;
        }
        let line = if a.json {
            String::from_utf8_lossy(&payload).into_owned()
        } else {
            summary(topics.strip(&topic).unwrap_or(&topic), &payload, limit)
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").is_err() {
            break;
        }
        let _ = out.flush();
        seen += 1;
        if a.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    let _ = link.publisher.disconnect().await;
    Ok(())
}

/// `HH:MM:SS.ffffff topic from -> to  what {fields}`.
fn summary(topic: &str, payload: &[u8], limit: usize) -> String {
    let env = match Envelope::decode(payload, limit) {
        Ok(e) => e,
        Err(e) => {
            return format!(
                "{topic:<8} (not a message: {e}) {}",
                String::from_utf8_lossy(payload)
            )
        }
    };
    let time = env
        .timestamp
        .map(|t| t.utc_string()[11..].to_owned())
        .unwrap_or_else(|| "-".repeat(15));
    let what = if let Some(r) = &env.request {
        format!("request {r} [{}]", env.requestid.as_deref().unwrap_or("?"))
    } else if let Some(e) = &env.error {
        format!("error {}: {}", e.code, e.message)
    } else if let Some(r) = &env.reply {
        format!("reply {r}")
    } else if let Some(m) = &env.message {
        m.clone()
    } else if let Some(c) = &env.cmd {
        format!("cmd {c}")
    } else {
        String::new()
    };
    let seq = env.seq.map(|s| format!(" #{s}")).unwrap_or_default();
    let fields = if env.fields.is_empty() {
        String::new()
    } else {
        format!(" {}", serde_json::Value::Object(env.fields))
    };
    format!(
        "{time} {topic:<8} {} -> {}{seq}  {what}{fields}",
        env.from, env.to
    )
}

/// Recognises housekeeping traffic: `ping` and `map` broadcasts on `request`, the replies
/// to them on `reply`, and heartbeats on `announce`. Nothing else is ever hidden.
#[derive(Default)]
struct Housekeeping {
    /// (asker, request id) of the housekeeping requests seen lately, oldest first.
    asked: std::collections::VecDeque<(String, String)>,
}

impl Housekeeping {
    /// How many requests it remembers.
    const KEEP: usize = 4096;
    /// Longer names or ids are never housekeeping (and never remembered).
    const LONGEST: usize = 256;

    /// Whether the message on protocol topic `name` (the first level under the prefix)
    /// is housekeeping.
    fn hides(&mut self, name: &str, payload: &[u8], limit: usize) -> bool {
        let Ok(env) = Envelope::decode(payload, limit) else {
            return false;
        };
        let plain = env.request.is_none() && env.cmd.is_none() && env.reply.is_none();
        match name {
            ANNOUNCE => plain && env.message.as_deref() == Some("heartbeat"),
            REQUEST => {
                let (Some(id), Some("ping" | "map")) = (env.requestid, env.request.as_deref())
                else {
                    return false;
                };
                if env.to != "*" || id.len() > Self::LONGEST || env.from.len() > Self::LONGEST {
                    return false;
                }
                if self.asked.len() == Self::KEEP {
                    self.asked.pop_front();
                }
                self.asked.push_back((env.from, id));
                true
            }
            REPLY => {
                let Some(id) = env.requestid else {
                    return false;
                };
                env.request.is_none()
                    && self
                        .asked
                        .iter()
                        .any(|(asker, asked)| *asked == id && *asker == env.to)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_pings_their_replies_and_heartbeats_are_housekeeping_and_calls_are_not() {
        let mut h = Housekeeping::default();
        let ping = br#"{"from":"datad","to":"*","request":"ping","requestid":"datad-1"}"#;
        let reply = br#"{"from":"labd","to":"datad","requestid":"datad-1","reply":{}}"#;
        let beat = br#"{"from":"labd","to":"*","message":"heartbeat"}"#;
        let call = br#"{"from":"cli","to":"labd","request":"ping","requestid":"cli-1"}"#;
        let answer = br#"{"from":"labd","to":"cli","requestid":"cli-1","reply":{}}"#;
        assert!(h.hides(REQUEST, ping, 1 << 20));
        assert!(h.hides(REPLY, reply, 1 << 20));
        assert!(h.hides(ANNOUNCE, beat, 1 << 20));
        assert!(
            !h.hides(REQUEST, call, 1 << 20),
            "a ping to one node is a question"
        );
        assert!(!h.hides(REPLY, answer, 1 << 20));
    }

    #[test]
    fn nothing_else_can_pass_for_housekeeping() {
        let mut h = Housekeeping::default();
        // A request or a stop dressed as a heartbeat, a heartbeat on another topic.
        let dressed = br#"{"from":"x","to":"labd","request":"measure","requestid":"x-1","message":"heartbeat"}"#;
        let stop = br#"{"from":"x","to":"labd","cmd":"stop","message":"heartbeat"}"#;
        let beat = br#"{"from":"labd","to":"*","message":"heartbeat"}"#;
        assert!(!h.hides(REQUEST, dressed, 1 << 20));
        assert!(!h.hides(SYSTEM, stop, 1 << 20));
        assert!(!h.hides("meas", beat, 1 << 20));
        // A broadcast ping reusing a real call's id hides only the replies to its sender.
        let call = br#"{"from":"cli","to":"labd","request":"measure","requestid":"cli-7"}"#;
        let decoy = br#"{"from":"evil","to":"*","request":"ping","requestid":"cli-7"}"#;
        let answer = br#"{"from":"labd","to":"cli","requestid":"cli-7","reply":{}}"#;
        assert!(!h.hides(REQUEST, call, 1 << 20));
        assert!(h.hides(REQUEST, decoy, 1 << 20));
        assert!(
            !h.hides(REPLY, answer, 1 << 20),
            "the reply goes to cli, not to evil"
        );
        // Long ids are not remembered.
        let long = format!(
            r#"{{"from":"evil","to":"*","request":"ping","requestid":"{}"}}"#,
            "x".repeat(300)
        );
        assert!(!h.hides(REQUEST, long.as_bytes(), 1 << 20));
        assert!(h.asked.len() == 1);
    }
}
