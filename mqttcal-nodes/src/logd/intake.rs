//! The automatic entries' way in: `announce`, `system` and `log` through a durable intake,
//! each message acknowledged to the broker only once its entry is appended.
//!
//! While logd is away the broker keeps what was sent at QoS 1 (announcements, `log`
//! entries) for its session; while the database is down the intake retries and the message
//! stays unacknowledged. Each automatic entry records the message it came from (topic,
//! sender, epoch and `seq`, or sender and timestamp); a message delivered again, after a
//! reconnection or after logd died between an append and its acknowledgement, is recognised
//! among the last entries and appended once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use mqttcal_core::envelope::Envelope;
use mqttcal_core::intake::{Commit, CommitError, Decoded, Intake};
use mqttcal_core::topics;
use mqttcal_core::transport::BoxFuture;
use mqttcal_core::Context;
use mqttcal_store::StoreError;

use super::entries::{announced, logged, system_command};
use mqttcal_messages::LogEntry;

use super::presence::Presence;
use super::{Canonical, Logbook, NewEntry};

/// How many recent messages are remembered to recognise a redelivery.
const REMEMBERED: usize = 10_000;

/// logd's intake: the session `<node>-intake` on `announce`, `system` and `log`.
pub(super) fn intake(book: Arc<Logbook>, presence: Arc<Presence>) -> Intake<NewEntry> {
    Intake::new(
        entry_of,
        Appender {
            book,
            seen: Recent::default(),
            seeded: false,
            presence,
        },
    )
    .subscribe(topics::ANNOUNCE)
    .subscribe(topics::SYSTEM)
    .subscribe(LogEntry::TOPIC)
}

/// Appends entries in order, each once.
struct Appender {
    book: Arc<Logbook>,
    seen: Recent,
    seeded: bool,
    presence: Arc<Presence>,
}

impl Commit<NewEntry> for Appender {
    fn commit<'a>(
        &'a mut self,
        items: &'a [NewEntry],
        _ctx: &'a Context,
    ) -> BoxFuture<'a, Result<(), CommitError>> {
        Box::pin(self.append_all(items))
    }
}

impl Appender {
    /// Appends `items` in order, skipping those whose source is in already.
    async fn append_all(&mut self, items: &[NewEntry]) -> Result<(), CommitError> {
        {
            if !self.seeded {
                // Before the first append: the sources of the newest entries, which a
                // stored broker session may deliver again.
                self.seen
                    .seed(&self.book)
                    .await
                    .map_err(CommitError::retry)?;
                self.seeded = true;
            }
            for entry in items {
                if entry.source.as_ref().is_some_and(|s| self.seen.contains(s)) {
                    tracing::debug!(source = ?entry.source, "logd: a redelivered message, appended already");
                    continue;
                }
                let mut entry = entry.clone();
                let judgement = self.presence.before_append(&mut entry);
                if let Some(source) = &judgement.forget {
                    self.seen.forget(source);
                }
                for judged in judgement.before {
                    if let Err(e) = self.book.append(judged.clone()).await {
                        self.presence.retry_later(&judged);
                        if e.is_transient() {
                            return Err(CommitError::retry(e));
                        }
                    }
                }
                match self.book.append(entry.clone()).await {
                    Ok(_) => {
                        if let Some(source) = &entry.source {
                            self.seen.first_time(source.clone());
                        }
                    }
                    // The database is away: try again. It refuses the entry (a NUL byte for
                    // PostgreSQL, an empty text): it never will take it.
                    Err(e) if e.is_transient() => return Err(CommitError::retry(e)),
                    Err(e) => return Err(CommitError::refused(e)),
                }
            }
            Ok(())
        }
    }
}

/// Keys of the messages appended lately, oldest first out.
#[derive(Default)]
struct Recent {
    keys: HashSet<String>,
    order: VecDeque<String>,
}

impl Recent {
    /// Remembers the sources of the newest entries in the logbook.
    async fn seed(&mut self, book: &Logbook) -> Result<(), StoreError> {
        let store = &book.store;
        let Some((head, _)) = store.log_head().await? else {
            return Ok(());
        };
        let after = (head - REMEMBERED as i64).max(0);
        for row in store.log_page(after, REMEMBERED as i64).await? {
            if let Ok(c) = serde_json::from_str::<Canonical>(&row.entry) {
                if let Some(source) = c.source {
                    self.first_time(source);
                }
            }
        }
        Ok(())
    }

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Forgets `key`: the same message again is news (a node's will, after it came back).
    fn forget(&mut self, key: &str) {
        if self.keys.remove(key) {
            self.order.retain(|k| k != key);
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

/// What a message on topic `name` adds to the logbook.
fn entry_of(name: &str, payload: &[u8]) -> Decoded<NewEntry> {
    // The intake set aside anything over the node's size limit before this point.
    let env = match Envelope::decode(payload, usize::MAX) {
        Ok(env) => env,
        Err(e) => {
            return Decoded::SetAside(format!("not a message: {}", mqttcal_core::error_chain(&e)))
        }
    };
    let entry = match name {
        topics::ANNOUNCE => announced(&env),
        topics::SYSTEM => system_command(&env),
        LogEntry::TOPIC => match logged(&env) {
            Ok(e) => Some(e),
            Err(why) => {
                return Decoded::SetAside(format!("not a log entry from {}: {why}", env.from))
            }
        },
        _ => None,
    };
    let Some(mut entry) = entry else {
        return Decoded::Skip;
    };
    entry.source = match (env.epoch, env.seq, env.timestamp) {
        (Some(e), Some(s), _) => Some(format!("{name}/{}/{e}/{s}", env.from)),
        (_, _, Some(t)) => Some(format!("{name}/{}/t{}", env.from, t.as_micros())),
        _ => None,
    };
    Decoded::Item(entry)
}

#[cfg(test)]
mod tests {
    use mqttcal_store::LogbookStore;

    use super::*;

    const GAP: &[u8] = br#"{"timestamp": 5.0, "from": "datad", "to": "*", "epoch": 1, "seq": 3, "kind": "gap", "text": "3 missing"}"#;

    fn item(name: &str, payload: &[u8]) -> NewEntry {
        match entry_of(name, payload) {
            Decoded::Item(e) => e,
            other => panic!("not an entry: {other:?}"),
        }
    }

    async fn appender(dir: &tempfile::TempDir) -> (Appender, Arc<dyn LogbookStore>) {
        let target = format!("sqlite:{}", dir.path().join("log.db").display());
        let store: Arc<dyn LogbookStore> = mqttcal_store::open(&target).await.unwrap();
        let book = Arc::new(Logbook::new(store.clone(), None));
        let a = Appender {
            book,
            seen: Recent::default(),
            seeded: false,
            presence: Arc::default(),
        };
        (a, store)
    }

    #[test]
    fn each_entry_names_the_message_it_came_from() {
        assert_eq!(
            item(LogEntry::TOPIC, GAP).source.as_deref(),
            Some("log/datad/1/3")
        );
        let hello = br#"{"timestamp": 7.25, "from": "labd", "to": "*", "message": "hello"}"#;
        let e = item(topics::ANNOUNCE, hello);
        assert_eq!(e.source.as_deref(), Some("announce/labd/t7250000"));
        assert_eq!(e.kind, "joined");
        let heartbeat = br#"{"from": "labd", "to": "*", "message": "heartbeat"}"#;
        assert!(matches!(
            entry_of(topics::ANNOUNCE, heartbeat),
            Decoded::Skip
        ));
        assert!(matches!(
            entry_of(LogEntry::TOPIC, br#"{"from": "x", "to": "*", "kind": "gap"}"#),
            Decoded::SetAside(why) if why.contains("missing field `text`")
        ));
        assert!(matches!(
            entry_of(LogEntry::TOPIC, b"[1]"),
            Decoded::SetAside(_)
        ));
    }

    #[tokio::test]
    async fn a_redelivered_message_is_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, store) = appender(&dir).await;
        a.append_all(&[item(LogEntry::TOPIC, GAP)]).await.unwrap();
        a.append_all(&[item(LogEntry::TOPIC, GAP)]).await.unwrap();
        assert_eq!(store.log_page(0, 10).await.unwrap().len(), 1);
        let other = br#"{"timestamp": 5.0, "from": "datad", "to": "*", "epoch": 1, "seq": 4, "kind": "gap", "text": "4 missing"}"#;
        a.append_all(&[item(LogEntry::TOPIC, other)]).await.unwrap();
        assert_eq!(store.log_page(0, 10).await.unwrap().len(), 2);
    }

    /// After a crash between an append and its acknowledgement, the broker delivers the
    /// message again to the next logd: the entry's recorded source says it is in already.
    #[tokio::test]
    async fn a_restarted_logd_knows_the_messages_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, store) = appender(&dir).await;
        first
            .append_all(&[item(LogEntry::TOPIC, GAP)])
            .await
            .unwrap();
        let manual = NewEntry {
            kind: "note".into(),
            node: None,
            author: Some("M. Rossi".into()),
            text: "no source".into(),
            tags: vec![],
            refs: Default::default(),
            source: None,
        };
        first.append_all(&[manual]).await.unwrap();

        let (mut restarted, _) = appender(&dir).await;
        restarted
            .append_all(&[item(LogEntry::TOPIC, GAP)])
            .await
            .unwrap();
        assert_eq!(
            restarted.seen.order.len(),
            1,
            "seeded from the stored entries"
        );
        assert_eq!(store.log_page(0, 10).await.unwrap().len(), 2);
        // The source is part of the hashed entry, and the chain still verifies.
        let v = crate::logd::verify(store.as_ref(), None).await.unwrap();
        assert!(v.ok, "{v:?}");
    }

    #[tokio::test]
    async fn an_entry_the_store_refuses_is_refused_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, _) = appender(&dir).await;
        let mut empty = item(LogEntry::TOPIC, GAP);
        empty.text = " ".into();
        assert!(matches!(
            a.append_all(&[empty]).await,
            Err(CommitError::Refused(_))
        ));
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
