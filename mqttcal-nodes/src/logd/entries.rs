//! The entries logd writes by itself: for announcements, `system` commands and the
//! [`LogEntry`] messages nodes send on `log`.

use mqttcal_core::envelope::Envelope;
use mqttcal_messages::{LogEntry, References};
use serde_json::Value;

use super::NewEntry;

/// The automatic entry for a message on `announce`, if any.
pub(super) fn announced(env: &Envelope) -> Option<NewEntry> {
    let (kind, text) = match env.message.as_deref()? {
        "hello" => ("joined", format!("{} joined", env.from)),
        // The will: the connection dropped. Whether the node is lost is decided later
        // (super::presence): it may come back in the same run after a broker restart.
        "bye" if env.fields.get("reason").and_then(Value::as_str) == Some("lost") => (
            super::presence::DISCONNECTED,
            format!(
                "{}'s connection dropped without a bye (the broker published its will); it is reported lost unless it comes back in the same run",
                env.from
            ),
        ),
        // A later run closing the stream of one that was killed: not a leaving (the will
        // said how that run ended).
        "bye" if env.closes_earlier_run() => return None,
        "bye" => ("left", format!("{} left", env.from)),
        _ => return None,
    };
    let mut tags = vec!["announce".to_owned()];
    if let Some(epoch) = env.epoch {
        tags.push(format!("{}{epoch}", super::presence::EPOCH_TAG));
    }
    Some(NewEntry {
        kind: kind.into(),
        node: Some(env.from.clone()),
        author: None,
        text,
        tags,
        refs: References::default(),
        source: None,
    })
}

/// The automatic entry for a `system` command.
pub(super) fn system_command(env: &Envelope) -> Option<NewEntry> {
    let cmd = env.cmd.as_deref()?;
    Some(NewEntry {
        kind: "system".into(),
        node: Some(env.from.clone()),
        author: None,
        text: format!("{} sent `{cmd}` to {}", env.from, env.to),
        tags: vec!["system".into()],
        refs: References::default(),
        source: None,
    })
}

/// An entry a node sent on the `log` topic.
pub(super) fn logged(env: &Envelope) -> Result<NewEntry, String> {
    let e: LogEntry =
        serde_json::from_value(Value::Object(env.fields.clone())).map_err(|e| e.to_string())?;
    e.validate().map_err(|e| e.to_string())?;
    Ok(NewEntry {
        kind: e.kind,
        node: Some(env.from.clone()),
        author: None,
        text: e.text,
        tags: e.tags,
        refs: e.refs,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_run_closing_a_killed_runs_stream_is_no_leaving() {
        let mut bye = Envelope::new("labd", "*");
        bye.message = Some("bye".into());
        bye.epoch = Some(7);
        assert_eq!(announced(&bye).map(|e| e.kind), Some("left".to_owned()));
        bye.fields.insert(
            mqttcal_core::envelope::EARLIER_RUN.into(),
            Value::Bool(true),
        );
        assert!(announced(&bye).is_none());
    }
}
