//! The automatic entries' way in: `announce`, `system` and `log` on a persistent session,
//! each message acknowledged to the broker only once its entry is appended.
//!
//! While logd is away the broker keeps what was sent at QoS 1 (announcements, `log`
//! entries) for this session; while the database is down the entry is retried and the
//! message stays unacknowledged. Each automatic entry records the message it came from
//! (topic, sender, epoch and `seq`, or sender and timestamp); a message delivered again,
//! after a reconnection or after logd died between an append and its acknowledgement, is
//! recognised among the last entries and appended once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::topics::{self, Topics};
use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport, TransportError};
use mqttcal_core::{envelope::DEFAULT_MAX_MESSAGE_SIZE, Envelope};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{announced, logged, system_command, Logbook, NewEntry, LOG_TOPIC};

/// How many recent messages are remembered to recognise a redelivery.
const REMEMBERED: usize = 10_000;

/// The running intake.
#[derive(Debug)]
pub(super) struct Intake {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Intake {
    /// Connects as `client_id` (persistent session, manual acknowledgements), subscribes
    /// the three topics under `prefix`, and appends what arrives to `book`.
    pub(super) async fn start(
        client_id: &str,
        prefix: &str,
        book: Arc<Logbook>,
        transport: &dyn Transport,
    ) -> Result<Self, TransportError> {
        let t = Topics::new(prefix);
        let mut link = transport
            .connect(SessionSpec {
                clean_session: false,
                manual_acks: true,
                ..SessionSpec::new(
                    client_id,
                    [topics::ANNOUNCE, topics::SYSTEM, LOG_TOPIC]
                        .into_iter()
                        .map(|name| Subscription::new(t.topic(name), QoS::AtLeastOnce))
                        .collect(),
                )
            })
            .await?;
        let (stop, mut stopping) = watch::channel(false);
        let mut seen = Recent::default();
        seen.seed(&book).await;
        let task = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    ev = link.events.recv() => ev,
                    _ = stopping.changed() => break,
                };
                match event {
                    Some(Event::Message {
                        topic,
                        payload,
                        ack,
                    }) => {
                        let name = t.strip(&topic).unwrap_or(&topic).to_owned();
                        let entry = entry_of(&name, &payload, &seen);
                        let source = entry.as_ref().and_then(|e| e.source.clone());
                        if !append(&book, entry, &mut stopping).await {
                            break;
                        }
                        if let Some(source) = source {
                            seen.first_time(source);
                        }
                        if let Some(ack) = ack {
                            ack.ack();
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            let _ = link.publisher.disconnect().await;
        });
        Ok(Self { task, stop })
    }

    /// Stops taking messages; what is not appended stays with the broker.
    pub(super) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Keys of the messages appended lately, oldest first out.
#[derive(Default)]
struct Recent {
    keys: HashSet<String>,
    order: VecDeque<String>,
}

impl Recent {
    /// Remembers the sources of the newest entries in the logbook (those a restarted
    /// broker session may deliver again).
    async fn seed(&mut self, book: &Logbook) {
        let store = &book.store;
        let head = match store.log_head().await {
            Ok(Some((seq, _))) => seq,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("logd: cannot read the newest entries ({e}); a message delivered again after a crash may be recorded twice");
                return;
            }
        };
        let after = (head - REMEMBERED as i64).max(0);
        match store.log_page(after, REMEMBERED as i64).await {
            Ok(rows) => {
                for row in rows {
                    if let Ok(c) = serde_json::from_str::<super::Canonical>(&row.entry) {
                        if let Some(source) = c.source {
                            self.first_time(source);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("logd: cannot read the newest entries ({e})"),
        }
    }

    /// False when `key` was appended already.
    fn first_time(&mut self, key: String) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        true
    }
}

/// What a message on topic `name` adds to the logbook, if anything.
fn entry_of(name: &str, payload: &[u8], seen: &Recent) -> Option<NewEntry> {
    let env = match Envelope::decode(payload, DEFAULT_MAX_MESSAGE_SIZE) {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(topic = name, "logd: dropped a message that is not one: {e}");
            return None;
        }
    };
    let key = match (env.epoch, env.seq, env.timestamp) {
        (Some(e), Some(s), _) => format!("{name}/{}/{e}/{s}", env.from),
        (_, _, Some(t)) => format!("{name}/{}/t{}", env.from, t.as_micros()),
        _ => return entry_for(name, &env),
    };
    if seen.keys.contains(&key) {
        tracing::debug!(from = %env.from, "logd: a redelivered message, appended already");
        return None;
    }
    let mut entry = entry_for(name, &env)?;
    entry.source = Some(key);
    Some(entry)
}

fn entry_for(name: &str, env: &Envelope) -> Option<NewEntry> {
    match name {
        topics::ANNOUNCE => announced(env),
        topics::SYSTEM => system_command(env),
        LOG_TOPIC => match logged(env) {
            Ok(e) => Some(e),
            Err(why) => {
                tracing::warn!(from = %env.from, "logd: not a log entry ({why}); dropped");
                None
            }
        },
        _ => None,
    }
}

/// Appends `entry`, retrying while the database is unreachable; false when logd stops
/// first (the message then stays unacknowledged, for the next run).
async fn append(
    book: &Logbook,
    entry: Option<NewEntry>,
    stopping: &mut watch::Receiver<bool>,
) -> bool {
    let Some(entry) = entry else {
        return true;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match book.append(entry.clone()).await {
            Ok(_) => return true,
            Err(mqttcal_store::StoreError::Invalid(why)) => {
                tracing::warn!("logd: an entry refused ({why}); dropped");
                return true;
            }
            Err(e) => {
                tracing::warn!("logd: cannot append an entry ({e}); retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopping.changed() => return false,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: &[u8] = br#"{"timestamp": 5.0, "from": "datad", "to": "*", "epoch": 1, "seq": 3, "kind": "gap", "text": "3 missing"}"#;

    #[test]
    fn a_redelivered_message_is_appended_once() {
        let mut seen = Recent::default();
        let entry = entry_of(LOG_TOPIC, GAP, &seen).unwrap();
        assert_eq!(entry.source.as_deref(), Some("log/datad/1/3"));
        seen.first_time(entry.source.unwrap());
        assert!(entry_of(LOG_TOPIC, GAP, &seen).is_none());
        let other = br#"{"timestamp": 5.0, "from": "datad", "to": "*", "epoch": 1, "seq": 4, "kind": "gap", "text": "4 missing"}"#;
        assert!(entry_of(LOG_TOPIC, other, &seen).is_some());
    }

    /// After a crash between an append and its acknowledgement, the broker delivers the
    /// message again to the next logd: the entry's recorded source says it is in already.
    #[tokio::test]
    async fn a_restarted_logd_knows_the_messages_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let target = format!("sqlite:{}", dir.path().join("log.db").display());
        let store: Arc<dyn mqttcal_store::LogbookStore> =
            mqttcal_store::open(&target).await.unwrap();
        let book = Logbook::new(store.clone(), None);
        let entry = entry_of(LOG_TOPIC, GAP, &Recent::default()).unwrap();
        book.append(entry).await.unwrap();
        let manual = super::super::NewEntry {
            kind: "note".into(),
            node: None,
            author: Some("M. Rossi".into()),
            text: "no source".into(),
            tags: vec![],
            refs: Default::default(),
            source: None,
        };
        book.append(manual).await.unwrap();

        let restarted = Logbook::new(store.clone(), None);
        let mut seen = Recent::default();
        seen.seed(&restarted).await;
        assert_eq!(seen.order.len(), 1);
        assert!(entry_of(LOG_TOPIC, GAP, &seen).is_none());
        // The source is part of the hashed entry, and the chain still verifies.
        let v = crate::logd::verify(store.as_ref(), None).await.unwrap();
        assert!(v.ok, "{v:?}");
    }

    #[test]
    fn the_memory_of_recent_messages_is_bounded() {
        let mut seen = Recent::default();
        for i in 0..(REMEMBERED + 10) {
            assert!(seen.first_time(i.to_string()));
        }
        assert_eq!(seen.order.len(), REMEMBERED);
        assert!(seen.first_time("0".into()), "the oldest was forgotten");
        assert!(!seen.first_time((REMEMBERED + 9).to_string()));
    }
}
